// The preflight of a start (and of every restart after a crash), with an engine whose checks are
// held open by the test: what runs together, and which refusal is reported when several apply.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { createActor, toPromise, type AnyActorLogic } from 'xstate';
import type { Engine } from '../../src/engines/engine.ts';
import { nodeMachineFor } from '../../src/supervisor/node-actor.ts';
import { makeSpec, removeTempDirs } from '../support/nodes.ts';

after(removeTempDirs);

/** A promise with its resolve in hand. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

async function runPreflight(engine: Partial<Engine>): Promise<void> {
  const spec = await makeSpec('mysql');
  const machine = nodeMachineFor({
    spec,
    engine: { findRunning: async () => null, isInitialised: async () => true, writeServerConfig: async () => {}, ...engine } as Engine,
    trashDir: '/nonexistent',
    log: pino({ level: 'silent' }),
    serverLog: { maxBytes: 1 << 20, keep: 1 },
  });
  const logic = machine.implementations.actors.preflight as AnyActorLogic;
  await toPromise(createActor(logic, { input: { nodeId: spec.id } }).start());
}

describe('preflight', () => {
  it('checks the data dir while the scan for a twin server is still under way', async () => {
    const scan = deferred<number | null>();
    let checkedWhileScanning = false;
    let scanning = true;
    const done = runPreflight({
      findRunning: () => scan.promise.finally(() => (scanning = false)),
      isInitialised: async () => {
        checkedWhileScanning = scanning;
        // The scan ends now; one after the other, this check would never have started before it.
        scan.resolve(null);
        return true;
      },
    });
    // Guards against a hang where the checks run one after the other: the scan then ends by itself.
    const guard = setTimeout(() => scan.resolve(null), 5000);
    await done;
    clearTimeout(guard);
    assert.equal(checkedWhileScanning, true);
  });

  it('reports the twin server before an uninitialised data dir, whichever check answers first', async () => {
    const scan = deferred<number | null>();
    const done = runPreflight({
      findRunning: () => scan.promise,
      isInitialised: async () => {
        setImmediate(() => scan.resolve(4242));
        return false;
      },
    });
    const guard = setTimeout(() => scan.resolve(4242), 5000);
    await assert.rejects(done, /a server \(pid 4242\) is already running/);
    clearTimeout(guard);
  });

  it('writes nothing when a check refuses the start (a node never created gets no log dir)', async () => {
    let wrote = false;
    await assert.rejects(
      runPreflight({
        isInitialised: async () => false,
        writeServerConfig: async () => {
          wrote = true;
        },
      }),
      /is not initialised/,
    );
    assert.equal(wrote, false);
  });
});

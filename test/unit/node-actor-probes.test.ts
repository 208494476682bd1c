// The node actor's health reports against a fake engine: what the chart hears of the probes of a
// healthy node, of a failing one and of one that recovers. Real timers (probes every 10 ms), no
// server: the adopted "server" is this test process.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { createActor } from 'xstate';
import { stateName } from '../../machines/node.machine.ts';
import type { Engine } from '../../src/engines/engine.ts';
import { nodeMachineFor } from '../../src/supervisor/node-actor.ts';
import { makeSpec, removeTempDirs } from '../support/nodes.ts';

after(() => removeTempDirs());

async function until(what: string, pred: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('node actor health reports', () => {
  it('tells the chart of passing probes only after a failure: a healthy node makes no snapshot per probe', async () => {
    const spec = await makeSpec('cluster_mgr', { command: ['/bin/true'], policy: { probe: { intervalMs: 10, timeoutMs: 1000, failureThreshold: 5 } } });
    let probes = 0;
    let failNext = 0;
    const engine = {
      findRunning: async () => process.pid,
      probe: async () => {
        probes++;
        if (failNext > 0) {
          failNext--;
          throw new Error('no answer');
        }
      },
      stop: async () => {},
      diagnoseExit: async () => ({ cause: 'unknown', detail: '', logTail: [] }),
    } as unknown as Engine;
    const machine = nodeMachineFor({ spec, engine, trashDir: '/nonexistent', log: pino({ level: 'silent' }), serverLog: { maxBytes: 1e9, keep: 1 }, adoptPollMs: 60_000 });
    const actor = createActor(machine, { input: { nodeId: spec.id, policy: spec.policy, wanted: 'running', restarts: 0 } });
    const snapshots: Array<{ state: string; probeFailures: number }> = [];
    actor.subscribe((s) => snapshots.push({ state: stateName(s.value), probeFailures: s.context.probeFailures }));
    actor.start();
    try {
      await until('the adopted node to run', () => stateName(actor.getSnapshot().value) === 'running');
      await until('a first probe', () => probes >= 1);
      await sleep(20);
      const seen = snapshots.length;
      const from = probes;
      await until('20 more passing probes', () => probes >= from + 20);
      assert.equal(snapshots.length, seen, `${probes - from} passing probes made ${snapshots.length - seen} snapshot(s)`);

      // A failure is heard at once, and so is the pass that ends it.
      failNext = 2;
      await until('two failures counted', () => actor.getSnapshot().context.probeFailures === 2);
      await until('the failures cleared by a passing probe', () => actor.getSnapshot().context.probeFailures === 0);
      assert.equal(stateName(actor.getSnapshot().value), 'running');
      const afterRecovery = snapshots.length;
      const from2 = probes;
      await until('20 more passing probes', () => probes >= from2 + 20);
      assert.equal(snapshots.length, afterRecovery, 'quiet again once passing');
    } finally {
      actor.stop();
    }
  });
});

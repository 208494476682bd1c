// The identity proof every adoption and the state-dir lock use, against a small real process.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isExpectedProcess } from '../../src/host/process-identity.ts';
import { startedAtMs } from '../../src/host/process-info.ts';

const MARKER = 'identity-test-marker';
let child: ChildProcess;
let dir: string;
let started: number;

before(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'identity-')));
  child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', MARKER], { cwd: dir, stdio: 'ignore' });
  await once(child, 'spawn');
  started = (await startedAtMs(child.pid!))!;
});
after(async () => {
  child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

const hasMarker = (argv: string[]) => argv.includes(MARKER);

describe('isExpectedProcess', () => {
  it('accepts the running process when argv and working dir are the expected ones', async () => {
    assert.equal(await isExpectedProcess(child.pid!, { argv: hasMarker, cwd: dir }), true);
  });

  it('refuses a process whose argv or working dir is another', async () => {
    assert.equal(await isExpectedProcess(child.pid!, { argv: (argv) => argv.includes('--another-node') }), false);
    assert.equal(await isExpectedProcess(child.pid!, { argv: hasMarker, cwd: os.homedir() }), false);
  });

  it('accepts a pidfile written after the process started and refuses one written well before it (a reused pid)', async () => {
    assert.equal(await isExpectedProcess(child.pid!, { argv: hasMarker, record: { writtenAtMs: started + 50 } }), true);
    assert.equal(await isExpectedProcess(child.pid!, { argv: hasMarker, record: { writtenAtMs: started - 10_000 } }), false);
  });

  it('accepts a start time recorded in whole seconds and refuses one that names another start', async () => {
    const startedAtSec = Math.floor(started / 1000);
    assert.equal(await isExpectedProcess(child.pid!, { argv: hasMarker, record: { startedAtSec } }), true);
    assert.equal(await isExpectedProcess(child.pid!, { argv: hasMarker, record: { startedAtSec: startedAtSec - 10 } }), false);
    assert.equal(await isExpectedProcess(child.pid!, { argv: hasMarker, record: { startedAtSec: Number.NaN } }), false);
  });

  it('refuses a process that has exited', async () => {
    const gone = spawn(process.execPath, ['-e', '0', MARKER]);
    await once(gone, 'exit');
    assert.equal(await isExpectedProcess(gone.pid!, { argv: hasMarker }), false);
  });
});

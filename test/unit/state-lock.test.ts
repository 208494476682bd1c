// The state dir's pid file: one node-mgr per state dir, and a pid file left by a crash (or a
// power loss) never keeps node-mgr from starting again because the pid now names another node
// program. Real processes and real /proc; no stand-ins.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LOCK_FILE_NAME, lockStateDir, stateDirHolder } from '../../src/state/lock.ts';
import { startTime } from '../../src/host/process-info.ts';

const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

describe('the state dir lock', () => {
  let dir: string;
  let other: ChildProcess;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'nm-lock-'));
    // Another node program, as a pid recycled after a reboot may be.
    other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    await new Promise((r) => other.once('spawn', r));
  });

  after(() => {
    other.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const write = (text: string) => writeFileSync(path.join(dir, LOCK_FILE_NAME), text);

  it('records the pid on the first line and the start tick with the boot id on the second, and lets go on release', async () => {
    const lock = await lockStateDir(dir);
    const [pid, proof] = readFileSync(lock.file, 'utf8').split('\n');
    assert.equal(pid, String(process.pid));
    assert.equal(proof, `${await startTime(process.pid)} ${bootId}`);
    assert.equal(await stateDirHolder(dir), process.pid);
    lock.release();
    assert.equal(await stateDirHolder(dir), null);
  });

  it('names the live holder whose start tick and boot id match, and refuses a second claim', async () => {
    write(`${other.pid}\n${await startTime(other.pid!)} ${bootId}\n`);
    assert.equal(await stateDirHolder(dir), other.pid);
    await assert.rejects(lockStateDir(dir), new RegExp(`another node-mgr \\(pid ${other.pid}\\) is using the state dir`));
  });

  it('takes over a file whose pid now names a process that started at another tick (a recycled pid)', async () => {
    const ticks = (await startTime(other.pid!))!;
    write(`${other.pid}\n${ticks + 1} ${bootId}\n`);
    assert.equal(await stateDirHolder(dir), null);
    const lock = await lockStateDir(dir);
    assert.equal(readFileSync(lock.file, 'utf8').split('\n')[0], String(process.pid));
    lock.release();
  });

  it('takes over a file written in another boot', async () => {
    write(`${other.pid}\n${await startTime(other.pid!)} 00000000-0000-0000-0000-000000000000\n`);
    assert.equal(await stateDirHolder(dir), null);
  });

  it('still trusts an earlier version’s file (pid only) when the pid is a node program, and not when it is gone', async () => {
    write(`${other.pid}\n`);
    assert.equal(await stateDirHolder(dir), other.pid);
    write(`999999999\n`);
    assert.equal(await stateDirHolder(dir), null);
  });
});

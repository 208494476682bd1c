// The leftover scan with real processes: a grandchild left in the server's process group, and a
// stray process working inside the data dir.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { reapLeftovers } from '../../src/supervisor/leftovers.ts';
import { processState } from '../../src/host/process-info.ts';

async function waitGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if ((await processState(pid)) !== 'running') return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

describe('leftover scan', () => {
  it('kills a process left in the exited server\'s process group', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nm-left-'));
    // A "server" that starts a child in its own group and exits: the child is the leftover.
    const leader = spawn(process.execPath, ['-e', "const c=require('child_process').spawn('sleep',['300'],{stdio:'ignore'});c.unref();console.log(c.pid);"], {
      detached: true,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const childPid = Number((await new Promise<Buffer>((r) => leader.stdout!.once('data', r))).toString().trim());
    await new Promise((r) => leader.once('exit', r));
    assert.equal(await processState(childPid), 'running');
    const found = reapLeftovers(leader.pid!, dir, process.getuid!());
    assert.deepEqual(found, [{ pid: childPid, why: 'process group' }]);
    assert.equal(await waitGone(childPid), true);
    rmSync(dir, { recursive: true, force: true });
  });

  it('kills a stray process of the server\'s user working inside the data dir, and nothing else', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nm-left-'));
    const stray = spawn('sleep', ['300'], { cwd: dir, detached: true, stdio: 'ignore' });
    const bystander = spawn('sleep', ['300'], { cwd: os.tmpdir(), detached: true, stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 100));
    const found = reapLeftovers(999_999_999, dir, process.getuid!());
    // The same stray under another user's name would be an operator's, not the server's.
    const other = spawn('sleep', ['300'], { cwd: dir, detached: true, stdio: 'ignore', uid: 65534, gid: 65534 });
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(reapLeftovers(999_999_999, dir, process.getuid!()), []);
    other.kill('SIGKILL');
    assert.deepEqual(found, [{ pid: stray.pid, why: 'data dir' }]);
    assert.equal(await waitGone(stray.pid!), true);
    assert.equal(await processState(bystander.pid!), 'running');
    bystander.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
});

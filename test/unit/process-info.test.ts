// /proc helpers against small real processes (node children), no databases.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import {
  climbStopLadder,
  cmdline,
  cmdlineNow,
  endedOrEndingNow,
  isAlive,
  liveProcessGroupNow,
  pidsOwnedBy,
  portHolder,
  processGroupExists,
  processState,
  readPidFile,
  sendSignal,
  startedAtMs,
  startTime,
  waitForExit,
  workingDir,
  workingDirNow,
} from '../../src/host/process-info.ts';

const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Runs a node script as a child; resolves with the child and its first line of stdout. */
async function nodeChild(script: string): Promise<{ child: ChildProcess; firstLine: string }> {
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const lines = createInterface({ input: child.stdout! });
  const [firstLine] = (await once(lines, 'line')) as [string];
  return { child, firstLine };
}

const IGNORES_SIGTERM = `process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000);`;

describe('process state', () => {
  it('sees this process running and a finished one gone', async () => {
    assert.equal(await processState(process.pid), 'running');
    assert.equal(await isAlive(process.pid), true);
    const child = spawn(process.execPath, ['-e', '0']);
    await once(child, 'exit');
    assert.equal(await processState(child.pid!), 'gone');
    assert.equal(await isAlive(child.pid!), false);
    assert.equal(await processState(-1), 'gone');
  });

  it('tells in one synchronous read whether a process has ended or is ending', async () => {
    assert.equal(endedOrEndingNow(process.pid), false);
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
    await once(child, 'spawn');
    assert.equal(endedOrEndingNow(child.pid!), false);
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.equal(endedOrEndingNow(child.pid!), true);
    assert.equal(endedOrEndingNow(-1), true);
  });

  it('counts an unreaped zombie as dead, although kill -0 still succeeds', async () => {
    // The parent is stopped before its child exits, so nobody reaps the child.
    const { child: parent, firstLine } = await nodeChild(
      `const c = require('child_process').spawn(process.execPath, ['-e', 'setTimeout(() => {}, 300)']); console.log(c.pid); setInterval(() => {}, 1000);`,
    );
    sendSignal(parent.pid!, 'SIGSTOP');
    const zombie = Number(firstLine);
    try {
      const deadline = Date.now() + 5000;
      while ((await processState(zombie)) === 'running' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await processState(zombie), 'zombie');
      assert.equal(await isAlive(zombie), false);
      assert.doesNotThrow(() => process.kill(zombie, 0));
      assert.equal(await waitForExit(zombie, 100), true);
      assert.equal(endedOrEndingNow(zombie), true);
    } finally {
      sendSignal(parent.pid!, 'SIGCONT');
      parent.kill('SIGKILL');
    }
  });
});

describe('process identity', () => {
  it('reads a stable start time that matches when this process started', async () => {
    const ticks = await startTime(process.pid);
    assert.ok(ticks !== null && ticks > 0);
    assert.equal(await startTime(process.pid), ticks);
    const startedAt = await startedAtMs(process.pid);
    const expected = Date.now() - process.uptime() * 1000;
    assert.ok(startedAt !== null && Math.abs(startedAt - expected) < 1500, `${startedAt} vs ${expected}`);
  });

  it('reads argv and working dir, and null for a gone process', async () => {
    const argv = await cmdline(process.pid);
    assert.ok(argv && path.basename(argv[0]).startsWith('node'));
    assert.equal(await workingDir(process.pid), process.cwd());
    assert.equal(await cmdline(2 ** 22 + 1), null);
  });

  // The scans between a crash and its restart (findRunning, the leftover scan) use these: they must
  // answer in the same tick, without a trip through the thread pool.
  it('lists an account\'s pids and reads argv, working dir and process group synchronously', async () => {
    const { child } = await nodeChild(`console.log('up'); setInterval(() => {}, 1000);`);
    const pids = pidsOwnedBy(process.getuid!());
    assert.ok(Array.isArray(pids), 'pidsOwnedBy answers at once, not with a promise');
    assert.ok(pids.includes(process.pid) && pids.includes(child.pid!));
    assert.ok(!pidsOwnedBy(65534).includes(process.pid));
    assert.deepEqual(cmdlineNow(child.pid!), await cmdline(child.pid!));
    assert.equal(workingDirNow(child.pid!), process.cwd());
    assert.equal(liveProcessGroupNow(child.pid!), liveProcessGroupNow(process.pid));
    assert.equal(cmdlineNow(2 ** 22 + 1), null);
    assert.equal(workingDirNow(2 ** 22 + 1), null);
    assert.equal(liveProcessGroupNow(2 ** 22 + 1), null);
  });

  it('tells whether a process group still has a member, a zombie included', async () => {
    const { child } = await nodeChild(`console.log('up'); setInterval(() => {}, 1000);`);
    const leader = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
    children.push(leader);
    assert.equal(processGroupExists(leader.pid!), true);
    // A pid that leads no group (the child is in this process's group) has no group of its own.
    assert.equal(processGroupExists(child.pid!), false);
    assert.equal(processGroupExists(2 ** 22 + 1), false);
    leader.kill('SIGKILL');
    await once(leader, 'exit');
    assert.equal(processGroupExists(leader.pid!), false);
  });
});

describe('portHolder', () => {
  it("names the pid and program of another process's listener, and null once it is gone", async () => {
    const { child, firstLine } = await nodeChild(
      `const s = require('net').createServer().listen(0, '127.0.0.1', () => console.log(s.address().port));`,
    );
    const port = Number(firstLine);
    assert.deepEqual(await portHolder(port), { pid: child.pid, program: 'node' });
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.equal(await portHolder(port), null);
  });

  it('looks where the server would bind: a listener on another address of the host does not hold the port', async () => {
    const { child, firstLine } = await nodeChild(
      `const s = require('net').createServer().listen(0, '127.0.0.1', () => console.log(s.address().port));`,
    );
    const port = Number(firstLine);
    assert.equal((await portHolder(port, '127.0.0.1'))?.pid, child.pid);
    assert.equal((await portHolder(port, '0.0.0.0'))?.pid, child.pid);
    assert.equal(await portHolder(port, '127.0.0.2'), null);
    child.kill('SIGKILL');
  });

  it('finds an IPv6 listener too', async () => {
    const { child, firstLine } = await nodeChild(
      `const s = require('net').createServer().listen(0, '::', () => console.log(s.address().port));`,
    );
    assert.equal((await portHolder(Number(firstLine)))?.pid, child.pid);
    child.kill('SIGKILL');
  });
});

describe('waitForExit', () => {
  it('resolves true when the process exits and false when the timeout passes first', async () => {
    const { child } = await nodeChild(`console.log('up'); setTimeout(() => {}, 150);`);
    assert.equal(await waitForExit(child.pid!, 50), false);
    assert.equal(await waitForExit(child.pid!, 5000), true);
  });

  it('rejects when aborted', async () => {
    const { child } = await nodeChild(`console.log('up'); setInterval(() => {}, 1000);`);
    await assert.rejects(waitForExit(child.pid!, 10_000, AbortSignal.timeout(50)));
    child.kill('SIGKILL');
  });
});

describe('climbStopLadder', () => {
  it('escalates to SIGKILL for a process that ignores SIGTERM, after waiting the first rung', async () => {
    const { child } = await nodeChild(IGNORES_SIGTERM);
    const pid = child.pid!;
    const t0 = Date.now();
    const rung = await climbStopLadder(pid, [
      { name: 'SIGTERM', act: () => sendSignal(pid, 'SIGTERM'), waitMs: 200 },
      { name: 'SIGKILL', act: () => sendSignal(pid, 'SIGKILL'), waitMs: 2000 },
    ]);
    assert.equal(rung, 'SIGKILL');
    assert.ok(Date.now() - t0 >= 200);
    const [, signal] = child.signalCode ? [null, child.signalCode] : await once(child, 'exit');
    assert.equal(signal, 'SIGKILL');
  });

  it('skips a rung whose action fails and returns null for a process already gone', async () => {
    const { child } = await nodeChild(`console.log('up'); setInterval(() => {}, 1000);`);
    const pid = child.pid!;
    const rung = await climbStopLadder(pid, [
      { name: 'SQL SHUTDOWN', act: () => Promise.reject(new Error('cannot connect')), waitMs: 10_000 },
      { name: 'SIGTERM', act: () => sendSignal(pid, 'SIGTERM'), waitMs: 2000 },
    ]);
    assert.equal(rung, 'SIGTERM');
    assert.equal(await climbStopLadder(pid, [{ name: 'SIGTERM', act: () => sendSignal(pid, 'SIGTERM'), waitMs: 10 }]), null);
  });

  it('throws naming the rungs when the process survives them all', async () => {
    const { child } = await nodeChild(IGNORES_SIGTERM);
    const pid = child.pid!;
    await assert.rejects(
      climbStopLadder(pid, [{ name: 'SIGTERM', act: () => sendSignal(pid, 'SIGTERM'), waitMs: 50 }]),
      /still alive .* after the stop ladder SIGTERM/,
    );
    child.kill('SIGKILL');
  });
});

describe('readPidFile', () => {
  it('reads the pid and all lines, and null for a missing or malformed file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'nm-pid-'));
    try {
      const file = path.join(dir, 'postmaster.pid');
      await writeFile(file, '1234\n/data\n1700000000\n6001\n');
      const record = await readPidFile(file);
      assert.equal(record?.pid, 1234);
      assert.equal(record?.lines[3], '6001');
      await writeFile(file, 'garbage\n');
      assert.equal(await readPidFile(file), null);
      assert.equal(await readPidFile(path.join(dir, 'missing.pid')), null);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

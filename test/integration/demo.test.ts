// `node-mgr demo`: a newcomer's first run creates and supervises two real nodes; a second run on
// the same directory adopts them.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { lookupRunAs } from '../../src/host/run-as.ts';
import { freePort, tempNodeDir, removeTempDirs, TEST_RUN_AS } from '../support/nodes.ts';
import { api, BIN, killProcessGroups } from '../support/node-mgr-process.ts';

function runDemo(dir: string, port: number): { child: ChildProcess; output: () => string; exited: Promise<string> } {
  const child = spawn(process.execPath, [BIN, 'demo', '--dir', dir, '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  return { child, output: () => out, exited: new Promise((r) => child.once('exit', (code, signal) => r(`code ${code} signal ${signal}`))) };
}

async function waitForBothRunning(url: string, output: () => string, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await api(url, 'GET', '/v1/nodes').catch(() => null);
    if (r?.status === 200 && r.body.length === 2 && r.body.every((n: { state: string }) => n.state === 'running')) return r.body;
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error(`demo nodes not running in time:\n${output().slice(-3000)}`);
}

describe('node-mgr demo', () => {
  const pids: number[] = [];
  after(async () => {
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('brings a MariaDB storage node and a PostgreSQL computing node to running, and a rerun adopts them', async () => {
    const dir = path.join(path.dirname(await tempNodeDir()), 'demo');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const first = runDemo(dir, port);
    const nodes = await waitForBothRunning(url, first.output);
    pids.push(...nodes.map((n: { pid: number }) => n.pid));
    assert.deepEqual(nodes.map((n: { kind: string }) => n.kind).sort(), ['mysql', 'postgres']);
    if (process.getuid?.() === 0) {
      // Least privilege: started as root, the demo runs as the databases' account (docs/security.md).
      const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${first.child.pid}/status`, 'utf8'))?.[1];
      assert.equal(Number(uid), lookupRunAs(TEST_RUN_AS).uid, 'the demo dropped root');
      assert.equal(statSync(path.join(dir, 'state')).uid, lookupRunAs(TEST_RUN_AS).uid);
    }
    const reply = await api(url, 'POST', '/', { ver: '0.1', job_type: 'get_node' });
    assert.deepEqual(Object.keys(reply.body).sort(), ['computer_node0', 'storage_node0']);
    first.child.kill('SIGINT');
    const firstExit = await first.exited;
    assert.equal(firstExit, 'code 0 signal null', `${firstExit}; output:\n${first.output().slice(-2000)}`);

    const second = runDemo(dir, port);
    const again = await waitForBothRunning(url, second.output);
    assert.deepEqual(again.map((n: { pid: number }) => n.pid).sort(), nodes.map((n: { pid: number }) => n.pid).sort());
    assert.ok(again.every((n: { adopted: boolean }) => n.adopted));
    second.child.kill('SIGTERM');
    const secondExit = await second.exited;
    assert.equal(secondExit, 'code 0 signal null', `${secondExit}; output:\n${second.output().slice(-2000)}`);
  });
});

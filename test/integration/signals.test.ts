// SIGTERM/SIGINT always give node-mgr's clean stop, also while a program it runs through execa
// (the usage pass's du, a backup's mariabackup) is running: execa's signal-exit then listens to
// the same signals and must never be left to re-raise them and kill node-mgr.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, isRunning, killProcessGroups, legacy, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { ADMIN, loadMysqlData } from '../support/backup-data.ts';
import { freezeDescendant, type FrozenChild } from '../support/child-procs.ts';

/** Waits for the process to end; "code 0 signal null" for a clean exit. */
async function exitOf(mgr: NodeMgrProcess, timeoutMs = 60_000): Promise<string> {
  const { child } = mgr;
  if (child.exitCode === null && child.signalCode === null) {
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(timeoutMs)]);
  }
  if (child.exitCode === null && child.signalCode === null) return `still running after ${timeoutMs} ms`;
  return `code ${child.exitCode} signal ${child.signalCode}`;
}

function messages(mgr: NodeMgrProcess): string[] {
  return mgr.lines.flatMap((l) => {
    try {
      return [String((JSON.parse(l) as { msg?: string }).msg)];
    } catch {
      return [];
    }
  });
}

function assertCleanStop(mgr: NodeMgrProcess, exit: string) {
  assert.equal(exit, 'code 0 signal null', `node-mgr did not stop cleanly (${exit}):\n${mgr.lines.slice(-15).join('\n')}`);
  const msgs = messages(mgr);
  assert.ok(msgs.some((m) => m.startsWith('node-mgr stopping')), msgs.slice(-10).join('\n'));
  assert.ok(msgs.includes('node-mgr stopped'), msgs.slice(-10).join('\n'));
}

describe('stop signals while node-mgr runs programs', () => {
  let root: string;
  let config: Record<string, unknown>;
  let mgr: NodeMgrProcess;
  let port: number;
  let frozen: FrozenChild | undefined;
  const pids: number[] = [];

  before(async () => {
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    config = {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      policy: { probe: { intervalMs: 1000, startTimeoutMs: 60_000 } },
      backup: { store: 'local', localDir: path.join(root, 'backups') },
      nodes: [{ kind: 'mysql', role: 'storage', port, dir: path.join(root, 'storage'), cluster: 'c1', shard: 's1', ...ADMIN }],
    };
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    const created = await api(mgr.url, 'POST', `/v1/nodes/${port}/create`);
    assert.equal(created.status, 200, created.text);
    pids.push(created.body.pid);
    await loadMysqlData(port, 20);
    // du over a handful of files ends within milliseconds; 20000 entries give a test time to see it run.
    const ballast = path.join(root, 'storage/data/du_ballast');
    for (let d = 0; d < 20; d++) {
      mkdirSync(path.join(ballast, String(d)), { recursive: true });
      for (let f = 0; f < 1000; f++) writeFileSync(path.join(ballast, String(d), String(f)), '');
    }
  });

  after(async () => {
    frozen?.thaw();
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('SIGTERM while the usage pass runs du: the clean stop, exit code 0, the node keeps running', async () => {
    frozen = await freezeDescendant(mgr.pid, 'du', 30_000);
    mgr.child.kill('SIGTERM');
    const exit = await exitOf(mgr);
    frozen.thaw();
    assertCleanStop(mgr, exit);
    assert.ok(await isRunning(pids[0]!), 'the database must outlive node-mgr without --stop-nodes-on-exit');
  });

  it("SIGTERM while a backup's mariabackup runs, and a second signal during the clean stop: exit code 0", async () => {
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    await waitForNode(mgr.url, port, (n) => n.state === 'running');
    const r = await legacy(mgr.url, { ver: '0.1', job_type: 'coldbackup', s_ip: '127.0.0.1', s_port: port, s_user: ADMIN.user, s_pwd: ADMIN.password });
    assert.equal(r.status, 200, r.text);
    frozen = await freezeDescendant(mgr.pid, 'mariabackup', 60_000);
    mgr.child.kill('SIGTERM');
    // The backup cannot end (it is stopped): the clean stop waits for it a while; a second signal meanwhile changes nothing.
    for (let i = 0; i < 100 && !messages(mgr).some((m) => m.startsWith('node-mgr stopping')); i++) await sleep(50);
    mgr.child.kill('SIGINT');
    const exit = await exitOf(mgr);
    frozen.thaw();
    assertCleanStop(mgr, exit);
    assert.ok(messages(mgr).some((m) => m.startsWith('SIGINT: node-mgr is already stopping')), messages(mgr).slice(-10).join('\n'));
    assert.ok(await isRunning(pids[0]!));
  });

  it('SIGTERM with --stop-nodes-on-exit while du runs: the clean stop also stops the node', async () => {
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config, 120_000, ['--stop-nodes-on-exit']);
    const node = await waitForNode(mgr.url, port, (n) => n.state === 'running');
    frozen = await freezeDescendant(mgr.pid, 'du', 30_000);
    mgr.child.kill('SIGTERM');
    const exit = await exitOf(mgr);
    frozen.thaw();
    assertCleanStop(mgr, exit);
    assert.equal(await isRunning(node.pid), false, 'the node must be stopped with node-mgr');
  });
});

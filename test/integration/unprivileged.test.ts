// The default way to run node-mgr: as the databases' own account (`nodemgr`), with no root at all
// (docs/security.md, "Least privilege"). node-mgr serves, creates a real MariaDB node, and brings
// it back after kill -9, all as that account; nothing it makes belongs to root.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { lookupRunAs } from '../../src/host/run-as.ts';
import { api, BIN, killProcessGroups, waitForNode } from '../support/node-mgr-process.ts';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';

const account = lookupRunAs(TEST_RUN_AS);
const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

describe('node-mgr run as the databases\' account', { skip: process.getuid?.() !== 0 && 'needs root to start a process as the account' }, () => {
  const pids: number[] = [];
  after(async () => {
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('serves, creates a MariaDB node and restarts it after kill -9, without root', async () => {
    const root = path.dirname(await tempNodeDir());
    const home = path.join(root, 'node-mgr');
    execFileSync('install', ['-d', '-o', account.name, '-g', String(account.gid), '-m', '0700', home]);
    const port = await freePort();
    const config = path.join(home, 'node-mgr.json');
    writeFileSync(config, JSON.stringify({
      listen: { host: '127.0.0.1', port },
      runAs: TEST_RUN_AS,
      stateDir: path.join(home, 'state'),
      nodesDir: path.join(home, 'nodes'),
      policy: { restart: { initialDelayMs: 100, maxDelayMs: 500, jitter: 0 } },
    }));
    const child = spawn(process.execPath, [BIN, 'start', '--config', config], { uid: account.uid, gid: account.gid, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    pids.push(child.pid!);
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    child.stderr!.on('data', (c) => (out += c));
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      if ((await api(url, 'GET', '/healthz').catch(() => null))?.status === 200) break;
      assert.ok(i < 600 && child.exitCode === null, `node-mgr did not serve:\n${out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(uidOf(child.pid!), account.uid);
    const dbPort = await freePort();
    const created = await api(url, 'POST', '/v1/nodes', { kind: 'mysql', role: 'storage', port: dbPort, dir: 'db1', user: 'admin', password: 'admin_pwd' });
    assert.equal(created.status, 200, `${created.text}\n${out.slice(-2000)}`);
    pids.push(created.body.pid);
    process.kill(created.body.pid, 'SIGKILL');
    const back = await waitForNode(url, dbPort, (n) => n.state === 'running' && n.pid !== created.body.pid, 90_000);
    pids.push(back.pid);
    for (const p of ['state', 'state/node-mgr.sqlite', 'nodes/db1', 'nodes/db1/my.cnf', 'nodes/db1/log/server.log']) {
      assert.equal(statSync(path.join(home, p)).uid, account.uid, `${p} belongs to the account`);
    }
    assert.equal(statSync(path.join(home, 'state')).mode & 0o777, 0o700);
  });
});

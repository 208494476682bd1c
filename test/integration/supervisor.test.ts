// node-mgr supervising real MariaDB and PostgreSQL servers, run as a separate process so that it
// can be killed like in production.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { freePort, tempNodeDir, removeTempDirs, TEST_RUN_AS } from '../support/nodes.ts';
import { api, BIN, isRunning, killProcessGroups, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';

const run = promisify(execFile);

const fastPolicy = {
  restart: { initialDelayMs: 200, maxDelayMs: 2000, jitter: 0, stableAfterMs: 60_000, maxRestarts: 2, windowMs: 60_000 },
  probe: { intervalMs: 500, timeoutMs: 2000, failureThreshold: 3, startTimeoutMs: 30_000 },
  stop: { gracefulTimeoutMs: 10_000, forcefulTimeoutMs: 5_000 },
};

describe('supervising real servers', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let config: Record<string, unknown>;
  let mysqlPort: number;
  let pgPort: number;
  let badPort: number;
  let latePort: number;
  const seenPids: number[] = [];

  before(async () => {
    root = path.dirname(await tempNodeDir());
    [mysqlPort, pgPort, badPort, latePort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    config = {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      policy: fastPolicy,
      nodes: [
        { kind: 'mysql', role: 'storage', port: mysqlPort, dir: path.join(root, 'storage'), cluster: 'c1', shard: 's1', user: 'admin', password: 'admin_pwd' },
        { kind: 'postgres', role: 'computer', port: pgPort, dir: path.join(root, 'computer'), cluster: 'c1', user: 'admin', password: 'admin_pwd' },
        {
          kind: 'mysql',
          role: 'storage',
          port: badPort,
          dir: path.join(root, 'bad'),
          user: 'admin',
          password: 'admin_pwd',
          policy: { restart: { maxRestarts: 2 } },
        },
        { kind: 'mysql', role: 'storage', port: latePort, dir: path.join(root, 'late'), user: 'admin', password: 'admin_pwd' },
      ],
    };
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await killProcessGroups(seenPids);
    await removeTempDirs();
  });

  const remember = (pid: number | null) => {
    if (pid) seenPids.push(pid);
    return pid;
  };

  it('leaves configured nodes that were never created stopped, saying why', async () => {
    const n = await waitForNode(mgr.url, mysqlPort, (x) => x.state === 'stopped');
    assert.match(n.lastError, /not initialised/);
  });

  it('creates a MariaDB storage node and a PostgreSQL computing node and runs them', async () => {
    const [m, p] = await Promise.all([
      api(mgr.url, 'POST', `/v1/nodes/${mysqlPort}/create`),
      api(mgr.url, 'POST', `/v1/nodes/${pgPort}/create`),
    ]);
    assert.equal(m.status, 200, m.text);
    assert.equal(p.status, 200, p.text);
    assert.equal(m.body.state, 'running');
    assert.equal(p.body.state, 'running');
    remember(m.body.pid);
    remember(p.body.pid);
  });

  it('stops, starts and restarts both nodes, and `status` shows them', async () => {
    for (const port of [mysqlPort, pgPort]) {
      const before = await waitForNode(mgr.url, port, (x) => x.state === 'running');
      const stopped = await api(mgr.url, 'POST', `/v1/nodes/${port}/stop`);
      assert.equal(stopped.body.state, 'stopped', stopped.text);
      assert.equal(await isRunning(before.pid), false, 'the server process is gone after stop');
      const started = await api(mgr.url, 'POST', `/v1/nodes/${port}/start`);
      assert.equal(started.body.state, 'running', started.text);
      remember(started.body.pid);
      const restarted = await api(mgr.url, 'POST', `/v1/nodes/${port}/restart`);
      assert.equal(restarted.body.state, 'running', restarted.text);
      assert.notEqual(restarted.body.pid, started.body.pid);
      remember(restarted.body.pid);
      assert.equal(restarted.body.restarts, 0, 'operator restarts are not crash restarts');
    }
    const { stdout } = await run(process.execPath, [BIN, 'status', '--url', mgr.url]);
    assert.match(stdout, new RegExp(`mysql-${mysqlPort}\\s+storage\\s+${mysqlPort}\\s+running`));
    assert.match(stdout, new RegExp(`postgres-${pgPort}\\s+computer\\s+${pgPort}\\s+running`));
  });

  it('brings mariadbd back after kill -9, with the committed rows and restart count 1', async () => {
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: mysqlPort, user: 'admin', password: 'admin_pwd' });
    await conn.query('CREATE DATABASE IF NOT EXISTS t');
    await conn.query('CREATE TABLE t.rows_kept (id INT PRIMARY KEY) ENGINE=InnoDB');
    await conn.query('INSERT INTO t.rows_kept VALUES (1),(2),(3)');
    await conn.end();
    const before = await waitForNode(mgr.url, mysqlPort, (x) => x.state === 'running');
    process.kill(before.pid, 'SIGKILL');
    const after = await waitForNode(mgr.url, mysqlPort, (x) => x.state === 'running' && x.pid !== before.pid);
    remember(after.pid);
    assert.equal(after.restarts, 1);
    assert.equal(after.lastExit.signal, 'SIGKILL');
    const states = after.transitions.map((t: { to: string }) => t.to).reverse();
    const i = states.lastIndexOf('crashed');
    assert.deepEqual(states.slice(i, i + 4), ['crashed', 'backoff', 'preflight', 'starting']);
    const again = await mysql.createConnection({ host: '127.0.0.1', port: mysqlPort, user: 'admin', password: 'admin_pwd' });
    const [rows] = await again.query('SELECT COUNT(*) AS n FROM t.rows_kept');
    await again.end();
    assert.equal((rows as Array<{ n: number }>)[0]!.n, 3);
  });

  it('brings the postgres postmaster back after kill -9, with the committed rows', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'admin', password: 'admin_pwd', database: 'postgres' });
    await client.connect();
    await client.query('CREATE TABLE rows_kept (id int primary key)');
    await client.query('INSERT INTO rows_kept VALUES (1),(2)');
    await client.end();
    const before = await waitForNode(mgr.url, pgPort, (x) => x.state === 'running');
    process.kill(before.pid, 'SIGKILL');
    const after = await waitForNode(mgr.url, pgPort, (x) => x.state === 'running' && x.pid !== before.pid);
    remember(after.pid);
    assert.equal(after.restarts, 1);
    const again = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'admin', password: 'admin_pwd', database: 'postgres' });
    await again.connect();
    const r = await again.query('SELECT count(*)::int AS n FROM rows_kept');
    await again.end();
    assert.equal(r.rows[0].n, 2);
  });

  it('refuses to START a node whose port a foreign process holds, naming that pid, and starts nothing', async () => {
    await api(mgr.url, 'POST', `/v1/nodes/${mysqlPort}/stop`);
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(mysqlPort, '127.0.0.1', r));
    try {
      const r = await api(mgr.url, 'POST', `/v1/nodes/${mysqlPort}/start`);
      assert.equal(r.status, 409);
      assert.match(r.body.info, new RegExp(`port ${mysqlPort} is held by pid ${process.pid}`));
      const n = await waitForNode(mgr.url, mysqlPort, () => true);
      assert.equal(n.state, 'stopped');
      assert.equal(n.pid, null);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
    const started = await api(mgr.url, 'POST', `/v1/nodes/${mysqlPort}/start`);
    assert.equal(started.body.state, 'running', started.text);
    remember(started.body.pid);
  });

  it('ends in failed after the allowed restarts when the server rejects its config, naming the bad option', async () => {
    const created = await api(mgr.url, 'POST', `/v1/nodes/${badPort}/create`);
    assert.equal(created.status, 200, created.text);
    remember(created.body.pid);
    // Restart it with an option mariadbd does not know, through a config change on disk.
    const bad = await api(mgr.url, 'GET', `/v1/nodes/${badPort}`);
    assert.equal(bad.body.state, 'running');
    await mgr.stop('SIGTERM');
    const nodes = (config.nodes as Array<Record<string, unknown>>).map((n) => (n.port === badPort ? { ...n, serverOptions: { 'bogus-option-xyz': 1 } } : n));
    config = { ...config, nodes };
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    await api(mgr.url, 'POST', `/v1/nodes/${badPort}/restart`);
    const failed = await waitForNode(mgr.url, badPort, (x) => x.state === 'failed', 60_000);
    assert.equal(failed.restarts, 2);
    assert.equal(failed.lastExit.cause, 'bad_config_option');
    assert.match(failed.lastError, /bogus[-_]option[-_]xyz/);
  });

  it('keeps every database running when node-mgr is killed with -9, and the next node-mgr adopts them', async () => {
    const before = {
      m: await waitForNode(mgr.url, mysqlPort, (x) => x.state === 'running'),
      p: await waitForNode(mgr.url, pgPort, (x) => x.state === 'running'),
    };
    await mgr.stop('SIGKILL');
    assert.equal(await isRunning(before.m.pid), true);
    assert.equal(await isRunning(before.p.pid), true);
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    const m = await waitForNode(mgr.url, mysqlPort, (x) => x.state === 'running');
    const p = await waitForNode(mgr.url, pgPort, (x) => x.state === 'running');
    assert.equal(m.pid, before.m.pid);
    assert.equal(p.pid, before.p.pid);
    assert.equal(m.adopted, true);
    // The adopted server is not our child; its death is still seen and repaired.
    process.kill(m.pid, 'SIGKILL');
    const back = await waitForNode(mgr.url, mysqlPort, (x) => x.state === 'running' && x.pid !== m.pid);
    remember(back.pid);
    assert.equal(back.adopted, false);
  });

  it('keeps every database running across a clean SIGTERM of node-mgr too', async () => {
    const m = await waitForNode(mgr.url, mysqlPort, (x) => x.state === 'running');
    const p = await waitForNode(mgr.url, pgPort, (x) => x.state === 'running');
    await mgr.stop('SIGTERM');
    assert.equal(await isRunning(m.pid), true);
    assert.equal(await isRunning(p.pid), true);
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    assert.equal((await waitForNode(mgr.url, mysqlPort, (x) => x.state === 'running')).pid, m.pid);
    assert.equal((await waitForNode(mgr.url, pgPort, (x) => x.state === 'running')).pid, p.pid);
  });

  it('remembers a node the operator stopped: the next node-mgr leaves it stopped', async () => {
    await api(mgr.url, 'POST', `/v1/nodes/${pgPort}/stop`);
    await mgr.stop('SIGTERM');
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    const p = await waitForNode(mgr.url, pgPort, (x) => x.state !== 'adopting');
    assert.equal(p.state, 'stopped');
    assert.equal(p.wanted, 'stopped');
  });

  it('DROP leaves no process and no data dir in place; the directories are in the trash', async () => {
    const started = await api(mgr.url, 'POST', `/v1/nodes/${pgPort}/start`);
    const pid = remember(started.body.pid)!;
    const r = await api(mgr.url, 'DELETE', `/v1/nodes/${pgPort}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(await isRunning(pid), false);
    assert.equal(existsSync(path.join(root, 'computer')), false);
    const trash = readdirSync(path.join(root, 'state', 'trash'));
    assert.ok(trash.some((d) => d.startsWith(`postgres-${pgPort}`)), `trash holds ${trash.join(', ')}`);
    assert.equal((await api(mgr.url, 'GET', `/v1/nodes/${pgPort}`)).status, 404);
  });

  it('DROP of a configured node whose dir also holds the operator\'s files moves only what node-mgr made', async () => {
    const dir = path.join(root, 'bad');
    writeFileSync(path.join(dir, 'operator-notes.txt'), 'do not lose me\n');
    const r = await api(mgr.url, 'DELETE', `/v1/nodes/${badPort}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(readdirSync(dir), ['operator-notes.txt']);
    assert.equal(readFileSync(path.join(dir, 'operator-notes.txt'), 'utf8'), 'do not lose me\n');
    const trashed = readdirSync(path.join(root, 'state', 'trash')).find((d) => d.startsWith(`mysql-${badPort}`));
    assert.ok(trashed, 'the node has a trash entry');
    const moved = readdirSync(path.join(root, 'state', 'trash', trashed, 'bad')).sort();
    assert.ok(moved.includes('data') && moved.includes('my.cnf'), `trash holds ${moved.join(', ')}`);
  });

  it('DROP while the node is being created is carried out once its data dir is made: no server started, the create says so', async () => {
    const create = api(mgr.url, 'POST', `/v1/nodes/${latePort}/create`);
    await waitForNode(mgr.url, latePort, (x) => x.state === 'initializing');
    const r = await api(mgr.url, 'DELETE', `/v1/nodes/${latePort}`);
    assert.equal(r.status, 200, r.text);
    const created = await create;
    assert.equal(created.status, 409, created.text);
    assert.match(created.text, /was dropped while it was being created/);
    assert.equal((await api(mgr.url, 'GET', `/v1/nodes/${latePort}`)).status, 404);
    assert.equal(existsSync(path.join(root, 'late')), false);
    const trash = readdirSync(path.join(root, 'state', 'trash'));
    assert.ok(trash.some((d) => d.startsWith(`mysql-${latePort}`)), `trash holds ${trash.join(', ')}`);
    const { stdout } = await run('pgrep', ['-f', path.join(root, 'late')]).catch(() => ({ stdout: '' }));
    assert.equal(stdout.trim(), '', 'a server of the dropped node runs');
  });
});

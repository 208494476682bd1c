// `delete` + `file_type:"binlog"` against real MariaDB replication: a primary and a replica, both
// storage nodes of one node-mgr process. The replica is made to lag (its SQL thread, then both
// threads stopped) while the primary rotates its binlogs; the purge keeps what the replica needs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { freePort, tempNodeDir, removeTempDirs, TEST_RUN_AS } from '../support/nodes.ts';
import { api, killProcessGroups, legacy, startNodeMgrProcess, waitForJob, type NodeMgrProcess } from '../support/node-mgr-process.ts';

const USER = 'admin';
const PWD = 'admin_pwd';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('purging binlogs with a replica attached', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let primaryPort: number;
  let replicaPort: number;
  let primary: mysql.Connection;
  let replica: mysql.Connection;
  const pids: number[] = [];

  const binlogs = async () => ((await primary.query('SHOW BINARY LOGS'))[0] as Array<{ Log_name: string }>).map((r) => r.Log_name);
  const slaveStatus = async () => ((await replica.query('SHOW SLAVE STATUS'))[0] as any[])[0];
  const purge = async (extra: Record<string, unknown> = {}) => {
    const r = await legacy(mgr.url, { ver: '0.1', job_type: 'delete', file_type: 'binlog', s_ip: '127.0.0.1', s_port: primaryPort, s_user: USER, s_pwd: PWD, ...extra });
    assert.equal(r.status, 200, r.text);
    return waitForJob(mgr.url, r.body.job_id);
  };
  /** Writes a row and rotates, `n` times: n new binlog files, each with an event in the one before. */
  const rotate = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await primary.query('INSERT INTO app.events (note) VALUES (?)', [`rotation ${i}`]);
      await primary.query('FLUSH BINARY LOGS');
    }
  };
  const waitUntil = async (what: string, pred: () => Promise<boolean>) => {
    for (let i = 0; !(await pred().catch(() => false)); i++) {
      assert.ok(i < 200, `timed out waiting until ${what}`);
      await sleep(100);
    }
  };

  before(async () => {
    root = path.dirname(await tempNodeDir());
    [primaryPort, replicaPort] = [await freePort(), await freePort()];
    const node = (port: number, name: string) => ({ kind: 'mysql', role: 'storage', port, dir: path.join(root, name), cluster: 'c1', shard: 's1', user: USER, password: PWD });
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      policy: { restart: { initialDelayMs: 200, jitter: 0 }, probe: { startTimeoutMs: 60_000 } },
      nodes: [node(primaryPort, 'primary'), node(replicaPort, 'replica')],
    });
    const created = await Promise.all([primaryPort, replicaPort].map((p) => api(mgr.url, 'POST', `/v1/nodes/${p}/create`)));
    for (const c of created) {
      assert.equal(c.status, 200, c.text);
      pids.push(c.body.pid);
    }
    primary = await mysql.createConnection({ host: '127.0.0.1', port: primaryPort, user: USER, password: PWD });
    replica = await mysql.createConnection({ host: '127.0.0.1', port: replicaPort, user: USER, password: PWD });
    await primary.query("CREATE USER repl@'%' IDENTIFIED BY 'repl_pwd'");
    await primary.query("GRANT REPLICATION SLAVE ON *.* TO repl@'%'");
    await primary.query('CREATE DATABASE app');
    await primary.query('CREATE TABLE app.events (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(40))');
    const [[first]] = (await primary.query('SHOW BINARY LOGS')) as any;
    await replica.query(
      `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${primaryPort}, MASTER_USER='repl', MASTER_PASSWORD='repl_pwd', MASTER_LOG_FILE='${first.Log_name}', MASTER_LOG_POS=4, MASTER_USE_GTID=no`,
    );
    await replica.query('START SLAVE');
    await rotate(1);
    await waitUntil('the replica has caught up', async () => {
      const s = await slaveStatus();
      // The row alone is not enough: on a busy machine the SQL thread may apply it before it reaches
      // the rotate event, and the test below needs it to stand in the newest binlog.
      return (
        s?.Slave_SQL_Running === 'Yes' &&
        s.Relay_Master_Log_File === (await binlogs()).at(-1) &&
        ((await replica.query('SELECT COUNT(*) AS n FROM app.events'))[0] as any)[0].n === 1
      );
    });
  });

  after(async () => {
    primary?.destroy();
    replica?.destroy();
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('keeps the binlogs a replica with a stopped SQL thread has not applied; dry_run changes nothing', async () => {
    await replica.query('STOP SLAVE SQL_THREAD');
    const needed = (await slaveStatus()).Relay_Master_Log_File as string;
    await rotate(3);
    // The IO thread keeps reading: only the SQL thread lags.
    await waitUntil('the IO thread has read everything', async () => (await slaveStatus()).Master_Log_File === (await binlogs()).at(-1));
    const all = await binlogs();
    const keepFrom = all.indexOf(needed);
    assert.ok(keepFrom > 0, `some binlog precedes ${needed} in ${all}`);

    const dry = await purge({ dry_run: true });
    assert.equal(dry.result, 'succeed', JSON.stringify(dry));
    assert.equal(dry.output.dry_run, true);
    assert.deepEqual(await binlogs(), all, 'dry_run purged nothing');
    assert.deepEqual(
      dry.output.binlogs.map((b: { file: string; action: string }) => b.action),
      all.map((_, i) => (i < keepFrom ? 'would purge' : 'kept')),
    );

    const real = await purge();
    assert.equal(real.result, 'succeed', JSON.stringify(real));
    assert.deepEqual(await binlogs(), all.slice(keepFrom));
    const byFile = new Map(real.output.binlogs.map((b: { file: string }) => [b.file, b]));
    assert.equal((byFile.get(all[0]!) as any).action, 'purged');
    assert.match((byFile.get(needed) as any).reason, new RegExp(`replica .*:${replicaPort}.* still needs it \\(it is at ${needed.replace('.', '\\.')}\\)`));
    assert.match((byFile.get(all.at(-1)!) as any).reason, /the current binlog/);
    assert.ok(existsSync(path.join(root, 'primary/log/error.log')), 'the error log is never touched (the original deleted it)');
  });

  it('also keeps them for a replica of this host that is disconnected (IO thread stopped too)', async () => {
    await replica.query('STOP SLAVE');
    await rotate(2);
    const all = await binlogs();
    const needed = (await slaveStatus()).Relay_Master_Log_File as string;
    const job = await purge();
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    assert.deepEqual(await binlogs(), all.slice(all.indexOf(needed)), 'nothing the stopped replica needs was purged');
    assert.ok(job.output.replicas.some((r: { replica: string; needs: string }) => r.replica === `mysql-${replicaPort}` && r.needs === needed), JSON.stringify(job.output.replicas));
  });

  it('purges up to the current binlog once the replica has caught up', async () => {
    await replica.query('START SLAVE');
    await waitUntil('the replica has caught up', async () => {
      const s = await slaveStatus();
      return s.Relay_Master_Log_File === (await binlogs()).at(-1) && s.Exec_Master_Log_Pos === s.Read_Master_Log_Pos;
    });
    const before = await binlogs();
    const job = await purge();
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    // Everything but the current binlog goes, except a file the primary's dump thread still has
    // open for a moment after the replica moved on: the server keeps that one, and the job says so.
    const left = await binlogs();
    for (const b of job.output.binlogs as Array<{ file: string; action: string; reason: string }>) {
      if (b.action === 'purged') assert.ok(!left.includes(b.file), `${b.file} reported purged but still there`);
      else {
        assert.ok(left.includes(b.file), `${b.file} reported kept but gone`);
        assert.ok(b.file === job.output.current || /the server did not purge it/.test(b.reason), JSON.stringify(b));
      }
    }
    assert.ok(left.length <= 2 && left.length < before.length, JSON.stringify(job.output));
    const [[row]] = (await replica.query('SELECT COUNT(*) AS n FROM app.events')) as any;
    assert.equal(row.n, 6, 'the replica applied every event (1 + 3 + 2 rotations)');
  });

  it('refuses a "to" binlog that is not in the index', async () => {
    const job = await purge({ to: 'binlog.999999' });
    assert.equal(job.result, 'error');
    assert.match(job.info, /binlog "binlog\.999999" is not in the binlog index/);
  });
});

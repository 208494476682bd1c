// Rebuilding a replica (POST /v1/nodes/:port/rebuild, seed-style rebuild_node) with real MariaDB
// nodes through a real node-mgr: a node of the shard becomes a replica of the primary from the
// shard's backup, catches up with writes made after the backup and during the rebuild, has the
// primary's checksums, and keeps replicating; a primary of another shard, one that does not answer
// and one that does not exist are refused before the node is touched.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, makeSpec, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, killProcessGroups, legacy, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { ADMIN, loadMysqlData, mysqlChecksums, mysqlConn, runRestJob } from '../support/backup-data.ts';
import { seedPostPara } from '../support/seed-client.ts';
import { waitCaughtUp, type CatchUpProgress } from '../../src/engines/mysql/replication.ts';

/** Enough tables that the rebuild's list of compared checksums is longer than the original clients' 2,047-byte read. */
const ARCHIVE_TABLES = 30;

describe('rebuilding a replica', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  const port = { primary: 0, replica: 0, other: 0, down: 0 };
  const pids: number[] = [];
  const node = (p: number) => waitForNode(mgr.url, p, () => true);
  const waitForJobEnd = async (id: string) => {
    for (;;) {
      const s = (await legacy(mgr.url, { job_type: 'get_status', job_id: id })).body;
      if (s.result !== 'busy') return s;
      await sleep(50);
    }
  };

  async function refusedUntouched(primary: string, pattern: RegExp): Promise<void> {
    const before = await node(port.replica);
    const job = await runRestJob(mgr.url, `/v1/nodes/${port.replica}/rebuild`, { primary });
    assert.equal(job.result, 'error', JSON.stringify(job));
    assert.match(job.info, pattern);
    assert.match(job.info, /the node was not touched/);
    const after = await node(port.replica);
    assert.equal(after.pid, before.pid);
    assert.equal(after.state, 'running');
  }

  before(async () => {
    root = path.dirname(await tempNodeDir());
    for (const k of Object.keys(port) as (keyof typeof port)[]) port[k] = await freePort();
    const storage = (p: number, dir: string, shard: string) => ({ kind: 'mysql', role: 'storage', port: p, dir: path.join(root, dir), cluster: 'clust1', shard, ...ADMIN });
    const config = {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      policy: { restart: { initialDelayMs: 200, jitter: 0 }, probe: { intervalMs: 1000, startTimeoutMs: 60_000 } },
      backup: { store: 'local', localDir: path.join(root, 'backups') },
      nodes: [storage(port.primary, 'primary', 'shard1'), storage(port.replica, 'replica', 'shard1'), storage(port.other, 'other', 'shard2'), storage(port.down, 'down', 'shard1')],
    };
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    for (const p of [port.primary, port.replica, port.other]) {
      const created = await api(mgr.url, 'POST', `/v1/nodes/${p}/create`);
      assert.equal(created.status, 200, created.text);
      pids.push(created.body.pid);
    }
    await loadMysqlData(port.primary, 20);
    const a = await mysqlConn(port.primary);
    for (let i = 0; i < ARCHIVE_TABLES; i++) {
      await a.query(`CREATE TABLE shop.orders_archive_${i} (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB`);
      await a.query(`INSERT INTO shop.orders_archive_${i} VALUES (1, 'archived ${i}')`);
    }
    await a.end();
    const done = await runRestJob(mgr.url, `/v1/nodes/${port.primary}/backup`, {});
    assert.equal(done.result, 'succeed', JSON.stringify(done));
    // Written after the backup: the replica must get these from the primary's binlog.
    const c = await mysqlConn(port.primary);
    await c.query('DELETE FROM shop.big_0 WHERE id % 5 = 0');
    await c.query("INSERT INTO shop.notes (note) SELECT CONCAT('after backup ', seq) FROM shop.seq_1_to_500");
    await c.query('FLUSH BINARY LOGS');
    await c.query('CREATE TABLE shop.later (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB');
    await c.query("INSERT INTO shop.later SELECT seq, 'later' FROM shop.seq_1_to_200");
    await c.end();
    // The replica has drifted: data of its own that the rebuild must replace.
    const r = await mysqlConn(port.replica);
    await r.query('CREATE DATABASE shop');
    await r.query('CREATE TABLE shop.stray (id INT PRIMARY KEY) ENGINE=InnoDB');
    await r.end();
  });

  after(async () => {
    const live = mgr ? await api(mgr.url, 'GET', '/v1/nodes').then((res) => (res.body as { pid: number | null }[]).map((n) => n.pid)).catch(() => []) : [];
    await mgr?.stop('SIGKILL');
    await killProcessGroups([...pids, ...live]);
    await removeTempDirs();
  });

  it('refuses a primary of another shard, one that does not answer, an unknown one, and an unknown node, before touching anything', async () => {
    await refusedUntouched(`127.0.0.1:${port.other}`, /serves clust1\/shard2, mysql-\d+ clust1\/shard1/);
    await refusedUntouched(`127.0.0.1:${port.down}`, /the primary 127\.0\.0\.1:\d+ is not reachable/);
    const unused = await freePort();
    await refusedUntouched(`127.0.0.1:${unused}`, new RegExp(`no node on port ${unused} on this host`));
    await refusedUntouched(`127.0.0.1:${port.replica}`, /is the node being rebuilt/);
    await refusedUntouched('192.0.2.7:3310', /neither this host nor a configured peer/);
    const unknown = await api(mgr.url, 'POST', `/v1/nodes/${unused}/rebuild`, { primary: `127.0.0.1:${port.primary}` });
    assert.equal(unknown.status, 404, unknown.text);
    const bad = await api(mgr.url, 'POST', `/v1/nodes/${port.replica}/rebuild`, { primary: 'no port here' });
    assert.equal(bad.status, 400, bad.text);
  });

  it('rebuilds the node as a replica that catches up, has the primary checksums, and keeps replicating (seed-style rebuild_node)', async () => {
    const r = await legacy(mgr.url, {
      ver: '0.1',
      job_type: 'rebuild_node',
      s_ip: '127.0.0.1',
      s_port: port.replica,
      s_user: ADMIN.user,
      s_pwd: ADMIN.password,
      primary_ip: '127.0.0.1',
      primary_port: port.primary,
      timeout_s: 300,
    });
    assert.equal(r.status, 200, r.text);
    // get_status as the seed clients poll it, all along the job.
    const seen: any[] = [];
    const polling = (async () => {
      for (;;) {
        const reply = await legacy(mgr.url, { job_type: 'get_status', job_id: r.body.job_id });
        assert.ok(Buffer.byteLength(reply.text) < 1800, `get_status is ${Buffer.byteLength(reply.text)} bytes: ${reply.text}`);
        if (reply.body.result !== 'busy') return reply.body;
        if (reply.body.progress) seen.push(reply.body.progress);
        await sleep(20);
      }
    })();
    // Writes while the rebuild runs: the catch-up has to bring them too.
    const c = await mysqlConn(port.primary);
    for (let i = 0; i < 20; i++) {
      await c.query('INSERT INTO shop.later VALUES (?, ?)', [1000 + i, 'during']);
      await sleep(100);
    }
    await c.end();
    const job = await polling;
    assert.equal(job.result, 'succeed', JSON.stringify(job));

    // The finished job as the original client reads it: one recv() of at most 2,047 bytes. The
    // compared tables' list is longer than that; the reply counts them and names the REST record.
    const client = await seedPostPara(mgr.url, JSON.stringify({ ver: '0.1', job_type: 'get_status', job_id: r.body.job_id }));
    assert.equal(client.stderr, '', `the client's read was cut: ${client.stderr}`);
    const read = JSON.parse(client.result);
    assert.equal(read.result, 'succeed');
    assert.equal(read.job_status, 'succeed');
    assert.ok(read.output.tables >= ARCHIVE_TABLES + 3, client.result);
    assert.equal(read.output.primary, `127.0.0.1:${port.primary}`);
    assert.equal(read.output.replication.sql_running, 'Yes');
    assert.equal(read.detail, `/v1/jobs/${r.body.job_id}`);

    // The whole result, every table's checksums, is the REST record's.
    const record = await api(mgr.url, 'GET', read.detail);
    assert.equal(record.status, 200, record.text);
    const out = record.body.result;
    // Progress: the restore's bytes, then the catch-up's lag against the primary.
    assert.ok(seen.some((p) => p.phase === 'downloading' && p.bytes_total > 0), `phases seen: ${[...new Set(seen.map((p) => p.phase))]}`);
    const catching = seen.filter((p) => p.phase === 'catching up');
    for (const p of catching) for (const k of ['seconds_behind', 'trx_behind', 'bytes_behind']) assert.ok(k in p, `${k} in ${JSON.stringify(p)}`);
    // Behind when the wait began: the writes after the backup, in transactions and binlog bytes.
    assert.ok(out.behind_at_start.transactions > 0 && out.behind_at_start.bytes > 0, JSON.stringify(out.behind_at_start));
    assert.equal(out.primary, `127.0.0.1:${port.primary}`);
    assert.ok(out.tables.length >= ARCHIVE_TABLES + 3, JSON.stringify(out.tables));
    assert.ok(out.tables.every((t: { match: boolean }) => t.match));
    assert.ok(out.tables.some((t: { table: string }) => t.table === 'shop.later'));
    assert.equal(out.replication.io_running, 'Yes');
    assert.equal(out.replication.sql_running, 'Yes');

    // Replication keeps running: a row written now reaches the replica.
    const p = await mysqlConn(port.primary);
    await p.query("INSERT INTO shop.later VALUES (5000, 'after rebuild')");
    const [[pos]] = (await p.query('SELECT @@gtid_binlog_pos AS pos')) as unknown as [{ pos: string }[]];
    await p.end();
    const q = await mysqlConn(port.replica);
    try {
      const [[waited]] = (await q.query('SELECT MASTER_GTID_WAIT(?, 60) AS r', [pos!.pos])) as unknown as [{ r: number }[]];
      assert.equal(Number(waited!.r), 0);
      const [[row]] = (await q.query('SELECT v FROM shop.later WHERE id = 5000')) as unknown as [{ v: string }[]];
      assert.equal(row?.v, 'after rebuild');
      const [[stray]] = (await q.query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'shop' AND table_name = 'stray'")) as unknown as [{ n: number }[]];
      assert.equal(Number(stray!.n), 0, 'the replica kept a table of its own');
    } finally {
      await q.end();
    }
    assert.deepEqual(await mysqlChecksums(port.replica), await mysqlChecksums(port.primary));
    assert.equal((await node(port.replica)).state, 'running');
  });

  it('tells how far behind the replica was at the start even when its SQL thread had applied nothing yet (no coordinate of its own)', async () => {
    // CI once read behind_at_start.bytes null: the first SHOW SLAVE STATUS came before the SQL thread
    // had applied an event, so it named no binlog file. Made certain here: the IO thread runs, the SQL
    // thread starts only after the wait's first report.
    const spec = await makeSpec('mysql', { port: port.replica });
    const r = await mysqlConn(port.replica);
    const p = await mysqlConn(port.primary);
    try {
      const [[pos]] = (await p.query('SELECT @@gtid_binlog_pos AS pos')) as unknown as [{ pos: string }[]];
      await r.query('SELECT MASTER_GTID_WAIT(?, 60)', [pos!.pos]);
      await r.query('STOP SLAVE');
      const [[start]] = (await p.query('SHOW MASTER STATUS')) as unknown as [{ File: string; Position: number }[]];
      for (let i = 0; i < 10; i++) await p.query('INSERT INTO shop.later VALUES (?, ?)', [7000 + i, 'while stopped']);
      const [[slave]] = (await r.query('SELECT @@gtid_slave_pos AS pos')) as unknown as [{ pos: string }[]];
      await r.query('RESET SLAVE ALL');
      await r.query('SET GLOBAL gtid_slave_pos = ?', [slave!.pos]);
      await r.query('CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, MASTER_USE_GTID = slave_pos', ['127.0.0.1', port.primary, ADMIN.user, ADMIN.password]);
      await r.query('START SLAVE IO_THREAD');
      const reports: CatchUpProgress[] = [];
      let sqlStarted: Promise<unknown> | null = null;
      const primary = { host: '127.0.0.1', port: port.primary };
      const from = { gtid: slave!.pos, at: { file: start!.File, position: Number(start!.Position) } };
      const done = await waitCaughtUp(spec, ADMIN, primary, ADMIN, from, 60_000, new AbortController().signal, (rep) => {
        reports.push(rep);
        sqlStarted ??= r.query('START SLAVE SQL_THREAD');
      });
      await sqlStarted;
      assert.equal(done.behindAtStart.transactionsBehind, 10, JSON.stringify(done));
      assert.ok((done.behindAtStart.bytesBehind ?? 0) > 0, `bytes behind at the start: ${JSON.stringify(done.behindAtStart)}`);
      assert.equal(reports[0]!.bytesTotal, done.behindAtStart.bytesBehind);
      // A start coordinate the primary does not place at that GTID is not used: the bytes are unknown until the SQL thread names its own.
      await r.query('STOP SLAVE');
      await p.query('INSERT INTO shop.later VALUES (7100, ?)', ['while stopped']);
      const [[again]] = (await r.query('SELECT @@gtid_slave_pos AS pos')) as unknown as [{ pos: string }[]];
      await r.query('RESET SLAVE ALL');
      await r.query('SET GLOBAL gtid_slave_pos = ?', [again!.pos]);
      await r.query('CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, MASTER_USE_GTID = slave_pos', ['127.0.0.1', port.primary, ADMIN.user, ADMIN.password]);
      await r.query('START SLAVE IO_THREAD');
      let second: Promise<unknown> | null = null;
      const wrong = await waitCaughtUp(spec, ADMIN, primary, ADMIN, { gtid: again!.pos, at: from.at }, 60_000, new AbortController().signal, () => {
        second ??= r.query('START SLAVE SQL_THREAD');
      });
      await second;
      assert.equal(wrong.behindAtStart.transactionsBehind, 1);
      assert.equal(wrong.behindAtStart.bytesBehind, null, JSON.stringify(wrong.behindAtStart));
    } finally {
      await r.query('START SLAVE').catch(() => {});
      await r.end();
      await p.end();
    }
    assert.equal((await node(port.replica)).state, 'running');
  });

  it('rebuild_node is a seed job type: a bad request is refused with the field named', async () => {
    const r = await api(mgr.url, 'POST', '/', { ver: '0.1', job_type: 'rebuild_node', s_ip: '127.0.0.1', s_port: port.replica, s_user: 'u', s_pwd: 'p', primary_ip: '127.0.0.1' });
    assert.equal(r.status, 400, r.text);
    assert.match(r.body.info, /primary_port/);
  });

  it('checks a rebuild\'s fields by one schema on both faces: the same bad field is a 400 naming it, seed or REST', async () => {
    const seed = { ver: '0.1', job_type: 'rebuild_node', s_ip: '127.0.0.1', s_port: port.replica, s_user: 'u', s_pwd: 'p', primary_ip: '127.0.0.1', primary_port: port.primary };
    const rest = { primary: `127.0.0.1:${port.primary}` };
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ tables: ['no_dot_here'] }, /tables/],
      [{ max_table_mb: 0 }, /max_table_mb/],
      [{ timeout_s: 1.5 }, /timeout_s/],
      [{ repl_user: '' }, /repl_user/],
    ];
    for (const [field, names] of bad) {
      const s = await api(mgr.url, 'POST', '/', { ...seed, ...field });
      assert.equal(s.status, 400, `seed ${JSON.stringify(field)}: ${s.text}`);
      assert.match(s.body.info, names);
      const r = await api(mgr.url, 'POST', `/v1/nodes/${port.replica}/rebuild`, { ...rest, ...field });
      assert.equal(r.status, 400, `REST ${JSON.stringify(field)}: ${r.text}`);
      assert.match(r.body.info, names);
    }
    // The seed face takes the replication login too, redacted in the stored job like any password.
    const ok = await api(mgr.url, 'POST', '/', { ...seed, job_id: 'rebuild-repl-login', primary_port: await freePort(), repl_user: 'repl', repl_password: 'repl-secret' });
    assert.equal(ok.status, 200, ok.text);
    const stored = await api(mgr.url, 'GET', '/v1/jobs/rebuild-repl-login');
    assert.equal(stored.body.params.repl_password, '******');
    assert.equal((await waitForJobEnd(ok.body.job_id)).result, 'error');
  });
});

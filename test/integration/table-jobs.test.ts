// The table jobs (`send`, `delete` table) through real node-mgr processes supervising real MariaDB
// storage nodes: a local send between two nodes of one node-mgr, a cross-host send to a second
// node-mgr listening on another loopback address (127.0.0.2) with its own node there, refusals that
// leave the destination untouched, and a node-mgr killed with SIGKILL in the middle of a send.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { freePort, tempNodeDir, removeTempDirs, TEST_RUN_AS } from '../support/nodes.ts';
import { api, killProcessGroups, startNodeMgrProcess, waitForJob, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { filenameEncode } from '../../src/jobs/sql-names.ts';
import { verifyAgainst } from '../../src/jobs/node-sql.ts';

const TOKEN = 'table-jobs-test-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };
// B's own token: A knows it only as B's credential in its `peers` list, and B accepts nothing else.
const TOKEN_B = 'table-jobs-test-token-of-host-b';
const AUTH_B = { authorization: `Bearer ${TOKEN_B}` };
const USER = 'admin';
const PWD = 'admin_pwd';
const ROWS = 100_000;

const policy = {
  restart: { initialDelayMs: 200, jitter: 0 },
  probe: { intervalMs: 1000, timeoutMs: 3000, startTimeoutMs: 60_000 },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('table jobs on real MariaDB through node-mgr', () => {
  let root: string;
  let apiPort: number;
  const port = { s1: 0, s2: 0, s3: 0 };
  let configA: Record<string, unknown>;
  let configB: Record<string, unknown>;
  let mgrA: NodeMgrProcess;
  let mgrB: NodeMgrProcess;
  const pids: number[] = [];
  const conns = new Map<number, mysql.Connection>();

  const sql = async (nodePort: number, ip = '127.0.0.1') => {
    let c = conns.get(nodePort);
    if (!c) {
      c = await mysql.createConnection({ host: ip, port: nodePort, user: USER, password: PWD, charset: 'utf8mb4', multipleStatements: true });
      conns.set(nodePort, c);
    }
    return c;
  };
  const one = async (nodePort: number, q: string, ip?: string) => {
    const [rows] = await (await sql(nodePort, ip)).query(q);
    return (rows as any[])[0];
  };
  const checksum = async (nodePort: number, table: string, ip?: string) => String((await one(nodePort, `CHECKSUM TABLE ${table}`, ip)).Checksum);
  const count = async (nodePort: number, table: string, ip?: string) => Number((await one(nodePort, `SELECT COUNT(*) AS n FROM ${table}`, ip)).n);

  const post = (url: string, body: unknown) => api(url, 'POST', '/', body, AUTH);
  const source = (table: string, db = 'shop') => ({ s_ip: '127.0.0.1', s_port: port.s1, s_user: USER, s_pwd: PWD, s_dbname: db, s_table_name: table });
  const dest = (table: string, p = port.s2, ip = '127.0.0.1', db = 'shop') => ({ d_ip: ip, d_port: p, d_user: USER, d_pwd: PWD, d_dbname: db, d_table_name: table });
  const send = async (url: string, body: Record<string, unknown>) => {
    const r = await post(url, { ver: '0.1', job_type: 'send', file_type: 'table', ...body });
    assert.equal(r.status, 200, r.text);
    return r.body.job_id as string;
  };

  const nodeEntry = (name: keyof typeof port, ip: string) => ({
    kind: 'mysql',
    role: 'storage',
    port: port[name],
    ip,
    dir: path.join(root, name),
    cluster: 'c1',
    shard: name,
    user: USER,
    password: PWD,
  });

  before(async () => {
    root = path.dirname(await tempNodeDir());
    apiPort = await freePort();
    for (const k of Object.keys(port) as Array<keyof typeof port>) port[k] = await freePort();
    // Two "hosts": node-mgr A on 127.0.0.1 with s1 and s2, node-mgr B on 127.0.0.2 with s3. Both
    // listen on the same port (on every host node-mgr is on one port); each has its own token, and A
    // lists B as a peer with B's token.
    const common = { runAs: TEST_RUN_AS, policy };
    configA = {
      ...common,
      security: { token: TOKEN },
      peers: [{ host: '127.0.0.2', token: TOKEN_B }],
      listen: { host: '127.0.0.1', port: apiPort },
      stateDir: path.join(root, 'stateA'),
      nodes: [nodeEntry('s1', '127.0.0.1'), nodeEntry('s2', '127.0.0.1')],
    };
    configB = { ...common, security: { token: TOKEN_B }, listen: { host: '127.0.0.2', port: apiPort }, stateDir: path.join(root, 'stateB'), nodes: [nodeEntry('s3', '127.0.0.2')] };
    [mgrA, mgrB] = await Promise.all([startNodeMgrProcess(path.join(root, 'mgrA'), configA), startNodeMgrProcess(path.join(root, 'mgrB'), configB)]);
    const created = await Promise.all([
      api(mgrA.url, 'POST', `/v1/nodes/${port.s1}/create`, undefined, AUTH),
      api(mgrA.url, 'POST', `/v1/nodes/${port.s2}/create`, undefined, AUTH),
      api(mgrB.url, 'POST', `/v1/nodes/${port.s3}/create`, undefined, AUTH_B),
    ]);
    for (const c of created) {
      assert.equal(c.status, 200, c.text);
      pids.push(c.body.pid);
    }
    const s1 = await sql(port.s1);
    await s1.query(`
      CREATE DATABASE shop;
      CREATE DATABASE \`postgres_$$_public\`;
      CREATE TABLE shop.orders (id INT PRIMARY KEY, customer INT NOT NULL, amount DECIMAL(10,2) NOT NULL, note VARCHAR(100), KEY (customer)) ENGINE=InnoDB;
      INSERT INTO shop.orders SELECT seq, seq % 977, (seq * 7919 % 100000) / 100, CONCAT('order ', seq, ' ', REPEAT('x', seq % 40)) FROM shop.seq_1_to_${ROWS};
      CREATE TABLE \`postgres_$$_public\`.\`we$ird.näme-€\` (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;
      INSERT INTO \`postgres_$$_public\`.\`we$ird.näme-€\` SELECT seq, CONCAT('v', seq) FROM shop.seq_1_to_1000;
    `);
    await (await sql(port.s2)).query(`
      CREATE DATABASE shop;
      CREATE DATABASE \`postgres_$$_public\`;
      CREATE TABLE shop.orders_empty (id INT PRIMARY KEY, customer INT NOT NULL, amount DECIMAL(10,2) NOT NULL, note VARCHAR(100), KEY (customer)) ENGINE=InnoDB;
      CREATE TABLE shop.orders_other (id INT PRIMARY KEY, customer INT NOT NULL, amount DECIMAL(12,2) NOT NULL, note VARCHAR(100)) ENGINE=InnoDB;
      INSERT INTO shop.orders_other VALUES (1, 1, 9.99, 'keep me'), (2, 2, 19.99, 'and me');
    `);
    await (await sql(port.s3, '127.0.0.2')).query('CREATE DATABASE shop');
  });

  after(async () => {
    for (const c of conns.values()) c.destroy();
    await mgrA?.stop('SIGKILL');
    await mgrB?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('sends a 100k-row table to a new name on another node of this host, identical, and leaves the source intact', async () => {
    const sourceSum = await checksum(port.s1, 'shop.orders');
    const id = await send(mgrA.url, { ...source('orders'), ...dest('orders_copy') });
    const job = await waitForJob(mgrA.url, id);
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    assert.equal(job.output.rows, String(ROWS));
    assert.equal(job.output.destination.created, true);
    assert.equal(job.output.destination.via, 'local');
    assert.ok(job.output.bytes > 1_000_000, `bytes ${job.output.bytes}`);
    // The digests of what the kernel copied into the destination's staging files, read by a worker
    // beside the end of the lock and the import's first steps (IMPORT waits for them).
    assert.match(job.output.sha256.ibd, /^[0-9a-f]{64}$/);
    assert.match(job.output.sha256.cfg, /^[0-9a-f]{64}$/);
    assert.ok(job.output.locked_ms.copy <= job.output.lock_ms, JSON.stringify(job.output.locked_ms));
    assert.ok(job.output.locked_ms.sha256 >= job.output.locked_ms.copy, JSON.stringify(job.output.locked_ms));
    assert.equal(await count(port.s2, 'shop.orders_copy'), ROWS);
    assert.equal(await checksum(port.s2, 'shop.orders_copy'), sourceSum);
    assert.equal(await count(port.s1, 'shop.orders'), ROWS);
    assert.equal(await checksum(port.s1, 'shop.orders'), sourceSum);
    // The node actors showed the work: s1 exporting, s2 importing, both back to running.
    const s1 = await waitForNode(mgrA.url, port.s1, (n) => n.state === 'running');
    const s2 = await waitForNode(mgrA.url, port.s2, (n) => n.state === 'running');
    assert.ok(s1.transitions.some((t: { to: string }) => t.to === 'exporting'), 'source went through exporting');
    assert.ok(s2.transitions.some((t: { to: string }) => t.to === 'importing'), 'destination went through importing');
    // No leftovers: the .cfg is gone from both sides, the staging dir and the journal are empty.
    assert.equal(existsSync(path.join(root, 's2/data/shop/orders_copy.cfg')), false);
    assert.equal(existsSync(path.join(root, 's1/data/shop/orders.cfg')), false);
    assert.deepEqual(readdirSync(path.join(root, 's2/tmp')).filter((f) => f.startsWith('table-transfer-')), []);
  });

  it('verifies the imported table with one scan (CHECKSUM TABLE) and counts its rows only when the checksums differ', async () => {
    // The destination's pages are cold after IMPORT: a COUNT(*) beside the checksum read the whole
    // table from disk a second time. The destination server's general log shows what was run on it.
    const d = await sql(port.s2);
    await d.query("SET GLOBAL log_output = 'TABLE'");
    await d.query('TRUNCATE TABLE mysql.general_log');
    await d.query('SET GLOBAL general_log = 1');
    try {
      const id = await send(mgrA.url, { ...source('orders'), ...dest('orders_scan') });
      const job = await waitForJob(mgrA.url, id);
      assert.equal(job.result, 'succeed', JSON.stringify(job));
      assert.equal(job.output.rows, String(ROWS));
    } finally {
      await d.query('SET GLOBAL general_log = 0');
    }
    const [logged] = await d.query("SELECT CONVERT(argument USING utf8mb4) AS q FROM mysql.general_log WHERE command_type = 'Query' AND argument LIKE '%orders_scan%'");
    const queries = (logged as { q: string }[]).map((r) => r.q);
    assert.ok(queries.some((q) => /^CHECKSUM TABLE .*orders_scan/.test(q)), queries.join('\n'));
    assert.deepEqual(queries.filter((q) => /COUNT\(\*\)/i.test(q)), [], 'the destination was counted as well as checksummed');
    // A difference is told with the destination's own row count.
    await assert.rejects(
      verifyAgainst(d, '`shop`.`orders_scan`', { rows: '5', checksum: '12345' }),
      new RegExp(`the imported table has ${ROWS} rows with checksum \\d+; the source had 5 rows with checksum 12345`),
    );
    assert.deepEqual(await verifyAgainst(d, '`shop`.`orders_scan`', { rows: String(ROWS), checksum: await checksum(port.s1, 'shop.orders') }), { rows: String(ROWS), checksum: await checksum(port.s1, 'shop.orders') });
  });

  it('sends into an existing empty table of the same definition', async () => {
    const id = await send(mgrA.url, { ...source('orders'), ...dest('orders_empty') });
    const job = await waitForJob(mgrA.url, id);
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    assert.equal(job.output.destination.created, false);
    assert.equal(await checksum(port.s2, 'shop.orders_empty'), await checksum(port.s1, 'shop.orders'));
  });

  it('refuses a destination table whose definition differs, and leaves it untouched', async () => {
    const before = await one(port.s2, 'SHOW CREATE TABLE shop.orders_other');
    const id = await send(mgrA.url, { ...source('orders'), ...dest('orders_other') });
    const job = await waitForJob(mgrA.url, id);
    assert.equal(job.result, 'error');
    assert.match(job.info, /preflight.*exists with a different definition/s);
    assert.deepEqual(await one(port.s2, 'SHOW CREATE TABLE shop.orders_other'), before);
    const [rows] = await (await sql(port.s2)).query('SELECT note FROM shop.orders_other ORDER BY id');
    assert.deepEqual((rows as any[]).map((r) => r.note), ['keep me', 'and me']);
  });

  it('refuses a destination table that already holds rows', async () => {
    const id = await send(mgrA.url, { ...source('orders'), ...dest('orders_copy') });
    const job = await waitForJob(mgrA.url, id);
    assert.equal(job.result, 'error');
    assert.match(job.info, /already holds rows/);
    assert.equal(await count(port.s2, 'shop.orders_copy'), ROWS);
  });

  it('puts the destination back when the import itself fails (row format differs): a new table is dropped, an empty one stays empty', async () => {
    // SHOW CREATE TABLE does not show a default row format: only the import's .cfg check sees it.
    const s2 = await sql(port.s2);
    await s2.query("SET GLOBAL innodb_default_row_format = 'compact'");
    try {
      await s2.query('CREATE TABLE shop.orders_compact (id INT PRIMARY KEY, customer INT NOT NULL, amount DECIMAL(10,2) NOT NULL, note VARCHAR(100), KEY (customer)) ENGINE=InnoDB');
      const fresh = await waitForJob(mgrA.url, await send(mgrA.url, { ...source('orders'), ...dest('orders_rowformat') }));
      assert.equal(fresh.result, 'error');
      assert.match(fresh.info, /importing the tablespace on mysql-\d+ failed: .*mismatch.*dropped again/is);
      const [missing] = await s2.query("SHOW TABLES FROM shop LIKE 'orders_rowformat'");
      assert.deepEqual(missing, []);
      const existing = await waitForJob(mgrA.url, await send(mgrA.url, { ...source('orders'), ...dest('orders_compact') }));
      assert.equal(existing.result, 'error');
      assert.match(existing.info, /importing the tablespace.*as it was \(empty\)/is);
      assert.equal(await count(port.s2, 'shop.orders_compact'), 0);
      await s2.query('INSERT INTO shop.orders_compact VALUES (1, 1, 1.00, NULL)'); // a live, writable table again
    } finally {
      await s2.query("SET GLOBAL innodb_default_row_format = 'dynamic'");
    }
  });

  it('finds tables under names MariaDB encodes on disk (postgres_$$_public, dots, dashes, umlauts, €)', async () => {
    const name = 'we$ird.näme-€';
    assert.equal((await one(port.s1, `SELECT CAST(CONVERT('${name}' USING filename) AS BINARY) AS f`)).f.toString('latin1'), filenameEncode(name));
    const id = await send(mgrA.url, { ...source(name, 'postgres.public'), ...dest('cöpy.of-€', port.s2, '127.0.0.1', 'postgres_$$_public') });
    const job = await waitForJob(mgrA.url, id);
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    assert.equal(await count(port.s2, '`postgres_$$_public`.`cöpy.of-€`'), 1000);
    assert.ok(existsSync(path.join(root, 's2/data/postgres_@0024@0024_public', `${filenameEncode('cöpy.of-€')}.ibd`)));
  });

  it('sends a table to a node of another host (a configured peer, called with that peer\'s own token): it receives the stream, imports and verifies', async () => {
    const id = await send(mgrA.url, { ...source('orders'), ...dest('orders', port.s3, '127.0.0.2') });
    const job = await waitForJob(mgrA.url, id);
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    assert.equal(job.output.destination.via, `http://127.0.0.2:${apiPort}`);
    assert.equal(job.output.destination.node, `mysql-${port.s3}`);
    assert.equal(await count(port.s3, 'shop.orders', '127.0.0.2'), ROWS);
    assert.equal(await checksum(port.s3, 'shop.orders', '127.0.0.2'), await checksum(port.s1, 'shop.orders'));
    const s3 = await waitForNode(mgrB.url, port.s3, (n) => n.state === 'running');
    assert.ok(s3.transitions.some((t: { to: string }) => t.to === 'importing'), 'the remote destination went through importing');
  });

  it('refuses recv requests without the token', async () => {
    const r = await api(mgrB.url, 'POST', '/v1/recv/table/preflight', { destination: {}, table: {} });
    assert.equal(r.status, 401, r.text);
  });

  it('drops a table in postgres_$$_public (given as postgres.public) and fails clearly on a missing one', async () => {
    await (await sql(port.s1)).query('CREATE TABLE `postgres_$$_public`.doomed (id INT PRIMARY KEY)');
    const del = (table: string) => post(mgrA.url, { ver: '0.1', job_type: 'delete', file_type: 'table', ...source(table, 'postgres.public') });
    const ok = await waitForJob(mgrA.url, (await del('doomed')).body.job_id);
    assert.equal(ok.result, 'succeed', JSON.stringify(ok));
    const [left] = await (await sql(port.s1)).query("SHOW TABLES FROM `postgres_$$_public` LIKE 'doomed'");
    assert.deepEqual(left, []);
    const missing = await waitForJob(mgrA.url, (await del('doomed')).body.job_id);
    assert.equal(missing.result, 'error');
    assert.match(missing.info, /table `postgres_\$\$_public`\.`doomed` does not exist on mysql-\d+/);
  });

  it('refuses a delete whose s_ip is not an address of this host', async () => {
    const r = await post(mgrA.url, { ver: '0.1', job_type: 'delete', file_type: 'table', ...source('orders'), s_ip: '203.0.113.7' });
    const job = await waitForJob(mgrA.url, r.body.job_id);
    assert.equal(job.result, 'error');
    assert.match(job.info, /203\.0\.113\.7 is not an address of this host/);
  });

  it('after node-mgr is killed during a send: the job reads interrupted, the source is unlocked, leftovers are gone and a retry succeeds', async () => {
    // A real ceiling on the send's read rate keeps the copy (and the source's lock) going long enough.
    await mgrA.stop('SIGTERM');
    process.env.NODE_MGR_TABLE_SEND_MAX_BYTES_PER_S = String(1024 * 1024);
    try {
      mgrA = await startNodeMgrProcess(path.join(root, 'mgrA'), configA);
    } finally {
      delete process.env.NODE_MGR_TABLE_SEND_MAX_BYTES_PER_S;
    }
    await waitForNode(mgrA.url, port.s1, (n) => n.state === 'running');
    const id = await send(mgrA.url, { ...source('orders'), ...dest('orders_retry') });
    for (let i = 0; ; i++) {
      const st = (await api(mgrA.url, 'GET', `/v1/jobs/${id}`)).body;
      if (st.phase === 'copying' && st.progress?.bytes_done > 0) break;
      assert.ok(i < 300, `the send never started copying: ${JSON.stringify(st)}`);
      await sleep(50);
    }
    // While the source exports, commands that would pull the server away get 409.
    const stop = await api(mgrA.url, 'POST', `/v1/nodes/${port.s1}/stop`, undefined, AUTH);
    assert.equal(stop.status, 409, stop.text);
    assert.match(stop.body.info, /exporting for job/);
    assert.ok(existsSync(path.join(root, 's1/data/shop/orders.cfg')), 'the source is locked for export');

    await mgrA.stop('SIGKILL');
    // Two more imports as a node-mgr killed between DISCARD and IMPORT leaves them (their journal
    // entries written as table-import.ts writes them): one into a table it had created, one into a
    // table that was empty. Both have a tablespace file moved in but not imported.
    const s2 = await sql(port.s2);
    await s2.query(`
      CREATE TABLE shop.halfway_new (id INT PRIMARY KEY) ENGINE=InnoDB;
      CREATE TABLE shop.halfway_empty (id INT PRIMARY KEY) ENGINE=InnoDB;
      ALTER TABLE shop.halfway_new DISCARD TABLESPACE;
      ALTER TABLE shop.halfway_empty DISCARD TABLESPACE;
    `);
    const journal = path.join(root, 'stateA/table-transfers');
    mkdirSync(journal, { recursive: true });
    for (const [id, table, before, created] of [['00000000000000aa', 'halfway_new', 'missing', true], ['00000000000000bb', 'halfway_empty', 'empty', false]] as const) {
      const stagingDir = path.join(root, 's2/tmp', `table-transfer-${id}`);
      mkdirSync(stagingDir);
      writeFileSync(path.join(stagingDir, 'table.ibd'), 'partial');
      copyFileSync(path.join(root, 's2/data/shop/orders_copy.frm'), path.join(root, `s2/data/shop/${table}.ibd`)); // any bytes: never imported
      const entry = { id, jobId: 'killed', nodeId: `mysql-${port.s2}`, database: 'shop', table, stagingDir, startedAt: new Date().toISOString(), before, created, placing: true };
      writeFileSync(path.join(journal, `${id}.json`), JSON.stringify(entry));
    }
    mgrA = await startNodeMgrProcess(path.join(root, 'mgrA'), configA);
    const status = await waitForJob(mgrA.url, id);
    assert.equal(status.result, 'error');
    assert.equal(status.job_status, 'interrupted by node-mgr restart');
    // The lock died with node-mgr's session: a write goes through at once.
    const s1 = await sql(port.s1);
    await s1.query('SET SESSION lock_wait_timeout = 5');
    await s1.query(`INSERT INTO shop.orders VALUES (${ROWS + 1}, 1, 1.00, 'after the kill')`);
    // The interrupted imports are undone once s2 runs again: no staging dir, no journal entry, the
    // table node-mgr had created is gone, the one that was empty is empty and usable again.
    for (let i = 0; existsSync(journal) && readdirSync(journal).length > 0; i++) {
      assert.ok(i < 200, `journal not cleaned: ${readdirSync(journal)}`);
      await sleep(100);
    }
    assert.deepEqual(readdirSync(path.join(root, 's2/tmp')).filter((f) => f.startsWith('table-transfer-')), []);
    const [gone] = await s2.query("SHOW TABLES FROM shop LIKE 'halfway_new'");
    assert.deepEqual(gone, []);
    assert.equal(existsSync(path.join(root, 's2/data/shop/halfway_new.ibd')), false);
    assert.equal(await count(port.s2, 'shop.halfway_empty'), 0);
    await s2.query('INSERT INTO shop.halfway_empty VALUES (1)');

    const retry = await waitForJob(mgrA.url, await send(mgrA.url, { ...source('orders'), ...dest('orders_retry') }));
    assert.equal(retry.result, 'succeed', JSON.stringify(retry));
    assert.equal(await count(port.s2, 'shop.orders_retry'), ROWS + 1);
    assert.equal(await checksum(port.s2, 'shop.orders_retry'), await checksum(port.s1, 'shop.orders'));
  });
});

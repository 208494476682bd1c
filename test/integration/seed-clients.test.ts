// Every request example of the seed document and every upload, sent the way the original clients
// send them and read the way they read the reply (test/support/seed-client.c: HTTP/1.0, one
// recv() of at most 2,047 bytes, case-sensitive searches), against node-mgr supervising real
// MariaDB, PostgreSQL and cluster_mgr processes. Each test asserts what the client prints, then
// that node-mgr really did it. The seed's ports map as 6001 → meta, 6004 → storage A,
// 6007 → storage B, 5401 → computing node.
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, killProcessGroups, startNodeMgrProcess, waitForJob, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { buildSeedClient, seedPostFile, seedPostPara, type SeedClientRun } from '../support/seed-client.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FAKE_CLUSTER_MGR = path.join(ROOT, 'test/support/fake-cluster-mgr.mjs');
const DB = 'postgres_$$_public';

describe('the seed\'s requests through the original clients\' bytes', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let url: string;
  const port = { meta: 0, a: 0, b: 0, comp: 0, cm: 0, api: 0 };
  const pids: number[] = [];

  /** The seed's JSON with its ports mapped to this test's. */
  const seed = (json: string) =>
    json.replace(/\b6001\b/g, String(port.meta)).replace(/\b6004\b/g, String(port.a)).replace(/\b6007\b/g, String(port.b)).replace(/\b5401\b/g, String(port.comp));

  /** Runs http_post_para with the seed's request; reports what it printed (the note lists these). */
  const para = async (t: TestContext, json: string): Promise<SeedClientRun> => {
    const r = await seedPostPara(url, seed(json));
    t.diagnostic(`${seed(json)}\n  printed: ${r.stdout.trimEnd()}${r.stderr ? `\n  stderr: ${r.stderr.trimEnd()}` : ''}`);
    return r;
  };
  /** An accepted job: the client prints the acceptance whole; resolves the finished job. */
  const accepted = async (t: TestContext, json: string, jobId?: string) => {
    const r = await para(t, json);
    assert.equal(r.stderr, '');
    const reply = JSON.parse(r.result);
    assert.deepEqual(Object.keys(reply), ['result', 'info', 'job_id']);
    assert.equal(reply.result, 'succeed');
    assert.equal(reply.info, 'accepted');
    if (jobId) assert.equal(reply.job_id, jobId);
    assert.equal(r.stdout, `result_str={"result":"succeed","info":"accepted","job_id":"${reply.job_id}"}\n`);
    return waitForJob(mgr.url, reply.job_id, 240_000);
  };

  const sql = async (nodePort: number, q: string, params: unknown[] = []) => {
    const c = await mysql.createConnection({ host: '127.0.0.1', port: nodePort, user: 'pgx', password: 'pgx_pwd' });
    try {
      const [rows] = await c.query(q, params);
      return rows as any[];
    } finally {
      await c.end();
    }
  };

  before(async () => {
    root = path.dirname(await tempNodeDir());
    for (const k of Object.keys(port) as Array<keyof typeof port>) port[k] = await freePort();
    const policy = { restart: { initialDelayMs: 200, jitter: 0 }, probe: { intervalMs: 1000 } };
    const mysqlNode = (role: string, p: number, dir: string, extra: object) => ({ kind: 'mysql', role, port: p, dir: path.join(root, dir), user: 'pgx', password: 'pgx_pwd', ...extra });
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port: port.api },
      stateDir: path.join(root, 'state'),
      nodesDir: path.join(root, 'nodes'),
      uploadDir: path.join(root, 'uploads'),
      backup: { localDir: path.join(root, 'backups') },
      runAs: TEST_RUN_AS,
      policy,
      nodes: [
        mysqlNode('meta', port.meta, 'meta', { cluster: 'meta' }),
        mysqlNode('storage', port.a, 'storage-a', { cluster: 'clust1', shard: 'shard1' }),
        mysqlNode('storage', port.b, 'storage-b', { cluster: 'clust1', shard: 'shard2' }),
        { kind: 'postgres', role: 'computer', port: port.comp, dir: path.join(root, 'comp'), cluster: 'clust1', user: 'pgx', password: 'pgx_pwd' },
        {
          kind: 'cluster_mgr',
          role: 'cluster_mgr',
          port: port.cm,
          dir: path.join(root, 'cluster_mgr'),
          command: [process.execPath, FAKE_CLUSTER_MGR, '--port', String(port.cm), '--pidfile', path.join(root, 'cluster_mgr', 'run.pid')],
          pidFile: path.join(root, 'cluster_mgr', 'run.pid'),
          healthUrl: `http://127.0.0.1:${port.cm}/health`,
        },
      ],
    });
    url = `http://127.0.0.1:${port.api}`;
    for (const p of [port.meta, port.a, port.b, port.comp, port.cm]) {
      const r = await api(mgr.url, 'POST', `/v1/nodes/${p}/create`);
      assert.equal(r.status, 200, r.text);
      pids.push(r.body.pid);
    }
    await buildSeedClient();
  });

  after(async () => {
    // The servers' pids as node-mgr knows them now (a failed step may have left one started).
    const nodes = mgr ? await Promise.all([port.meta, port.a, port.b, port.comp, port.cm].map((p) => api(mgr.url, 'GET', `/v1/nodes/${p}`).catch(() => null))) : [];
    await mgr?.stop('SIGKILL');
    await killProcessGroups([...pids, ...nodes.map((n) => n?.body?.pid)]);
    await removeTempDirs();
  });

  it('uploads the three install configs with http_post_file', async (t) => {
    for (const [fileType, name] of [['mysql', 'mysql_shard1.json'], ['pgsql', 'postgresql_comp.json'], ['cluster', 'cluster_mgr.cnf']] as const) {
      const file = path.join(root, name);
      writeFileSync(file, readFileSync(path.join(ROOT, 'fixtures', name)));
      const json = `{"ver":"0.1","file_type":"${fileType}"}`;
      const r = await seedPostFile(url, json, file);
      t.diagnostic(`./http_post_file ${url} '${json}' ./${name}\n  printed: ${r.stdout.trimEnd().replace(/\n/g, '\n           ')}`);
      const saved = path.join(root, 'uploads', fileType, name);
      assert.equal(r.stdout, `file len = ${readFileSync(file).length}\ncontentlen = ${r.stdout.match(/contentlen = (\d+)/)![1]}\nresult_str={"result":"succeed","path":${JSON.stringify(saved)}}\n`);
      assert.deepEqual(readFileSync(saved), readFileSync(file));
    }
  });

  it('get_node (meta_node), get_node of everything, get_info', async (t) => {
    const meta = JSON.parse((await para(t, '{"ver":"0.1","job_type":"get_node","node_type":"meta_node"}')).result);
    assert.deepEqual(Object.keys(meta), ['meta_node0']);
    assert.equal(meta.meta_node0.port, port.meta);
    assert.equal(meta.meta_node0.state, 'running');
    // The cluster_mgr form of the request (node_ipN) is answered the same way by node-mgr.
    const withIps = JSON.parse((await para(t, '{"ver":"0.1","job_type":"get_node","node_type":"meta_node","node_ip0":"127.0.0.1","node_ip1":"192.168.207.145"}')).result);
    assert.equal(withIps.meta_node0.port, port.meta);
    // Four nodes, with these temp paths, still fit the clients' single read (README: about 4–5).
    const all = await para(t, '{"ver":"0.1","job_type":"get_node"}');
    assert.equal(all.stderr, '');
    assert.deepEqual(Object.keys(JSON.parse(all.result)).sort(), ['computer_node0', 'meta_node0', 'storage_node0', 'storage_node1']);
    const info = JSON.parse((await para(t, '{"ver":"0.1","job_type":"get_info"}')).result);
    assert.match(info.cpu_used, /^\d+\.\d\d%$/);
    assert.equal(info.storage_node, 2);
  });

  it('update_node', async (t) => {
    assert.equal((await accepted(t, '{"ver":"0.1","job_type":"update_node"}')).result, 'succeed');
  });

  it('mysql_cmd, pgsql_cmd and cluster_cmd start the stopped meta, computing and cluster_mgr nodes', async (t) => {
    for (const p of [port.meta, port.comp, port.cm]) assert.equal((await api(mgr.url, 'POST', `/v1/nodes/${p}/stop`)).status, 200);
    for (const p of [port.meta, port.comp, port.cm]) await waitForNode(mgr.url, p, (n) => n.state === 'stopped');
    for (const json of [
      '{"ver":"0.1","job_type":"mysql_cmd","cmd":"./startmysql.sh 6001"}',
      '{"ver":"0.1","job_type":"pgsql_cmd","cmd":"python2 start_pg.py port=5401"}',
      '{"ver":"0.1","job_type":"cluster_cmd","cmd":"bash -x bin/cluster_mgr_safe --debug --pidfile=run.pid cluster_mgr.cnf"}',
    ]) {
      const job = await accepted(t, json);
      assert.equal(job.result, 'succeed', JSON.stringify(job));
    }
    for (const p of [port.meta, port.comp, port.cm]) pids.push((await waitForNode(mgr.url, p, (n) => n.state === 'running')).pid);
  });

  it('./stopmysql.sh 6007 and ./startmysql.sh 6007', async (t) => {
    assert.equal((await accepted(t, '{"ver":"0.1","job_type":"mysql_cmd","cmd":"./stopmysql.sh 6007"}')).result, 'succeed');
    assert.equal((await waitForNode(mgr.url, port.b, () => true)).state, 'stopped');
    assert.equal((await accepted(t, '{"ver":"0.1","job_type":"mysql_cmd","cmd":"./startmysql.sh 6007"}')).result, 'succeed');
    pids.push((await waitForNode(mgr.url, port.b, (n) => n.state === 'running')).pid);
  });

  it('delete a table (job id123456), then get_status of id123456', async (t) => {
    await sql(port.b, `CREATE DATABASE IF NOT EXISTS \`${DB}\``);
    await sql(port.b, `CREATE TABLE \`${DB}\`.t13 (id INT PRIMARY KEY) ENGINE=InnoDB`);
    const job = await accepted(
      t,
      '{"ver":"0.1","job_id":"id123456","job_type":"delete","file_type":"table","s_ip":"127.0.0.1","s_port":6007,"s_user":"pgx","s_pwd":"pgx_pwd","s_dbname":"postgres_$$_public","s_table_name":"t13"}',
      'id123456',
    );
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    assert.deepEqual(await sql(port.b, 'SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_name = ?', [DB, 't13']), []);
    const status = JSON.parse((await para(t, '{"ver":"0.1","job_id":"id123456","job_type":"get_status"}')).result);
    assert.equal(status.job_id, 'id123456');
    assert.equal(status.job_type, 'delete');
    assert.equal(status.result, 'succeed');
  });

  it('the seed\'s next example reuses job_id id123456 with another body: a 409 the client reports as "http return code error"', async (t) => {
    const r = await para(t, '{"ver":"0.1","job_id":"id123456","job_type":"delete","file_type":"binlog","s_ip":"127.0.0.1","s_port":6007, "s_user":"pgx","s_pwd":"pgx_pwd"}');
    assert.equal(r.stdout, 'http return code error\nresult_str=\n');
    const body = JSON.parse(r.errorBody!);
    assert.equal(body.result, 'error');
    assert.match(body.info, /id123456/);
  });

  it('delete binlogs (under a fresh job_id)', async (t) => {
    const job = await accepted(t, '{"ver":"0.1","job_id":"id123457","job_type":"delete","file_type":"binlog","s_ip":"127.0.0.1","s_port":6007, "s_user":"pgx","s_pwd":"pgx_pwd"}', 'id123457');
    assert.notEqual(job.result, 'busy');
    t.diagnostic(`  job: ${JSON.stringify({ result: job.result, info: job.info })}`);
  });

  it('send a table from 6004 to 6007', async (t) => {
    await sql(port.a, `CREATE DATABASE IF NOT EXISTS \`${DB}\``);
    await sql(port.a, `CREATE TABLE \`${DB}\`.t12 (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB`);
    await sql(port.a, `INSERT INTO \`${DB}\`.t12 VALUES (1,'one'),(2,'two'),(3,'three')`);
    const job = await accepted(
      t,
      '{"ver":"0.1","job_id":"id123458","job_type":"send","file_type":"table","s_ip":"127.0.0.1","s_port":6004,"s_user":"pgx","s_pwd":"pgx_pwd","s_dbname":"postgres_$$_public","s_table_name":"t12","d_ip":"127.0.0.1","d_port":6007,"d_user":"pgx","d_pwd":"pgx_pwd","d_dbname":"postgres_$$_public","d_table_name":"t17"}',
      'id123458',
    );
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    assert.deepEqual((await sql(port.b, `SELECT id, v FROM \`${DB}\`.t17 ORDER BY id`)).map((r) => `${r.id}:${r.v}`), ['1:one', '2:two', '3:three']);
  });

  it('coldbackup of 6004, then coldrestore of that file', async (t) => {
    const backup = await accepted(t, '{"ver":"0.1","job_id":"id123459","job_type":"coldbackup","s_ip":"127.0.0.1","s_port":6004,"s_user":"pgx","s_pwd":"pgx_pwd"}', 'id123459');
    assert.equal(backup.result, 'succeed', JSON.stringify(backup));
    const file = JSON.stringify(backup).match(/\/coldbackup\/clust1\/shard1\/coldback_\d{8}_\d{6}\.tgz/)?.[0];
    assert.ok(file, `no backup file in ${JSON.stringify(backup)}`);
    await sql(port.a, `DROP TABLE \`${DB}\`.t12`);
    const restore = await accepted(
      t,
      `{"ver":"0.1","job_id":"id123460","job_type":"coldrestore","s_ip":"127.0.0.1","s_port":6004,"s_user":"pgx","s_pwd":"pgx_pwd",\n"file":"${file}"}`,
      'id123460',
    );
    assert.equal(restore.result, 'succeed', JSON.stringify(restore));
    const after = await waitForNode(mgr.url, port.a, (n) => n.state === 'running');
    pids.push(after.pid);
    assert.equal((await sql(port.a, `SELECT COUNT(*) AS n FROM \`${DB}\`.t12`))[0].n, 3);
  });
});

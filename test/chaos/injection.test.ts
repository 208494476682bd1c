// Path and command abuse: shell metacharacters, option injection and traversal in every field that
// reaches a command line, SQL or a file path. A canary command (`touch /tmp/canary-<rand>`) sits in
// every injectable position; the file must never appear, the canary table must survive, the nodes
// must keep running, and nothing may land outside the upload dir.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import { api, legacy, waitForJob } from '../support/node-mgr-process.ts';
import { httpPostFile, parseRaw } from '../support/raw-http.ts';
import { freePort } from '../support/nodes.ts';
import { ADMIN, startChaosCluster, type ChaosCluster } from './support/cluster.ts';
import { errorShapeProblem, FULL, MYSQL_SERVERS, PG_SERVERS, serversOnDataDir } from './support/chaos.ts';

const CANARY_PREFIX = `/tmp/canary-${randomBytes(6).toString('hex')}`;
let canaries = 0;
/** A fresh canary path per payload, so that a hit says which payload ran. */
const canary = () => `${CANARY_PREFIX}-${canaries++}`;

/** The canary command in every syntax a shell, an option parser or SQL would take it in. */
function payloads(): string[] {
  const c = () => canary();
  return [
    `touch ${c()}`,
    `; touch ${c()}`,
    `&& touch ${c()}`,
    `|| touch ${c()}`,
    `| touch ${c()}`,
    `$(touch ${c()})`,
    `\`touch ${c()}\``,
    `\ntouch ${c()}\n`,
    `' ; touch ${c()} ; '`,
    `" ; touch ${c()} ; "`,
    `x;\n\nCOPY (SELECT 1) TO PROGRAM $$touch ${c()}$$;\n\n`,
    `x'; COPY (SELECT 1) TO PROGRAM 'touch ${c()}'; --`,
    `x\`; SELECT 1 INTO OUTFILE '${c()}'; --`,
    `x' UNION SELECT 1 INTO OUTFILE '${c()}' -- `,
    `--defaults-file=/etc/shadow`,
    `--defaults-extra-file=${c()}`,
    `--init-command=SELECT 1 INTO OUTFILE '${c()}'`,
    `-e system touch ${c()}`,
    `../../../../../..${c()}`,
    `/proc/self/root${c()}`,
    `x\u0000; touch ${c()}`,
  ];
}

describe('path and command abuse: nothing is executed', () => {
  let c: ChaosCluster;
  const stats = { requests: 0, refused4xx: 0, acceptedThenFailed: 0, createdSafely: 0, succeededLiterally: 0 };
  const problems: string[] = [];
  let keep: { storage: number; computer: number };

  before(async () => {
    c = await startChaosCluster([
      { name: 'storage', kind: 'mysql' },
      { name: 'computer', kind: 'postgres' },
    ], { commandAllowList: ['/bin/echo'] });
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: c.nodes.storage!.port, ...ADMIN });
    await conn.query('CREATE DATABASE chaos');
    await conn.query('CREATE TABLE chaos.keep (id INT PRIMARY KEY) ENGINE=InnoDB');
    await conn.query('INSERT INTO chaos.keep VALUES (1)');
    await conn.end();
    keep = {
      storage: (await api(c.mgr.url, 'GET', `/v1/nodes/${c.nodes.storage!.port}`)).body.pid,
      computer: (await api(c.mgr.url, 'GET', `/v1/nodes/${c.nodes.computer!.port}`)).body.pid,
    };
  });

  after(async () => {
    console.log(`[chaos] injection ${JSON.stringify({ ...stats, canaries })}`);
    for (let i = 0; i < canaries; i++) await rm(`${CANARY_PREFIX}-${i}`, { force: true, recursive: true });
    await c?.teardown();
  });

  /**
   * A legacy request that must not do anything: either refused at once with a 4xx sentence, or
   * accepted as a job that then fails (an SQL name is legal once quoted, so only the server can say
   * the table does not exist).
   */
  async function mustNotAct(body: Record<string, unknown>, what: string, ifItSucceeds?: () => Promise<void>): Promise<void> {
    stats.requests++;
    const r = await legacy(c.mgr.url, body);
    if (r.status >= 400 && r.status < 500) {
      stats.refused4xx++;
      const bad = errorShapeProblem({ status: r.status, body: r.text });
      if (bad) problems.push(`${what}: ${bad}`);
      return;
    }
    if (r.status === 200 && r.body.job_id) {
      const done = await waitForJob(c.mgr.url, r.body.job_id, 60_000);
      if (done.result !== 'succeed') stats.acceptedThenFailed++;
      else if (ifItSucceeds) {
        stats.succeededLiterally++;
        await ifItSucceeds();
      } else problems.push(`${what}: accepted and SUCCEEDED: ${JSON.stringify(done).slice(0, 300)}`);
      return;
    }
    problems.push(`${what}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
  }

  function assertNothingHappened(): void {
    const hits = readdirSync('/tmp').filter((f) => `/tmp/${f}`.startsWith(CANARY_PREFIX));
    assert.deepEqual(hits, [], `canary files appeared: ${hits.join(', ')}`);
    assert.deepEqual(problems, []);
  }

  it('*_cmd: metacharacters, option injection and unknown programs are refused; allow-listed programs get their words as arguments', async () => {
    const { storage, computer } = c.nodes;
    const bases: Array<[string, string]> = [
      ['mysql_cmd', `./startmysql.sh ${storage!.port}`],
      ['mysql_cmd', `./stopmysql.sh ${storage!.port}`],
      ['mysql_cmd', 'python2 install-mysql.py --config=./mysql_shard1.json --target_node_index=0'],
      ['mysql_cmd', 'python2 uninstall-mysql.py --config=./mysql_shard1.json --target_node_index=0'],
      ['pgsql_cmd', `python2 stop_pg.py port=${computer!.port}`],
      ['pgsql_cmd', 'python2 install_pg.py --config=./postgresql_comp.json --install_ids=1'],
      ['cluster_cmd', 'bash -x bin/cluster_mgr_safe --debug --pidfile=run.pid cluster_mgr.cnf'],
    ];
    for (const [jobType, base] of bases) {
      for (const p of payloads()) {
        for (const cmd of [`${base} ${p}`, `${p} ${base}`, `${base}${p}`, p]) {
          await mustNotAct({ ver: '0.1', job_type: jobType, cmd }, `${jobType} ${JSON.stringify(cmd)}`);
        }
      }
      await mustNotAct({ ver: '0.1', job_type: jobType, cmd: `${base} --defaults-file=/etc/shadow` }, `${jobType} option injection`);
      if (base.includes('--config=')) {
        await mustNotAct({ ver: '0.1', job_type: jobType, cmd: base.replace(/--config=\S+/, '--config=--defaults-file=/etc/shadow') }, `${jobType} option as config`);
        await mustNotAct({ ver: '0.1', job_type: jobType, cmd: base.replace(/--config=\S+/, '--config=../../../etc/passwd') }, `${jobType} traversal as config`);
        await mustNotAct({ ver: '0.1', job_type: jobType, cmd: base.replace(/--config=\S+/, '--config=/etc/passwd') }, `${jobType} absolute config`);
      }
    }
    for (const program of ['sh -c', 'bash -c', '/bin/sh -c', 'python2 -c', 'env', '/usr/bin/env', 'perl -e', 'busybox sh -c', 'xargs', 'find / -exec']) {
      await mustNotAct({ ver: '0.1', job_type: 'mysql_cmd', cmd: `${program} 'touch ${canary()}'` }, `program ${program}`);
    }

    // An allow-listed program runs with an argument array: the metacharacters reach it as words.
    const target = canary();
    const r = await legacy(c.mgr.url, { ver: '0.1', job_type: 'mysql_cmd', cmd: `/bin/echo hi; touch ${target} $(touch ${target}) | touch ${target}` });
    assert.equal(r.status, 200, r.text);
    const done = await waitForJob(c.mgr.url, r.body.job_id);
    assert.equal(done.result, 'succeed');
    assert.equal(done.output.output_tail, `hi; touch ${target} $(touch ${target}) | touch ${target}`);
    assertNothingHappened();
  });

  it('SQL names, hosts and credentials: quoted or refused, the canary table survives', async () => {
    const { storage } = c.nodes;
    const s = { ver: '0.1', s_ip: '127.0.0.1', s_port: storage!.port, s_user: ADMIN.user, s_pwd: ADMIN.password };
    const fields = ['s_dbname', 's_table_name', 's_ip', 's_user', 's_pwd'] as const;
    const drop = { ...s, job_type: 'delete', file_type: 'table', s_dbname: 'chaos', s_table_name: 'nope' };
    const send = { ...s, job_type: 'send', file_type: 'table', s_dbname: 'chaos', s_table_name: 'keep', d_ip: '127.0.0.1', d_port: storage!.port, d_user: ADMIN.user, d_pwd: ADMIN.password, d_dbname: 'chaos', d_table_name: 'copy' };
    const purge = { ...s, job_type: 'delete', file_type: 'binlog', dry_run: true };
    // A send into a new table whose name is the payload is legal: it must create exactly that
    // table, name and all (the quoting held), and nothing else.
    const literalTable = (name: string) => async () => {
      const conn = await mysql.createConnection({ host: '127.0.0.1', port: storage!.port, ...ADMIN });
      try {
        const [rows] = await conn.query('SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? AND table_name = ?', ['chaos', name]);
        assert.equal((rows as unknown[]).length, 1, `send created no table named ${JSON.stringify(name)}`);
        await conn.query(`DROP TABLE chaos.\`${name.replace(/`/g, '``')}\``);
      } finally {
        await conn.end();
      }
    };
    const sqlPayloads = [...payloads(), 'keep` ; DROP TABLE chaos.keep; -- ', "keep'; DROP TABLE chaos.keep; -- ", 'chaos.keep`; DROP DATABASE chaos; #'];
    for (const p of FULL ? sqlPayloads : sqlPayloads.filter((_, i) => i % 3 === 0 || i >= sqlPayloads.length - 3)) {
      for (const f of fields) await mustNotAct({ ...drop, [f]: p }, `delete table ${f}=${JSON.stringify(p)}`);
      for (const f of ['s_dbname', 's_table_name', 'd_dbname', 'd_table_name', 'd_ip', 'd_user', 'd_pwd'] as const) {
        await mustNotAct({ ...send, [f]: p }, `send ${f}=${JSON.stringify(p)}`, f === 'd_table_name' ? literalTable(p) : undefined);
      }
      for (const f of ['to', 'before', 's_user'] as const) await mustNotAct({ ...purge, [f]: p }, `binlog ${f}=${JSON.stringify(p)}`);
      await mustNotAct({ ...s, job_type: 'get_node', node_type: p }, `get_node node_type`);
      await mustNotAct({ ...s, job_type: 'get_status', job_id: p }, `get_status job_id`);
      await mustNotAct({ ...s, job_type: 'update_node', node_type: p }, `update_node node_type`);
      await mustNotAct({ ...s, job_type: 'coldbackup', store: p }, `coldbackup store`);
    }
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: storage!.port, ...ADMIN });
    const [rows] = await conn.query('SELECT COUNT(*) AS n FROM chaos.keep');
    await conn.end();
    assert.equal(Number((rows as Array<{ n: number }>)[0]!.n), 1, 'chaos.keep lost its row');
    assertNothingHappened();
  });

  it('coldrestore "file" with .. or a relative path is refused at the edge with 400, before any job exists', async () => {
    const s = { ver: '0.1', job_type: 'coldrestore', s_ip: '127.0.0.1', s_port: c.nodes.storage!.port, s_user: ADMIN.user, s_pwd: ADMIN.password };
    for (const file of ['../../etc/shadow', '/coldbackup/../../etc/shadow', '/coldbackup/clust1/shard1/../../../../etc/passwd', 'coldbackup/x.tgz', '/coldbackup/./x.tgz', `/coldbackup/x.tgz\u0000.sh`, '/coldbackup/x\n.tgz']) {
      stats.requests++;
      const r = await legacy(c.mgr.url, { ...s, file });
      assert.equal(r.status, 400, `file ${JSON.stringify(file)}: ${r.text}`);
      assert.match(r.body.info, /file/);
      stats.refused4xx++;
    }
    const jobs = (await api(c.mgr.url, 'GET', '/v1/jobs?type=coldrestore')).body as unknown[];
    assert.deepEqual(jobs, []);
  });

  it('upload names that climb out are refused and nothing is written outside the upload dir', async () => {
    const names = ['../x.json', '../../../../tmp/escape.json', `..${CANARY_PREFIX}`, `/${CANARY_PREFIX.slice(1)}`, 'a/../../b.json', '..', '.', '', 'a\\..\\..\\b', 'x\u0000.json', 'x\n.json', `${'a'.repeat(300)}.json`];
    for (const name of names) {
      stats.requests++;
      const raw = await httpPostFile(c.apiPort, '{"ver":"0.1","file_type":"mysql"}', name, '{}');
      const { statusLine, body } = parseRaw(raw);
      assert.match(statusLine, / 4\d\d /, `upload name ${JSON.stringify(name)}: ${statusLine}`);
      assert.equal(body.result, 'error');
      stats.refused4xx++;
    }
    for (const ft of ['../mysql', '/etc', 'mysql/../../x', '']) {
      const { statusLine } = parseRaw(await httpPostFile(c.apiPort, JSON.stringify({ ver: '0.1', file_type: ft }), 'ok.json', '{}'));
      assert.match(statusLine, / 400 /, `file_type ${ft}`);
    }
    const uploads = path.join(c.root, 'state', 'uploads');
    const all = existsSync(uploads) ? readdirSync(uploads, { recursive: true }).map(String) : [];
    assert.deepEqual(all.filter((f) => !/^(mysql|pgsql|cluster)$/.test(f)), []);
    assert.equal(existsSync(path.join(c.root, 'state', 'x.json')), false);
    assert.equal(existsSync('/tmp/escape.json'), false);
    assertNothingHappened();
  });

  it('install configs: injected users, passwords and option values never reach a shell or SQL unquoted', async () => {
    // Every install that is not refused initialises a real server: the bounded form tries the
    // payloads that matter most (line breaks and quotes around COPY … TO PROGRAM), the full form all.
    const all = payloads();
    const pgPayloads = FULL ? all : all.filter((p) => /COPY|\ntouch/.test(p));
    for (const p of pgPayloads) {
      for (const field of ['user', 'password'] as const) {
        const port = await freePort();
        const comp = [{ id: 1, name: 'comp1', ip: '127.0.0.1', port, user: 'abc', password: 'abc', datadir: path.join(c.root, 'installed', String(port)), [field]: p }];
        const up = parseRaw(await httpPostFile(c.apiPort, '{"ver":"0.1","file_type":"pgsql"}', 'postgresql_comp.json', JSON.stringify(comp)));
        assert.equal(up.body.result, 'succeed');
        await installMustNotAct(
          { ver: '0.1', job_type: 'pgsql_cmd', cmd: 'python2 install_pg.py --config=./postgresql_comp.json --install_ids=1' },
          `install_pg ${field}=${JSON.stringify(p)}`,
          port,
        );
      }
    }
    const mysqlPayloads = FULL ? all : all.filter((p) => /^; touch|^\ntouch|^--defaults-file/.test(p));
    for (const p of mysqlPayloads) {
      for (const field of ['innodb_buffer_pool_size', 'ip'] as const) {
        const port = await freePort();
        const shard = { cluster_name: 'clust1', shard_name: 'shard1', nodes: [{ ip: '127.0.0.1', port, data_dir_path: path.join(c.root, 'installed'), innodb_buffer_pool_size: '64MB', [field]: p }] };
        const up = parseRaw(await httpPostFile(c.apiPort, '{"ver":"0.1","file_type":"mysql"}', 'mysql_shard1.json', JSON.stringify(shard)));
        assert.equal(up.body.result, 'succeed');
        await installMustNotAct(
          { ver: '0.1', job_type: 'mysql_cmd', cmd: 'python2 install-mysql.py --config=./mysql_shard1.json --target_node_index=0' },
          `install-mysql ${field}=${JSON.stringify(p)}`,
          port,
        );
      }
    }
    assertNothingHappened();
  });

  /**
   * An install whose injected value is harmless once quoted (a role name with a quote in it) may
   * create a normal node, which is dropped again; anything else is refused or fails. Either way
   * the canary must not appear.
   */
  async function installMustNotAct(body: Record<string, unknown>, what: string, port: number): Promise<void> {
    stats.requests++;
    const r = await legacy(c.mgr.url, body);
    if (r.status >= 400 && r.status < 500) {
      stats.refused4xx++;
      return;
    }
    assert.equal(r.status, 200, `${what}: ${r.text}`);
    const done = await waitForJob(c.mgr.url, r.body.job_id, 120_000);
    if (done.result === 'succeed') stats.createdSafely++;
    else stats.acceptedThenFailed++;
    const node = await api(c.mgr.url, 'GET', `/v1/nodes/${port}`);
    if (node.status === 200) {
      if (node.body.pid) c.pids.add(node.body.pid);
      const dropped = await api(c.mgr.url, 'DELETE', `/v1/nodes/${port}`);
      assert.equal(dropped.status, 200, `${what}: drop: ${dropped.text}`);
    }
  }

  it('POST /v1/nodes: a program to run, code-loading server options or another node\'s data dir are refused', async () => {
    const { storage, computer } = c.nodes;
    const attempts: Array<[string, Record<string, unknown>]> = [
      ['cluster_mgr command', { kind: 'cluster_mgr', role: 'cluster_mgr', port: await freePort(), dir: path.join(c.root, 'cm'), command: ['/usr/bin/touch', canary()] }],
      ['cluster_mgr command via sh', { kind: 'cluster_mgr', role: 'cluster_mgr', port: await freePort(), dir: path.join(c.root, 'cm2'), command: ['/bin/sh', '-c', `touch ${canary()}`] }],
      ['postgres archive_command', { kind: 'postgres', role: 'computer', port: await freePort(), dir: path.join(c.root, 'pga'), serverOptions: { archive_mode: 'on', archive_command: `touch ${canary()}` } }],
      ['postgres shared_preload_libraries', { kind: 'postgres', role: 'computer', port: await freePort(), dir: path.join(c.root, 'pgb'), serverOptions: { shared_preload_libraries: '/tmp/evil.so' } }],
      ['mysql init_file', { kind: 'mysql', role: 'storage', port: await freePort(), dir: path.join(c.root, 'mya'), serverOptions: { 'init-file': canary() } }],
      ['mysql plugin_load_add', { kind: 'mysql', role: 'storage', port: await freePort(), dir: path.join(c.root, 'myb'), serverOptions: { plugin_load_add: '/tmp/evil.so' } }],
      ['mysql on the data dir of another node', { kind: 'mysql', role: 'storage', port: await freePort(), dir: path.join(c.root, 'twin'), dataDir: storage!.dataDir }],
      ['postgres inside the data dir of another node', { kind: 'postgres', role: 'computer', port: await freePort(), dir: path.join(computer!.dataDir, 'nested') }],
      ['mysql whose dir holds another node', { kind: 'mysql', role: 'storage', port: await freePort(), dir: c.root }],
    ];
    for (const [what, entry] of attempts) {
      stats.requests++;
      const r = await api(c.mgr.url, 'POST', '/v1/nodes', { ...ADMIN, ...entry });
      if (r.body?.pid) c.pids.add(r.body.pid);
      assert.ok(r.status >= 400 && r.status < 500, `${what}: HTTP ${r.status} ${r.text}`);
      assert.equal(errorShapeProblem({ status: r.status, body: r.text }), null);
      stats.refused4xx++;
      assert.equal((await api(c.mgr.url, 'GET', `/v1/nodes/${entry.port}`)).status, 404, `${what}: the node was registered`);
    }
    // No second server ever appeared on the existing data dirs.
    await sleep(500);
    assert.deepEqual(await serversOnDataDir(storage!.dataDir, MYSQL_SERVERS), [keep.storage]);
    assert.deepEqual(await serversOnDataDir(computer!.dataDir, PG_SERVERS), [keep.computer]);
    assertNothingHappened();
  });

  it('the nodes were never stopped or restarted by any of it', async () => {
    assert.equal((await api(c.mgr.url, 'GET', `/v1/nodes/${c.nodes.storage!.port}`)).body.pid, keep.storage);
    assert.equal((await api(c.mgr.url, 'GET', `/v1/nodes/${c.nodes.computer!.port}`)).body.pid, keep.computer);
    assertNothingHappened();
  });
});

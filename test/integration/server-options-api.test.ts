// Server options from the network pass only node-mgr's allow-list (src/engines/server-options.ts):
// through a real node-mgr, each spelling an attacker would use to reach init_file, plugins,
// grant-table bypass or PostgreSQL's commands and libraries is a 400 naming the option, and
// nothing is created; listed tuning options still reach real MariaDB and PostgreSQL servers.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, killProcessGroups, startNodeMgrProcess, type NodeMgrProcess } from '../support/node-mgr-process.ts';

const TOKEN = 'server-options-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const ADMIN = { user: 'admin', password: 'admin_pwd' };

describe('server options over the network: allow-list only', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  const pids: number[] = [];

  before(async () => {
    root = path.dirname(await tempNodeDir());
    const apiPort = await freePort();
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port: apiPort },
      stateDir: path.join(root, 'state'),
      nodesDir: path.join(root, 'nodes'),
      uploadDir: path.join(root, 'uploads'),
      runAs: TEST_RUN_AS,
      security: { token: TOKEN },
      policy: { probe: { intervalMs: 1000, startTimeoutMs: 90_000 } },
    });
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  async function refused(kind: 'mysql' | 'postgres', name: string, value: unknown): Promise<void> {
    const port = await freePort();
    const dir = `${kind}-refused-${port}`;
    const r = await api(mgr.url, 'POST', '/v1/nodes', { kind, role: kind === 'mysql' ? 'storage' : 'computer', port, dir, ...ADMIN, serverOptions: { [name]: value } }, AUTH);
    assert.equal(r.status, 400, `${kind} ${JSON.stringify(name)}=${JSON.stringify(value)}: ${r.text}`);
    assert.equal(r.body.result, 'error');
    assert.ok(r.body.info.includes(name), `the refusal names ${JSON.stringify(name)}: ${r.body.info}`);
    assert.equal((await api(mgr.url, 'GET', `/v1/nodes/${port}`, undefined, AUTH)).status, 404, 'the node was registered');
    assert.equal(existsSync(path.join(root, 'nodes', dir)), false, 'a node dir was made');
  }

  it('refuses every MariaDB spelling of init_file, plugins, grant bypass, file privileges, and values with line breaks', async () => {
    const sql = path.join(root, 'evil.sql');
    for (const [name, value] of [
      ['loose-init-file', sql],
      ['loose_init_file', sql],
      ['--init-file', sql],
      ['INIT_FILE', sql],
      ['init-fil', sql],
      ['maximum-init-file', sql],
      ['loose-plugin-load-add', 'ha_connect.so'],
      ['plugin-dir', root],
      ['skip-grant-tables', true],
      ['loose-skip-grant-tables', true],
      ['secure-file-priv', ''],
      ['init_connect', 'DO 1'],
      ['max_connections', '10\ninit-file=/tmp/x.sql'],
      ['innodb_buffer_pool_size', '64M\n[mysqld]\nplugin-load-add=x.so'],
    ] as const) {
      await refused('mysql', name, value);
    }
  });

  it('refuses PostgreSQL commands, libraries, includes and file settings in any case', async () => {
    for (const name of [
      'archive_command', 'ARCHIVE_COMMAND', 'restore_command', 'shared_preload_libraries', 'local_preload_libraries',
      'session_preload_libraries', 'ssl_passphrase_command', 'include_dir', 'include', 'dynamic_library_path', 'data_directory', 'hba_file',
    ]) {
      await refused('postgres', name, 'x');
    }
    await refused('postgres', 'work_mem', "8MB'\ninclude '/etc/passwd");
  });

  it('passes listed MariaDB options, under any spelling, to a real server', async () => {
    const port = await freePort();
    const r = await api(
      mgr.url,
      'POST',
      '/v1/nodes',
      { kind: 'mysql', role: 'storage', port, dir: 'my-tuned', ...ADMIN, serverOptions: { max_connections: 77, innodb_buffer_pool_size: '64M', 'loose-Binlog-Format': 'mixed' } },
      AUTH,
    );
    assert.equal(r.status, 200, r.text);
    pids.push(r.body.pid);
    const cnf = readFileSync(path.join(root, 'nodes', 'my-tuned', 'my.cnf'), 'utf8');
    assert.match(cnf, /^binlog_format=MIXED$/m, 'written under its canonical name');
    const conn = await mysql.createConnection({ host: '127.0.0.1', port, ...ADMIN });
    try {
      const [rows] = await conn.query('SELECT @@max_connections AS c, @@innodb_buffer_pool_size AS b, @@binlog_format AS f');
      const row = (rows as Array<{ c: number; b: number | string; f: string }>)[0]!;
      assert.deepEqual([Number(row.c), Number(row.b), row.f], [77, 64 * 1024 * 1024, 'MIXED']);
    } finally {
      await conn.end();
    }
  });

  it('passes listed PostgreSQL settings, in any case, to a real server', async () => {
    const port = await freePort();
    const r = await api(mgr.url, 'POST', '/v1/nodes', { kind: 'postgres', role: 'computer', port, dir: 'pg-tuned', ...ADMIN, serverOptions: { WORK_MEM: '8MB', max_connections: 30 } }, AUTH);
    assert.equal(r.status, 200, r.text);
    pids.push(r.body.pid);
    const client = new pg.Client({ host: '127.0.0.1', port, ...ADMIN, database: 'postgres' });
    await client.connect();
    try {
      assert.equal((await client.query('SHOW work_mem')).rows[0].work_mem, '8MB');
      assert.equal((await client.query('SHOW max_connections')).rows[0].max_connections, '30');
    } finally {
      await client.end();
    }
  });

  it('refuses an uploaded install config whose innodb_buffer_pool_size carries more lines (the seed face)', async () => {
    const port = await freePort();
    const shard = JSON.parse(readFileSync(path.join(process.cwd(), 'fixtures/mysql_shard1.json'), 'utf8'));
    shard.nodes[0].port = port;
    shard.nodes[0].data_dir_path = path.join(root, 'installed');
    shard.nodes[0].innodb_buffer_pool_size = `64MB\ninit-file=${path.join(root, 'evil.sql')}`;
    const form = new FormData();
    form.append('parameters', '{"ver":"0.1","file_type":"mysql"}');
    form.append('filename', new Blob([JSON.stringify(shard)]), 'evil_shard.json');
    const up = await fetch(`${mgr.url}/`, { method: 'POST', body: form, headers: AUTH });
    assert.equal(up.status, 200, await up.text());
    const r = await api(mgr.url, 'POST', '/', { ver: '0.1', job_type: 'mysql_cmd', cmd: 'python2 install-mysql.py --config=./evil_shard.json --target_node_index=0 --cluster_id=1 --shard_id=1' }, AUTH);
    assert.equal(r.status, 400, r.text);
    assert.match(r.body.info, /innodb_buffer_pool_size/);
    assert.equal((await api(mgr.url, 'GET', `/v1/nodes/${port}`, undefined, AUTH)).status, 404, 'the node was registered');
    assert.equal(existsSync(path.join(root, 'installed', String(port))), false);
  });
});

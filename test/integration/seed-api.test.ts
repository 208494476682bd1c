// The seed document's requests, byte for byte (ports adapted), against a node-mgr process that
// supervises real MariaDB, PostgreSQL and cluster_mgr-stand-in processes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, tempNodeDir, removeTempDirs, TEST_RUN_AS } from '../support/nodes.ts';
import { api, isRunning, killProcessGroups, legacy, startNodeMgrProcess, waitForJob, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { httpPostFile, httpPostPara, parseRaw, rawRequest } from '../support/raw-http.ts';
import { startMetaDb, type MetaDb } from '../support/meta-db.ts';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const STANDIN = path.join(ROOT, 'test/support/cluster-mgr-standin.mjs');

/** Runs the seed's curl command line with its JSON exactly as printed there; only the URL's port changes. */
async function curl(json: string, url: string): Promise<any> {
  const { stdout } = await run('curl', ['-s', '-d', json, url]);
  return JSON.parse(stdout);
}

describe('the seed requests against real nodes', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let config: Record<string, unknown>;
  let metaDb: MetaDb;
  const ports = { meta: 0, storage: 0, computer: 0, clusterMgr: 0, api: 0 };
  const pids: number[] = [];

  before(async () => {
    root = path.dirname(await tempNodeDir());
    for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freePort();
    metaDb = await startMetaDb();
    const policy = { restart: { initialDelayMs: 200, jitter: 0 }, probe: { intervalMs: 1000 } };
    config = {
      listen: { host: '127.0.0.1', port: ports.api },
      stateDir: path.join(root, 'state'),
      nodesDir: path.join(root, 'nodes'),
      runAs: TEST_RUN_AS,
      policy,
      security: { bodyLimitBytes: 64 * 1024 },
      nodes: [
        { kind: 'mysql', role: 'meta', port: ports.meta, dir: path.join(root, 'meta'), cluster: 'meta', user: 'pgx', password: 'pgx_pwd' },
        { kind: 'mysql', role: 'storage', port: ports.storage, dir: path.join(root, 'storage'), cluster: 'clust1', shard: 'shard1', user: 'pgx', password: 'pgx_pwd' },
        { kind: 'postgres', role: 'computer', port: ports.computer, dir: path.join(root, 'computer'), cluster: 'clust1', user: 'pgx', password: 'pgx_pwd' },
        {
          kind: 'cluster_mgr',
          role: 'cluster_mgr',
          port: ports.clusterMgr,
          dir: path.join(root, 'cluster_mgr'),
          command: [
            process.execPath,
            STANDIN,
            '--port', String(ports.clusterMgr),
            '--pidfile', path.join(root, 'cluster_mgr', 'run.pid'),
            '--meta-host', metaDb.host,
            '--meta-port', String(metaDb.port),
            '--meta-user', metaDb.user,
            '--meta-password', metaDb.password,
          ],
          pidFile: path.join(root, 'cluster_mgr', 'run.pid'),
          healthUrl: `http://127.0.0.1:${ports.clusterMgr}/health`,
        },
      ],
    };
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    for (const port of [ports.meta, ports.storage, ports.computer, ports.clusterMgr]) {
      const r = await api(mgr.url, 'POST', `/v1/nodes/${port}/create`);
      assert.equal(r.status, 200, r.text);
      pids.push(r.body.pid);
    }
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await metaDb?.stop();
    await removeTempDirs();
  });

  it('get_node meta_node with the seed curl command', async () => {
    const reply = await curl('{"ver":"0.1","job_type":"get_node","node_type":"meta_node"}', `http://127.0.0.1:${ports.api}/`);
    assert.deepEqual(Object.keys(reply), ['meta_node0']);
    const m = reply.meta_node0;
    assert.equal(m.port, ports.meta);
    assert.equal(m.ip, '127.0.0.1');
    assert.equal(m.user, 'pgx');
    assert.equal(m.pwd, '******');
    assert.equal(m.state, 'running');
    assert.equal(m.kind, 'mysql');
    assert.match(m.path, /meta\/data$/);
  });

  it('get_node without node_type lists all three kinds of node', async () => {
    const reply = (await legacy(mgr.url, { ver: '0.1', job_type: 'get_node' })).body;
    assert.deepEqual(Object.keys(reply).sort(), ['computer_node0', 'meta_node0', 'storage_node0']);
    assert.equal(reply.storage_node0.cluster, 'clust1');
    assert.equal(reply.storage_node0.shard, 'shard1');
    assert.equal(reply.computer_node0.cluster, 'clust1');
  });

  it('get_info with the seed curl command', async () => {
    const reply = await curl('{"ver":"0.1","job_type":"get_info"}', `http://127.0.0.1:${ports.api}/`);
    assert.match(reply.cpu_used, /^\d+\.\d\d%$/);
    assert.match(reply.mem_used, /^\d+M$/);
    assert.match(reply.mem_free, /^\d+M$/);
    assert.match(reply.disk_free, /^\d+(\.\d)?[BKMGTP]$/);
    assert.equal(reply.meta_node, 1);
    assert.equal(reply.storage_node, 1);
    assert.equal(reply.computer_node, 1);
  });

  it('./stopmysql.sh and ./startmysql.sh with the seed curl commands really stop and start the node', async () => {
    const url = `http://127.0.0.1:${ports.api}`; // the seed's URL has no trailing slash
    const before = await waitForNode(mgr.url, ports.storage, (n) => n.state === 'running');
    const stop = await curl(`{"ver":"0.1","job_type":"mysql_cmd","cmd":"./stopmysql.sh ${ports.storage}"}`, url);
    assert.equal(stop.result, 'succeed');
    assert.equal(stop.info, 'accepted');
    const stopped = await waitForJob(mgr.url, stop.job_id);
    assert.equal(stopped.result, 'succeed', JSON.stringify(stopped));
    assert.equal(await isRunning(before.pid), false);
    assert.equal((await waitForNode(mgr.url, ports.storage, () => true)).state, 'stopped');
    const start = await curl(`{"ver":"0.1","job_type":"mysql_cmd","cmd":"./startmysql.sh ${ports.storage}"}`, url);
    assert.equal((await waitForJob(mgr.url, start.job_id)).result, 'succeed');
    const after = await waitForNode(mgr.url, ports.storage, (n) => n.state === 'running');
    pids.push(after.pid);
  });

  it('the same through http_post_para\'s exact bytes (HTTP/1.0, Content-Type without a space)', async () => {
    const raw = await httpPostPara(ports.api, `{"ver":"0.1","job_type":"mysql_cmd","cmd":"./stopmysql.sh ${ports.storage}"}`);
    const { statusLine, headers, body } = parseRaw(raw);
    assert.match(statusLine, /^HTTP\/1\.[01] 200 OK$/);
    // The original clients search for these byte for byte (PROTOCOL §1): the spelling matters.
    assert.match(headers, /^Content-Length: \d+$/m);
    assert.match(headers, /^Content-Type: application\/json$/m);
    assert.equal((await waitForJob(mgr.url, body.job_id)).result, 'succeed');
    assert.equal((await waitForNode(mgr.url, ports.storage, () => true)).state, 'stopped');
    const again = parseRaw(await httpPostPara(ports.api, `{"ver":"0.1","job_type":"mysql_cmd","cmd":"./startmysql.sh ${ports.storage}"}`));
    assert.equal((await waitForJob(mgr.url, again.body.job_id)).result, 'succeed');
    pids.push((await waitForNode(mgr.url, ports.storage, (n) => n.state === 'running')).pid);
  });

  it('get_node through http_post_para answers in one piece with 200 OK, Content-Length and the body', async () => {
    const raw = await httpPostPara(ports.api, '{"ver":"0.1","job_type":"get_node","node_type":"meta_node"}');
    assert.ok(raw.includes('200 OK'));
    assert.ok(raw.includes('Content-Length:'));
    const { body } = parseRaw(raw);
    assert.equal(body.meta_node0.port, ports.meta);
  });

  it('pgsql_cmd stop_pg.py / start_pg.py port=… stop and start the computing node', async () => {
    const before = await waitForNode(mgr.url, ports.computer, (n) => n.state === 'running');
    const stop = (await legacy(mgr.url, { ver: '0.1', job_type: 'pgsql_cmd', cmd: `python2 stop_pg.py port=${ports.computer}` })).body;
    assert.equal((await waitForJob(mgr.url, stop.job_id)).result, 'succeed');
    assert.equal(await isRunning(before.pid), false);
    const start = (await legacy(mgr.url, { ver: '0.1', job_type: 'pgsql_cmd', cmd: `python2 start_pg.py port=${ports.computer}` })).body;
    assert.equal((await waitForJob(mgr.url, start.job_id)).result, 'succeed');
    pids.push((await waitForNode(mgr.url, ports.computer, (n) => n.state === 'running')).pid);
  });

  it('cluster_cmd with the seed command starts and --stop stops the cluster_mgr process', async () => {
    const before = await waitForNode(mgr.url, ports.clusterMgr, (n) => n.state === 'running');
    const stop = (await legacy(mgr.url, { ver: '0.1', job_type: 'cluster_cmd', cmd: 'bash -x bin/cluster_mgr_safe --debug --pidfile=run.pid --stop cluster_mgr.cnf' })).body;
    assert.equal((await waitForJob(mgr.url, stop.job_id)).result, 'succeed');
    assert.equal(await isRunning(before.pid), false);
    const start = (await legacy(mgr.url, { ver: '0.1', job_type: 'cluster_cmd', cmd: 'bash -x bin/cluster_mgr_safe --debug --pidfile=run.pid cluster_mgr.cnf' })).body;
    assert.equal((await waitForJob(mgr.url, start.job_id)).result, 'succeed');
    pids.push((await waitForNode(mgr.url, ports.clusterMgr, (n) => n.state === 'running')).pid);
  });

  it('auto_pullup pauses automatic restarts of a node and 0 resumes them', async () => {
    const r = await legacy(mgr.url, { ver: '0.1', job_type: 'auto_pullup', minutes: -1, port: ports.computer });
    assert.deepEqual(r.body, { result: 'succeed' });
    const before = await waitForNode(mgr.url, ports.computer, (n) => n.state === 'running');
    process.kill(before.pid, 'SIGKILL');
    const held = await waitForNode(mgr.url, ports.computer, (n) => n.state === 'held');
    assert.equal(held.paused, true);
    await legacy(mgr.url, { ver: '0.1', job_type: 'auto_pullup', minutes: 0, port: ports.computer });
    pids.push((await waitForNode(mgr.url, ports.computer, (n) => n.state === 'running')).pid);
  });

  it('uploads mysql_shard1.json with http_post_file\'s exact bytes and creates a storage node from it', async () => {
    const port = await freePort();
    const shard = JSON.parse(readFileSync(path.join(ROOT, 'fixtures/mysql_shard1.json'), 'utf8'));
    shard.nodes[0].port = port;
    shard.nodes[0].data_dir_path = path.join(root, 'installed', 'storage');
    const raw = await httpPostFile(ports.api, '{"ver":"0.1","file_type":"mysql"}', 'mysql_shard1.json', JSON.stringify(shard));
    const up = parseRaw(raw);
    assert.match(up.statusLine, / 200 OK$/);
    assert.equal(up.body.result, 'succeed');
    assert.ok(existsSync(up.body.path), `saved at ${up.body.path}`);
    assert.equal(path.basename(up.body.path), 'mysql_shard1.json');
    const job = (await legacy(mgr.url, {
      ver: '0.1',
      job_type: 'mysql_cmd',
      cmd: 'python2 install-mysql.py --config=./mysql_shard1.json --target_node_index=0 --cluster_id=1 --shard_id=1',
    })).body;
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    const done = await waitForJob(mgr.url, job.job_id, 180_000);
    assert.equal(done.result, 'succeed', JSON.stringify(done));
    const n = await waitForNode(mgr.url, port, (x) => x.state === 'running');
    pids.push(n.pid);
    assert.equal(n.role, 'storage');
    assert.equal(n.cluster, 'clust1');
    assert.equal(n.dir, path.join(root, 'installed', 'storage', String(port)));
  });

  it('uploads postgresql_comp.json and creates a computing node with install_pg.py --install_ids', async () => {
    const port = await freePort();
    const comp = JSON.parse(readFileSync(path.join(ROOT, 'fixtures/postgresql_comp.json'), 'utf8'));
    comp[0].port = port;
    comp[0].datadir = path.join(root, 'installed', 'comp', String(port));
    const up = parseRaw(await httpPostFile(ports.api, '{"ver":"0.1","file_type":"pgsql"}', 'postgresql_comp.json', JSON.stringify(comp)));
    assert.equal(up.body.result, 'succeed');
    const job = (await legacy(mgr.url, { ver: '0.1', job_type: 'pgsql_cmd', cmd: 'python2 install_pg.py --config=./postgresql_comp.json --install_ids=1' })).body;
    const done = await waitForJob(mgr.url, job.job_id, 180_000);
    assert.equal(done.result, 'succeed', JSON.stringify(done));
    const n = await waitForNode(mgr.url, port, (x) => x.state === 'running');
    pids.push(n.pid);
    assert.equal(n.role, 'computer');
  });

  it('get_status of a job still answers after node-mgr is killed and restarted', async () => {
    const stop = (await legacy(mgr.url, { ver: '0.1', job_id: 'id123456', job_type: 'pgsql_cmd', cmd: `python2 stop_pg.py port=${ports.computer}` })).body;
    assert.equal(stop.job_id, 'id123456');
    const done = await waitForJob(mgr.url, 'id123456');
    assert.equal(done.result, 'succeed');
    // The same job_id with the same body is the same job; with another body it is a conflict.
    const repeat = await legacy(mgr.url, { ver: '0.1', job_id: 'id123456', job_type: 'pgsql_cmd', cmd: `python2 stop_pg.py port=${ports.computer}` });
    assert.equal(repeat.body.job_id, 'id123456');
    const clash = await legacy(mgr.url, { ver: '0.1', job_id: 'id123456', job_type: 'pgsql_cmd', cmd: `python2 start_pg.py port=${ports.computer}` });
    assert.equal(clash.status, 409);
    await mgr.stop('SIGKILL');
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    const status = (await legacy(mgr.url, { ver: '0.1', job_id: 'id123456', job_type: 'get_status' })).body;
    assert.equal(status.job_id, 'id123456');
    assert.equal(status.job_type, 'pgsql_cmd');
    assert.equal(status.result, 'succeed');
    assert.equal(status.job_status, 'succeed');
    const unknown = (await legacy(mgr.url, { ver: '0.1', job_id: 'nope', job_type: 'get_status' })).body;
    assert.deepEqual(unknown, { job_id: 'nope', job_status: 'none', result: 'error', info: 'no such job' });
  });

  describe('bad input gets a 4xx with one sentence, and the server keeps serving', () => {
    const cases: Array<[string, () => Promise<{ status: number; body: any }>, number, RegExp]> = [
      ['malformed JSON', () => api(mgr.url, 'POST', '/', '{"ver":"0.1","job_type":'), 400, /not valid JSON/],
      ['an unknown job_type', () => legacy(mgr.url, { ver: '0.1', job_type: 'format_disk' }), 400, /unknown job_type "format_disk"/],
      ['a missing job_type', () => legacy(mgr.url, { ver: '0.1' }), 400, /job_type/],
      ['a JSON array body', () => api(mgr.url, 'POST', '/', '[1,2]'), 400, /JSON object/],
      ['a port given as a string', () => legacy(mgr.url, { ver: '0.1', job_type: 'auto_pullup', minutes: '5' }), 400, /"minutes" must be/],
      ['ver of the wrong type', () => legacy(mgr.url, { ver: 0.1, job_type: 'get_node' }), 400, /"ver"/],
      ['an unknown node_type', () => legacy(mgr.url, { ver: '0.1', job_type: 'get_node', node_type: 'disk_node' }), 400, /node_type/],
      ['an unknown port', () => legacy(mgr.url, { ver: '0.1', job_type: 'mysql_cmd', cmd: './stopmysql.sh 1' }), 404, /no mysql node on port 1/],
      ['a cmd with a shell injection', () => legacy(mgr.url, { ver: '0.1', job_type: 'mysql_cmd', cmd: `./stopmysql.sh ${ports.storage}; rm -rf /` }), 400, /not a recognised mysql_cmd command/],
      ['a cmd that is not allow-listed', () => legacy(mgr.url, { ver: '0.1', job_type: 'mysql_cmd', cmd: 'rm -rf /' }), 400, /not a recognised/],
      ['unbalanced quotes', () => legacy(mgr.url, { ver: '0.1', job_type: 'pgsql_cmd', cmd: 'python2 "start_pg.py port=1' }), 400, /unbalanced quotes/],
      ['an install config that was never uploaded', () => legacy(mgr.url, { ver: '0.1', job_type: 'mysql_cmd', cmd: 'python2 install-mysql.py --config=./nope.json --target_node_index=0' }), 400, /has not been uploaded/],
      ['an install config path with ..', () => legacy(mgr.url, { ver: '0.1', job_type: 'mysql_cmd', cmd: 'python2 install-mysql.py --config=../../etc/passwd --target_node_index=0' }), 400, /base name|not a recognised/],
      ['an oversized body', () => legacy(mgr.url, { ver: '0.1', job_type: 'get_node', pad: 'x'.repeat(100_000) }), 413, /too large/],
      ['a job_id with a slash', () => legacy(mgr.url, { ver: '0.1', job_type: 'get_status', job_id: 'a/b' }), 400, /job_id/],
    ];
    for (const [what, send, status, info] of cases) {
      it(`refuses ${what}`, async () => {
        const r = await send();
        assert.equal(r.status, status, JSON.stringify(r.body));
        assert.equal(r.body.result, 'error');
        assert.match(r.body.info, info);
        assert.doesNotMatch(r.body.info, /\n/);
        assert.equal((await legacy(mgr.url, { ver: '0.1', job_type: 'get_node', node_type: 'meta_node' })).status, 200);
      });
    }

    it('refuses an upload whose filename climbs out with ../ and writes nothing', async () => {
      const raw = await httpPostFile(ports.api, '{"ver":"0.1","file_type":"mysql"}', '../../escape.json', '{}');
      const { statusLine, body } = parseRaw(raw);
      assert.match(statusLine, / 400 /);
      assert.match(body.info, /plain base name/);
      assert.equal(existsSync(path.join(root, 'state', 'escape.json')), false);
      assert.equal(existsSync(path.join(root, 'escape.json')), false);
    });

    it('refuses an upload with an unknown file_type', async () => {
      const { statusLine, body } = parseRaw(await httpPostFile(ports.api, '{"ver":"0.1","file_type":"etc"}', 'x.json', '{}'));
      assert.match(statusLine, / 400 /);
      assert.match(body.info, /file_type/);
    });

    it('validates delete/send/coldbackup/coldrestore before any job exists', async () => {
      const wrongType = await legacy(mgr.url, { ver: '0.1', job_type: 'send', file_type: 'table', s_ip: '127.0.0.1', s_port: 'x' });
      assert.equal(wrongType.status, 400);
      assert.match(wrongType.body.info, /s_port/);
      const unknownNode = await legacy(mgr.url, { ver: '0.1', job_type: 'coldbackup', s_ip: '127.0.0.1', s_port: 1, s_user: 'pgx', s_pwd: 'pgx_pwd' });
      assert.equal(unknownNode.status, 404);
      assert.match(unknownNode.body.info, /no node on port 1/);
      const noFileType = await legacy(mgr.url, { ver: '0.1', job_type: 'delete', s_ip: '127.0.0.1', s_port: ports.storage, s_user: 'pgx', s_pwd: 'pgx_pwd' });
      assert.equal(noFileType.status, 400);
      assert.match(noFileType.body.info, /file_type/);
    });

    it('a half-sent request does not stop others from being served', async () => {
      const stalled = rawRequest(ports.api, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"ver":`).catch(() => '');
      const r = await legacy(mgr.url, { ver: '0.1', job_type: 'get_node' });
      assert.equal(r.status, 200);
      void stalled;
    });
  });
});

// The database account against root: anyone with a database login can run programs as the
// servers' OS account (PostgreSQL `COPY … TO PROGRAM` as a superuser, MariaDB `SELECT … INTO
// OUTFILE`), and that account owns the node dirs. Each test plants what an attacker would plant
// (a link to a root-only file where node-mgr writes, reads or chowns), then triggers what used to
// follow it (a crash and the automatic restart, a restart request, a CREATE), and checks that no
// file outside the node's directory changed owner, mode or content and that nothing secret was
// served. Each failed before node-mgr handled node dirs without following links (docs/security.md).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { api, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { fakeClusterMgrEntry } from '../support/fake-cluster-mgr-nodes.ts';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { ADMIN, startChaosCluster, type ChaosCluster } from './support/cluster.ts';
import { killProcessesUnder } from './support/chaos.ts';

/** Owner, mode and content hash of a file (of the link itself never: the target is what must not change). */
function fingerprint(file: string): string {
  const st = lstatSync(file);
  const content = st.isDirectory() ? readdirSync(file).sort().join('\n') : readFileSync(file, 'utf8');
  return `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)} ${createHash('sha256').update(content).digest('hex')}`;
}

/** Runs a command as the servers' account, the way a database login can. */
const asAccount = (...argv: string[]) => execFileSync('runuser', ['-u', TEST_RUN_AS, '--', ...argv]);

describe('the database account cannot steer node-mgr (root) through the node dirs', () => {
  let c: ChaosCluster;
  let secretDir: string;
  const secrets: Record<string, { file: string; content: string; before: string }> = {};

  /** A root-owned 0600 file, like /etc/shadow, with a content that must never be served. */
  const secret = (name: string) => {
    const file = path.join(secretDir, name);
    const content = `TOP-SECRET-${name}-${randomBytes(8).toString('hex')}\n`;
    writeFileSync(file, content, { mode: 0o600 });
    chmodSync(file, 0o600);
    secrets[name] = { file, content, before: fingerprint(file) };
    return file;
  };
  const assertUntouched = () => {
    for (const [name, s] of Object.entries(secrets)) assert.equal(fingerprint(s.file), s.before, `${name} (${s.file}) changed`);
  };

  before(async () => {
    c = await startChaosCluster([
      { name: 'storage', kind: 'mysql' },
      { name: 'computer', kind: 'postgres' },
    ]);
    secretDir = path.join(c.root, 'root-only');
    mkdirSync(secretDir, { mode: 0o755 });
  });

  after(async () => {
    await c?.teardown();
  });

  it('COPY … TO PROGRAM links server.log and spawned.pid to root files, then the server is killed: the restart neither chowns, writes nor serves them', async () => {
    const node = c.nodes.computer!;
    const logTarget = secret('server-log-target');
    const pidTarget = secret('spawned-pid-target');
    const client = new pg.Client({ host: '127.0.0.1', port: node.port, database: 'postgres', ...ADMIN });
    await client.connect();
    try {
      // The attacker's whole toolbox: a superuser login. The program runs as the servers' account.
      await client.query(
        `COPY (SELECT 1) TO PROGRAM 'ln -sf ${logTarget} ${node.dir}/log/server.log && ln -sf ${pidTarget} ${node.dir}/run/spawned.pid'`,
      );
    } finally {
      await client.end();
    }
    assert.ok(lstatSync(path.join(node.dir, 'log/server.log')).isSymbolicLink(), 'the planted link is in place');
    const before = await api(c.mgr.url, 'GET', `/v1/nodes/${node.port}`);
    process.kill(before.body.pid, 'SIGKILL');
    const after = await waitForNode(c.mgr.url, node.port, (n) => n.state === 'running' && n.pid !== before.body.pid && n.restarts > before.body.restarts, 90_000);
    assertUntouched();
    const served = JSON.stringify(after) + (await api(c.mgr.url, 'GET', '/v1/nodes')).text + (await api(c.mgr.url, 'POST', '/', { ver: '0.1', job_type: 'get_node' })).text;
    for (const s of Object.values(secrets)) assert.ok(!served.includes(s.content.trim()), 'a root file was served');
    // Without a credential configured nobody may read log tails (they can quote anything).
    assert.deepEqual(after.lastExit?.logTail ?? [], []);
    // node-mgr replaced the links with files of its own.
    assert.ok(lstatSync(path.join(node.dir, 'log/server.log')).isFile());
    assert.ok(lstatSync(path.join(node.dir, 'run/spawned.pid')).isFile());
  });

  it('a my.cnf linked to a root file by the account is replaced, not written through, by the next restart', async () => {
    const node = c.nodes.storage!;
    const target = secret('my-cnf-target');
    asAccount('ln', '-sf', target, path.join(node.dir, 'my.cnf'));
    const before = await api(c.mgr.url, 'GET', `/v1/nodes/${node.port}`);
    const r = await api(c.mgr.url, 'POST', `/v1/nodes/${node.port}/restart`);
    assert.equal(r.status, 200, r.text);
    await waitForNode(c.mgr.url, node.port, (n) => n.state === 'running' && n.pid !== before.body.pid, 90_000);
    assertUntouched();
    assert.ok(lstatSync(path.join(node.dir, 'my.cnf')).isFile());
    assert.match(readFileSync(path.join(node.dir, 'my.cnf'), 'utf8'), /Generated by node-mgr/);
  });

  it('a MariaDB login with FILE cannot write INTO OUTFILE into the state dir, a data dir or /tmp, nor read with LOAD_FILE: only the node\'s files/ dir is reachable', async () => {
    const node = c.nodes.storage!;
    const admin = await mysql.createConnection({ host: '127.0.0.1', port: node.port, ...ADMIN });
    await admin.query("CREATE USER IF NOT EXISTS 'filer'@'127.0.0.1' IDENTIFIED BY 'filer_pwd'");
    await admin.query("GRANT FILE ON *.* TO 'filer'@'127.0.0.1'");
    await admin.end();
    const filer = await mysql.createConnection({ host: '127.0.0.1', port: node.port, user: 'filer', password: 'filer_pwd' });
    try {
      const tag = randomBytes(6).toString('hex');
      const targets = {
        'its data dir': path.join(node.dataDir, `planted-${tag}`),
        '/tmp': path.join(os.tmpdir(), `planted-${tag}`),
        'another node\'s dir': path.join(c.nodes.computer!.dir, `planted-${tag}`),
        'node-mgr\'s state dir': path.join(c.root, 'state', `planted-${tag}`),
      };
      for (const [where, file] of Object.entries(targets)) {
        await assert.rejects(filer.query(`SELECT 'x' INTO OUTFILE ${mysql.escape(file)}`), (err: { errno?: number; message: string }) => {
          // 1290: the statement is refused by --secure-file-priv, not by a file permission (1/13).
          assert.equal(err.errno, 1290, `${where}: ${err.message}`);
          return true;
        });
        assert.equal(existsSync(file), false, `${where}: ${file} was written`);
      }
      const [[read]] = (await filer.query("SELECT LOAD_FILE('/etc/passwd') AS f")) as unknown as [{ f: Buffer | null }[]];
      assert.equal(read!.f, null, 'LOAD_FILE read /etc/passwd');
      // The login does hold FILE: its one dir works, so the refusals above are the setting's.
      const allowed = path.join(node.dir, 'files', `export-${tag}.txt`);
      await filer.query(`SELECT 'exported' INTO OUTFILE ${mysql.escape(allowed)}`);
      assert.equal(readFileSync(allowed, 'utf8'), 'exported\n');
    } finally {
      await filer.end();
    }
  });

  it('a node without its files/ dir (made before node-mgr set secure_file_priv) gets it at the next start and serves', async () => {
    const node = c.nodes.storage!;
    const files = path.join(node.dir, 'files');
    rmSync(files, { recursive: true, force: true });
    const before = await api(c.mgr.url, 'GET', `/v1/nodes/${node.port}`);
    const r = await api(c.mgr.url, 'POST', `/v1/nodes/${node.port}/restart`);
    assert.equal(r.status, 200, r.text);
    await waitForNode(c.mgr.url, node.port, (n) => n.state === 'running' && n.pid !== before.body.pid, 90_000);
    const st = lstatSync(files);
    assert.ok(st.isDirectory());
    assert.equal(st.uid, lstatSync(node.dir).uid, 'files/ belongs to the account');
  });
});

describe('node dirs: where CREATE may write, what DROP may take, what a start needs', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  const ports: Record<string, number> = {};
  let systemDir: string;
  let plantedTarget: string;
  let plantedBefore: string;

  before(async () => {
    root = path.dirname(await tempNodeDir());
    for (const name of ['planted', 'cmNoLog', 'cmOperator', 'outside', 'occupied']) ports[name] = await freePort();
    // An existing, empty system directory outside every node root (like /etc/mysql/conf.d).
    systemDir = path.join(root, 'etc', 'conf.d');
    mkdirSync(systemDir, { recursive: true, mode: 0o755 });
    // A dir the operator prepared for a configured node (owned by the account), in which the
    // account planted `log` -> a root-owned directory before the node was created.
    const planted = path.join(root, 'static', 'planted');
    mkdirSync(planted, { recursive: true });
    execFileSync('chown', [TEST_RUN_AS, planted]);
    plantedTarget = path.join(root, 'root-dir');
    mkdirSync(plantedTarget, { mode: 0o755 });
    asAccount('ln', '-s', plantedTarget, path.join(planted, 'log'));
    plantedBefore = fingerprint(plantedTarget);
    // A cluster_mgr install dir with run/ but no log/ (issue 13 item 10), and one with the operator's files.
    for (const name of ['cmNoLog', 'cmOperator']) {
      const e = fakeClusterMgrEntry(path.join(root, 'static'), ports[name]!);
      mkdirSync(path.join(e.dir as string, 'run'), { recursive: true });
      execFileSync('chown', ['-R', TEST_RUN_AS, e.dir as string]);
    }
    writeFileSync(path.join(root, 'static', `cm-${ports.cmOperator}`, 'cluster_mgr.cnf'), 'operator config\n');
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      nodesDir: path.join(root, 'nodes'),
      runAs: TEST_RUN_AS,
      policy: { restart: { initialDelayMs: 100, maxDelayMs: 500, jitter: 0 } },
      nodes: [
        { kind: 'mysql', role: 'storage', port: ports.planted, dir: planted, user: 'admin', password: 'admin_pwd' },
        fakeClusterMgrEntry(path.join(root, 'static'), ports.cmNoLog!),
        fakeClusterMgrEntry(path.join(root, 'static'), ports.cmOperator!),
      ],
    });
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await killProcessesUnder(root);
    await removeTempDirs();
  });

  it('a `log` link the account planted in a node dir before CREATE is refused with a sentence; its target keeps owner and mode', async () => {
    const r = await api(mgr.url, 'POST', `/v1/nodes/${ports.planted}/create`);
    assert.equal(r.status, 409, r.text);
    assert.match(r.body.info, /symbolic link.*remove it/);
    assert.equal(fingerprint(plantedTarget), plantedBefore);
    assert.deepEqual(readdirSync(plantedTarget), []);
  });

  it('CREATE with a dir that climbs out of the node roots to an existing system dir is a 400, and nothing is written there', async () => {
    const rel = path.relative(path.join(root, 'nodes'), systemDir);
    assert.ok(rel.startsWith('..'));
    const r = await api(mgr.url, 'POST', '/v1/nodes', { kind: 'mysql', role: 'storage', port: ports.outside, dir: rel, user: 'admin', password: 'admin_pwd' });
    assert.equal(r.status, 400, r.text);
    assert.match(r.body.info, /not under a directory configured for nodes/);
    assert.deepEqual(readdirSync(systemDir), []);
    assert.equal((await api(mgr.url, 'GET', `/v1/nodes/${ports.outside}`)).status, 404);
  });

  it('CREATE in a dir under a root that exists and is not empty, even with node-mgr\'s names only, is a 409', async () => {
    const dir = path.join(root, 'nodes', 'occupied');
    mkdirSync(path.join(dir, 'log'), { recursive: true });
    const r = await api(mgr.url, 'POST', '/v1/nodes', { kind: 'mysql', role: 'storage', port: ports.occupied, dir, user: 'admin', password: 'admin_pwd' });
    assert.equal(r.status, 409, r.text);
    assert.match(r.body.info, /already exists and is not empty \(log\)/);
  });

  it('starts a cluster_mgr whose dir lacks log/ (node-mgr makes it) instead of reporting crashes in a loop', async () => {
    const r = await api(mgr.url, 'POST', `/v1/nodes/${ports.cmNoLog}/start`);
    assert.equal(r.status, 200, r.text);
    const n = await waitForNode(mgr.url, ports.cmNoLog!, (v) => v.state === 'running', 30_000);
    assert.equal(n.restarts, 0);
    const log = path.join(root, 'static', `cm-${ports.cmNoLog}`, 'log');
    assert.equal(lstatSync(log).uid, lstatSync(path.dirname(log)).uid, 'log/ belongs to the account');
    assert.ok(lstatSync(path.join(log, 'server.log')).isFile());
  });

  it('DROP of a node whose dir existed before node-mgr leaves the dir and the operator\'s files, and takes only what node-mgr made', async () => {
    const dir = path.join(root, 'static', `cm-${ports.cmOperator}`);
    assert.equal((await api(mgr.url, 'POST', `/v1/nodes/${ports.cmOperator}/start`)).status, 200);
    await waitForNode(mgr.url, ports.cmOperator!, (v) => v.state === 'running', 30_000);
    const r = await api(mgr.url, 'DELETE', `/v1/nodes/${ports.cmOperator}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(readdirSync(dir), ['cluster_mgr.cnf']);
  });
});

describe('the state dir', () => {
  it('is made 0700 with 0600 files at start, also when an older node-mgr left it 0755', async () => {
    const root = path.dirname(await tempNodeDir());
    const stateDir = path.join(root, 'state');
    mkdirSync(stateDir, { mode: 0o755 });
    chmodSync(stateDir, 0o755);
    writeFileSync(path.join(stateDir, 'node-mgr.sqlite'), '', { mode: 0o644 });
    chmodSync(path.join(stateDir, 'node-mgr.sqlite'), 0o644);
    const mgr = await startNodeMgrProcess(path.join(root, 'mgr'), { listen: { host: '127.0.0.1', port: await freePort() }, stateDir, runAs: TEST_RUN_AS });
    try {
      assert.equal(lstatSync(stateDir).mode & 0o777, 0o700);
      for (const name of readdirSync(stateDir)) {
        const st = lstatSync(path.join(stateDir, name));
        if (st.isFile()) assert.equal(st.mode & 0o777, 0o600, name);
      }
      assert.ok(readdirSync(stateDir).includes('node-mgr.pid'));
    } finally {
      await mgr.stop('SIGKILL');
      await removeTempDirs();
    }
  });
});

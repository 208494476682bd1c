// The engines against real servers: MariaDB and PostgreSQL initialised in temp dirs on free
// ports and run as the runAs user, and a tiny node program as the cluster_mgr kind.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { Engine } from '../../src/engines/engine.ts';
import type { NodeSpec } from '../../src/engines/node-spec.ts';
import { readLogTail, StartFailed } from '../../src/engines/exit-diagnosis.ts';
import { engineFor } from '../../src/engines/index.ts';
import { postmasterAccepting } from '../../src/engines/postgres/engine.ts';
import { isAlive, portHolder, sendSignal } from '../../src/host/process-info.ts';
import { lookupRunAs } from '../../src/host/run-as.ts';
import { serverLogFile } from '../../src/engines/node-layout.ts';
import { rotateServerLog, spawnServer, watchAdopted, type SpawnedServer } from '../../src/supervisor/spawn.ts';
import { freePort, makeSpec, removeTempDirs, tempNodeDir, type SpecOverrides } from '../support/nodes.ts';
import { spawnFromForeignParent } from '../support/foreign-parent.ts';

const FAKE_CLUSTER_MGR = fileURLToPath(new URL('../support/fake-cluster-mgr.mjs', import.meta.url));
// Quotes and a backslash: the password must survive SQL quoting in both engines.
const PASSWORD = `s3cr'et"\\pw`;

/** Inode and mtime of every entry of a data dir, recursively: what a re-initialisation would change. */
async function dataDirFingerprint(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  const out: string[] = [];
  for (const e of entries.sort()) {
    const st = await lstat(path.join(dir, e));
    out.push(`${e} ${st.ino} ${st.mtimeMs}`);
  }
  return out;
}

const started: number[] = [];
async function start(engine: Engine, spec: NodeSpec): Promise<SpawnedServer> {
  await engine.writeServerConfig(spec);
  const server = await spawnServer(spec, engine.launchPlan(spec));
  started.push(server.pid);
  return server;
}

after(async () => {
  for (const pid of started) if (await isAlive(pid)) sendSignal(pid, 'SIGKILL');
  await removeTempDirs();
});

const ms = (since: bigint) => Number(process.hrtime.bigint() - since) / 1e6;
const now = () => process.hrtime.bigint();

/** The lifecycle every database engine must pass, parameterised by how to log in without the engine. */
function databaseLifecycle(
  title: string,
  kind: 'mysql' | 'postgres',
  options: {
    overrides: SpecOverrides;
    /** Its name in /proc/<pid>/comm. */
    program: string;
    badOption: [string, string | number];
    expectedBadName: string;
    /** What the server logs when the ladder's first, gentlest rung stopped it. */
    firstRungEvidence: RegExp;
    logFile: (spec: NodeSpec) => string;
    loginAs: (spec: NodeSpec, user: string, password: string) => Promise<void>;
  },
) {
  describe(title, () => {
    const engine = engineFor(kind);
    let spec: NodeSpec;
    let server: SpawnedServer;

    before(async () => {
      spec = await makeSpec(kind, options.overrides);
    });

    it('initialises the data dir as the runAs user, and a second init leaves it alone', async (t) => {
      assert.equal(await engine.isInitialised(spec), false);
      const t0 = now();
      await engine.initDataDir(spec);
      t.diagnostic(`${kind} init: ${ms(t0).toFixed(0)} ms`);
      assert.equal(await engine.isInitialised(spec), true);
      const st = await stat(spec.dataDir);
      assert.equal(st.uid, spec.runAs.uid, 'data dir owned by runAs');
      // A no-op by what it leaves, not by how long it took (a busy machine makes any bound flaky):
      // every entry of the data dir keeps its inode and modification time, and nothing is added.
      const before = await dataDirFingerprint(spec.dataDir);
      await engine.initDataDir(spec);
      assert.deepEqual(await dataDirFingerprint(spec.dataDir), before, 'the second init is a no-op');
    });

    it('starts as a direct child and becomes ready for the configured admin user', async (t) => {
      const t0 = now();
      server = await start(engine, spec);
      await engine.waitReady(spec, server.pid, AbortSignal.timeout(30_000));
      t.diagnostic(`${kind} start-to-ready: ${ms(t0).toFixed(0)} ms`);
      await engine.probe(spec, AbortSignal.timeout(5000));
    });

    it('refuses a login with a wrong password over TCP', async () => {
      await assert.rejects(options.loginAs(spec, spec.user, 'wrong-password'));
      await options.loginAs(spec, spec.user, spec.password);
    });

    it('finds the running server and proves it is its own, and no other process', async () => {
      assert.equal(await engine.findRunning(spec), server.pid);
      assert.equal(await engine.isOwnProcess(spec, server.pid), true);
      assert.equal(await engine.isOwnProcess(spec, process.pid), false);
      assert.deepEqual(await portHolder(spec.port), { pid: server.pid, program: options.program });
    });

    it('stops with the first rung of its ladder and the process exits cleanly', async (t) => {
      const t0 = now();
      await engine.stop(spec, server.pid);
      t.diagnostic(`${kind} stop: ${ms(t0).toFixed(0)} ms`);
      assert.equal(await isAlive(server.pid), false);
      const exit = await server.exit;
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.ok((await readLogTail(options.logFile(spec), 200)).some((l) => options.firstRungEvidence.test(l)));
      assert.equal(await engine.findRunning(spec), null);
      await assert.rejects(engine.probe(spec, AbortSignal.timeout(5000)));
    });

    it('reports bad_config_option naming the option when the server rejects an unknown option', async () => {
      const bad = { ...spec, serverOptions: { [options.badOption[0]]: options.badOption[1] } };
      const failing = await start(engine, bad);
      await assert.rejects(engine.waitReady(bad, failing.pid, AbortSignal.timeout(30_000)), (err: unknown) => {
        assert.ok(err instanceof StartFailed);
        assert.equal(err.reason, 'exited');
        return true;
      });
      const exit = await failing.exit;
      assert.notEqual(exit.code, 0);
      const diagnosis = await engine.diagnoseExit(bad, exit);
      assert.equal(diagnosis.cause, 'bad_config_option', diagnosis.detail);
      assert.match(diagnosis.detail, new RegExp(options.expectedBadName));
      assert.ok(diagnosis.logTail.length > 0);
      // The good config brings it back.
      const again = await start(engine, spec);
      await engine.waitReady(spec, again.pid, AbortSignal.timeout(30_000));
      await engine.stop(spec, again.pid);
      await again.exit;
    });
  });
}

databaseLifecycle('MariaDB storage node', 'mysql', {
  overrides: { user: 'nm_admin', password: PASSWORD },
  program: 'mariadbd',
  badOption: ['bogus-option', 1],
  expectedBadName: "'bogus-option=1'",
  firstRungEvidence: /Normal shutdown/,
  logFile: (spec) => path.join(spec.logDir, 'error.log'),
  loginAs: async (spec, user, password) => {
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: spec.port, user, password, connectTimeout: 3000 });
    await conn.query('SELECT 1');
    conn.destroy();
  },
});

databaseLifecycle('PostgreSQL computing node', 'postgres', {
  overrides: { user: 'nm_admin', password: PASSWORD },
  program: 'postgres',
  badOption: ['bogus_param', 1],
  expectedBadName: '"bogus_param"',
  firstRungEvidence: /received smart shutdown request/,
  logFile: (spec) => serverLogFile(spec),
  loginAs: async (spec, user, password) => {
    const client = new pg.Client({ host: '127.0.0.1', port: spec.port, user, password, database: 'postgres' });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
    } finally {
      await client.end().catch(() => undefined);
    }
  },
});

describe('PostgreSQL readiness sign (postmaster.pid status line)', () => {
  /** postmaster.pid as PostgreSQL 15 writes it: pid, data dir, start time, port, socket dir, listen address, shmem key, status. */
  const pidFile = (spec: NodeSpec, pid: number, status: string) =>
    [pid, spec.dataDir, 1764840000, spec.port, spec.runDir, '127.0.0.1', '  5432001     32768', status, ''].join('\n');

  it('says a postmaster accepts connections only when postmaster.pid names it and says ready or standby', async () => {
    const spec = await makeSpec('postgres');
    await mkdir(spec.dataDir, { recursive: true });
    const file = path.join(spec.dataDir, 'postmaster.pid');
    assert.equal(postmasterAccepting(spec, 4242), false, 'no file');
    await writeFile(file, pidFile(spec, 4242, 'starting'));
    assert.equal(postmasterAccepting(spec, 4242), false, 'starting');
    await writeFile(file, pidFile(spec, 4242, 'ready   '));
    assert.equal(postmasterAccepting(spec, 4242), true, 'ready');
    assert.equal(postmasterAccepting(spec, 4243), false, 'ready, but another postmaster (the killed one left its file)');
    await writeFile(file, pidFile(spec, 4242, 'standby '));
    assert.equal(postmasterAccepting(spec, 4242), true, 'standby');
    await writeFile(file, pidFile(spec, 4242, 'stopping'));
    assert.equal(postmasterAccepting(spec, 4242), false, 'stopping');
    // The data dir is the servers' account's: a link or a FIFO put there is not read (nor waited on).
    const elsewhere = path.join(path.dirname(spec.dataDir), 'elsewhere.pid');
    await writeFile(elsewhere, pidFile(spec, 4242, 'ready   '));
    await rm(file);
    await symlink(elsewhere, file);
    assert.equal(postmasterAccepting(spec, 4242), false, 'a link');
    await rm(file);
    execFileSync('mkfifo', [file]);
    assert.equal(postmasterAccepting(spec, 4242), false, 'a FIFO');
  });

  it('is given by a real postmaster once it accepts connections', async () => {
    const engine = engineFor('postgres');
    const spec = await makeSpec('postgres', { user: 'nm_admin', password: PASSWORD });
    await engine.initDataDir(spec);
    const server = await start(engine, spec);
    try {
      await engine.waitReady(spec, server.pid, AbortSignal.timeout(30_000));
      assert.equal(postmasterAccepting(spec, server.pid), true);
    } finally {
      await engine.stop(spec, server.pid);
    }
    assert.equal(postmasterAccepting(spec, server.pid), false, 'a stopped server removes its postmaster.pid');
  });
});

describe('MariaDB account setup', () => {
  it('leaves no password-less root login over TCP once the admin password is set', async () => {
    // Checked on the PostgreSQL-free path: a fresh MariaDB node whose admin user is root itself.
    const engine = engineFor('mysql');
    const spec = await makeSpec('mysql', { user: 'root', password: PASSWORD });
    await engine.initDataDir(spec);
    const server = await start(engine, spec);
    try {
      await engine.waitReady(spec, server.pid, AbortSignal.timeout(30_000));
      await assert.rejects(
        mysql.createConnection({ host: '127.0.0.1', port: spec.port, user: 'root', password: '', connectTimeout: 3000 }),
        /Access denied/,
      );
    } finally {
      await engine.stop(spec, server.pid);
    }
  });
});

describe('cluster_mgr kind (a generic supervised program)', () => {
  const engine = engineFor('cluster_mgr');

  async function fakeSpec(extraArgs: string[] = [], policy?: SpecOverrides['policy']) {
    const dir = await tempNodeDir('cluster_mgr');
    const pidFile = path.join(dir, 'run', 'fake.pid');
    const spec0 = await makeSpec('cluster_mgr', { dir, policy });
    return makeSpec('cluster_mgr', {
      dir,
      port: spec0.port,
      pidFile,
      healthUrl: `http://127.0.0.1:${spec0.port}/health`,
      command: [process.execPath, FAKE_CLUSTER_MGR, '--port', String(spec0.port), '--pidfile', pidFile, ...extraArgs],
      policy,
    });
  }

  it('is ready once its health URL answers, is found through its pidfile, and stops on SIGTERM', async () => {
    const spec = await fakeSpec();
    await engine.initDataDir(spec);
    assert.equal(await engine.isInitialised(spec), true);
    const server = await start(engine, spec);
    await engine.waitReady(spec, server.pid, AbortSignal.timeout(10_000));
    await engine.probe(spec, AbortSignal.timeout(5000));
    assert.equal(await engine.findRunning(spec), server.pid);
    assert.equal(await engine.isOwnProcess(spec, process.pid), false);
    await engine.stop(spec, server.pid);
    assert.deepEqual(await server.exit, { code: 0, signal: null });
    assert.equal(await engine.findRunning(spec), null);
  });

  it('escalates the stop to SIGKILL when the process ignores SIGTERM', async () => {
    const spec = await fakeSpec(['--ignore-sigterm'], { stop: { gracefulTimeoutMs: 300, forcefulTimeoutMs: 2000 } });
    await engine.initDataDir(spec);
    const server = await start(engine, spec);
    await engine.waitReady(spec, server.pid, AbortSignal.timeout(10_000));
    const t0 = Date.now();
    await engine.stop(spec, server.pid);
    assert.ok(Date.now() - t0 >= 300, 'waited the graceful timeout first');
    assert.deepEqual(await server.exit, { code: null, signal: 'SIGKILL' });
  });

  it('watches an adopted process by polling /proc until it exits', async () => {
    const spec = await fakeSpec();
    await engine.initDataDir(spec);
    const server = await start(engine, spec);
    await engine.waitReady(spec, server.pid, AbortSignal.timeout(10_000));
    const watch = watchAdopted(server.pid, 20);
    sendSignal(server.pid, 'SIGTERM');
    assert.deepEqual(await watch.exit, { code: null, signal: null });
    await server.exit;
  });

  it('keeps a spawned server running after node-mgr dies, and lets the next node-mgr adopt and stop it', async () => {
    const spec = await fakeSpec();
    await engine.initDataDir(spec);
    // A short-lived node-mgr: spawns the server, prints its pid, exits at once.
    const { pid, parent } = await spawnFromForeignParent(spec, { parentStays: false });
    if (parent.exitCode === null) await once(parent, 'exit');
    started.push(pid);
    await engine.waitReady(spec, pid, AbortSignal.timeout(10_000));
    assert.equal(await engine.findRunning(spec), pid);
    const watch = watchAdopted(pid, 20);
    await engine.stop(spec, pid);
    await watch.exit;
    // Its output still reached the log after its parent was gone: no SIGPIPE, no lost fd.
    assert.ok((await readLogTail(serverLogFile(spec), 10)).some((l) => l.includes('SIGTERM, exiting')));
  });

  it('rotates the captured output by copy-truncate while the server keeps appending', async () => {
    const spec = await fakeSpec();
    await engine.initDataDir(spec);
    const server = await start(engine, spec);
    await engine.waitReady(spec, server.pid, AbortSignal.timeout(10_000));
    const log = serverLogFile(spec);
    assert.equal(await rotateServerLog(spec, 1_000_000, 2), false, 'a small log stays');
    assert.equal(await rotateServerLog(spec, 10, 2), true);
    assert.ok((await readFile(`${log}.1`, 'utf8')).includes('listening on'));
    sendSignal(server.pid, 'SIGTERM');
    await server.exit;
    // O_APPEND: the next write lands at the start of the truncated file, not after a hole of NULs.
    assert.equal(await readFile(log, 'utf8'), 'fake-cluster-mgr: SIGTERM, exiting\n');
  });

  /** A server on a free port that answers each connection with `reply` (raw bytes), or never when null. */
  async function rawHttpServer(reply: string | null): Promise<{ url: string; requests: string[]; close(): void }> {
    const requests: string[] = [];
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.once('data', (b) => {
        requests.push(b.toString('latin1'));
        if (reply !== null) socket.end(reply);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    return {
      url: `http://127.0.0.1:${port}/health?deep=1`,
      requests,
      close: () => {
        for (const s of sockets) s.destroy();
        server.close();
      },
    };
  }

  it('takes any HTTP answer below 500 from the health URL as up, and 500, silence, a refusal or non-HTTP as down', async () => {
    const probe = async (reply: string | null, timeoutMs = 2000) => {
      const server = await rawHttpServer(reply);
      const spec = await makeSpec('cluster_mgr', { healthUrl: server.url, command: ['/bin/true'], policy: { probe: { timeoutMs } } });
      try {
        await engine.probe(spec, AbortSignal.timeout(60_000));
        return { ok: true, error: '', requests: server.requests };
      } catch (err) {
        return { ok: false, error: (err as Error).message, requests: server.requests };
      } finally {
        server.close();
      }
    };
    const up = await probe('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    assert.equal(up.ok, true, up.error);
    assert.match(up.requests[0]!, /^GET \/health\?deep=1 HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\n/, 'the path and query of the URL, with its Host');
    assert.equal((await probe('HTTP/1.1 404 Not Found\r\n\r\n')).ok, true, 'cluster_mgr answers 4xx to a bare GET');
    assert.equal((await probe('HTTP/1.0 204\r\n\r\n')).ok, true, 'a status line without a reason phrase');
    const failing = await probe('HTTP/1.1 503 Service Unavailable\r\n\r\n');
    assert.equal(failing.ok, false);
    assert.match(failing.error, /answered HTTP 503/);
    const silent = await probe(null, 300);
    assert.equal(silent.ok, false, 'a server that accepts but never answers (hung) is down');
    assert.match(silent.error, /no answer within 300 ms/);
    assert.match((await probe('SSH-2.0-OpenSSH_9.2\r\n')).error, /not HTTP/);
    assert.match((await probe('')).error, /closed without an answer/);
    const refused = await makeSpec('cluster_mgr', { healthUrl: `http://127.0.0.1:${await freePort()}/health`, command: ['/bin/true'] });
    await assert.rejects(engine.probe(refused, AbortSignal.timeout(60_000)), /ECONNREFUSED/);
  });

  it('gives up a health probe when its signal aborts', async () => {
    const server = await rawHttpServer(null);
    try {
      const spec = await makeSpec('cluster_mgr', { healthUrl: server.url, command: ['/bin/true'], policy: { probe: { timeoutMs: 60_000 } } });
      const aborting = new AbortController();
      const probing = engine.probe(spec, aborting.signal);
      aborting.abort(new Error('node-mgr is stopping'));
      await assert.rejects(probing, /node-mgr is stopping/);
    } finally {
      server.close();
    }
  });

  it('reports that the process exited when its command fails before answering', async () => {
    const spec = await makeSpec('cluster_mgr', { command: [process.execPath, FAKE_CLUSTER_MGR] });
    await engine.initDataDir(spec);
    const server = await start(engine, spec);
    await assert.rejects(engine.waitReady(spec, server.pid, AbortSignal.timeout(10_000)), /exited/);
    const exit = await server.exit;
    assert.equal(exit.code, 2);
    const diagnosis = await engine.diagnoseExit(spec, exit);
    assert.equal(diagnosis.cause, 'unknown');
    assert.ok(diagnosis.logTail.some((l) => l.includes('--port is required')));
  });
});

describe('node spec', () => {
  it('derives id, dirs and the effective policy from the node entry', async () => {
    const spec = await makeSpec('mysql', { port: 6001, dir: '/srv/kunlun/6001', policy: { stop: { gracefulTimeoutMs: 1234 } } });
    assert.equal(spec.id, 'mysql-6001');
    assert.equal(spec.dataDir, '/srv/kunlun/6001/data');
    assert.equal(spec.logDir, '/srv/kunlun/6001/log');
    assert.equal(spec.runDir, '/srv/kunlun/6001/run');
    assert.equal(spec.policy.stop.gracefulTimeoutMs, 1234);
    assert.equal(spec.policy.restart.maxRestarts, 5, 'the global default where the node says nothing');
  });

  it('says clearly when the runAs user does not exist', () => {
    assert.throws(() => lookupRunAs('no-such-user-nm'), /runAs user 'no-such-user-nm' does not exist in \/etc\/passwd/);
  });
});

describe('initialisation safeguards', () => {
  it('never shows the password when an init fails, and the next init redoes the half-done data dir', async () => {
    const engine = engineFor('postgres');
    // Role names starting with pg_ are reserved: the role step fails after initdb succeeded.
    const failing = await makeSpec('postgres', { user: 'pg_reserved', password: 'TOPSECRET-42' });
    await assert.rejects(engine.initDataDir(failing), (err: Error) => {
      assert.match(err.message, /role name "pg_reserved" is reserved/);
      assert.doesNotMatch(err.message, /TOPSECRET/);
      return true;
    });
    assert.equal(await engine.isInitialised(failing), false);
    const fixed = { ...failing, user: 'nm_admin' };
    await engine.initDataDir(fixed);
    assert.equal(await engine.isInitialised(fixed), true);
  });

  it('names the parent dir the runAs user cannot traverse', async () => {
    const closed = await mkdtemp(path.join(os.tmpdir(), 'nm-closed-'));
    try {
      await chmod(closed, 0o700);
      const spec = await makeSpec('postgres', { dir: path.join(closed, 'node') });
      await assert.rejects(engineFor('postgres').initDataDir(spec), (err: Error) => {
        assert.match(err.message, new RegExp(`${closed}.*cannot be traversed by the runAs user ${spec.runAs.name}`));
        return true;
      });
    } finally {
      await rm(closed, { recursive: true, force: true });
    }
  });

  it('refuses to initialise over a non-empty data dir that holds no server', async () => {
    const spec = await makeSpec('mysql');
    await mkdir(spec.dataDir, { recursive: true });
    await writeFile(path.join(spec.dataDir, 'precious.txt'), 'not a database');
    await assert.rejects(engineFor('mysql').initDataDir(spec), /not empty.*refusing/);
  });
});

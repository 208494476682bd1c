// A throwaway Kunlun metadata database for tests: a private MariaDB in a temp dir, on a free port,
// a direct child of the test process, with kunlun_metadata_db's tables (kunlun-meta.sql) and
// helpers to register nodes the way Kunlun's installers do. Self-contained on purpose: it does not
// use node-mgr's own MySQL engine, so discovery tests do not depend on it.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from './nodes.ts';
import mysql, { type ResultSetHeader, type RowDataPacket } from 'mysql2/promise';

const execFileP = promisify(execFile);
const DDL_FILE = fileURLToPath(new URL('./kunlun-meta.sql', import.meta.url));
export const METADATA_DATABASE = 'kunlun_metadata_db';

export interface NodeSeed {
  hostaddr: string;
  port: number;
  /** Default `pgx` / `pgx_pwd`, the seed's credentials. */
  user?: string;
  password?: string;
}
export interface StorageNodeSeed extends NodeSeed {
  cluster: string;
  shard: string;
}
export interface ComputeNodeSeed extends NodeSeed {
  cluster: string;
  /** comp_nodes.name; default `comp_<hostaddr>_<port>`. */
  name?: string;
}
export type SeedNode =
  | ({ role: 'meta' } & NodeSeed)
  | ({ role: 'storage' } & StorageNodeSeed)
  | ({ role: 'computer' } & ComputeNodeSeed);

export interface MetaDb {
  host: string;
  port: number;
  /** A login with all rights on kunlun_metadata_db (what cluster_mgr / node-mgr use). */
  user: string;
  password: string;
  database: string;
  /** The temp dir holding data dir, my.cnf, socket and error log. */
  dir: string;
  pid: number;
  addMetaNode(node: NodeSeed): Promise<void>;
  addStorageNode(node: StorageNodeSeed): Promise<void>;
  addComputeNode(node: ComputeNodeSeed): Promise<void>;
  /** Deletes every node row on that port (of that host when given); resolves to the rows deleted. */
  removeNode(port: number, hostaddr?: string): Promise<number>;
  /** Stops the server (SIGTERM) and deletes its dir. Idempotent. */
  stop(): Promise<void>;
}

export interface StartMetaDbOptions {
  nodes?: readonly SeedNode[];
  /** OS user the server runs as when the tests run as root; default `nodemgr`. */
  osUser?: string;
  readyTimeoutMs?: number;
}

/** A typical Kunlun layout on each host: a meta node, two shards of cluster `clust1`, a computer node. */
export function kunlunLayout(hosts: readonly string[]): SeedNode[] {
  return hosts.flatMap((hostaddr): SeedNode[] => [
    { role: 'meta', hostaddr, port: 6001 },
    { role: 'storage', hostaddr, port: 6004, cluster: 'clust1', shard: 'shard1' },
    { role: 'storage', hostaddr, port: 6007, cluster: 'clust1', shard: 'shard2' },
    { role: 'computer', hostaddr, port: 5401, cluster: 'clust1' },
  ]);
}

export async function startMetaDb(opts: StartMetaDbOptions = {}): Promise<MetaDb> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nodemgr-metadb-'));
  const runAs = process.getuid?.() === 0 ? lookupUser(opts.osUser ?? 'nodemgr') : undefined;
  const files = {
    cnf: path.join(dir, 'my.cnf'),
    data: path.join(dir, 'data'),
    tmp: path.join(dir, 'tmp'),
    socket: path.join(dir, 'mysqld.sock'),
    pid: path.join(dir, 'mysqld.pid'),
    log: path.join(dir, 'error.log'),
  };
  let child: ChildProcess | undefined;
  const killOnExit = () => child?.kill('SIGKILL');

  try {
    await mkdir(files.data);
    await mkdir(files.tmp);
    // Everything but the config file is written by the server, running as the unprivileged user.
    await writeFile(
      files.cnf,
      [
        '[mariadbd]',
        `datadir=${files.data}`,
        `port=${port}`,
        'bind-address=127.0.0.1',
        `socket=${files.socket}`,
        `pid-file=${files.pid}`,
        `log-error=${files.log}`,
        `tmpdir=${files.tmp}`,
        'skip-name-resolve',
        'innodb_buffer_pool_size=32M',
        '',
        '[client]',
        `port=${port}`,
        `socket=${files.socket}`,
        'host=127.0.0.1',
        'protocol=tcp',
        '',
      ].join('\n'),
    );
    if (runAs) {
      for (const p of [dir, files.data, files.tmp, files.cnf]) await chown(p, runAs.uid, runAs.gid);
    }

    // --defaults-file must come first: Debian's /etc/mysql config must not leak in.
    try {
      await execFileP(
        'mariadb-install-db',
        [`--defaults-file=${files.cnf}`, '--auth-root-authentication-method=normal', '--skip-test-db'],
        { timeout: 60_000, ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}) },
      );
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      throw new Error(`mariadb-install-db failed for the test metadata DB in ${dir}: ${e.message}\n${tail(`${e.stdout ?? ''}${e.stderr ?? ''}`)}`);
    }

    const args = [`--defaults-file=${files.cnf}`, ...(runAs ? [`--user=${runAs.name}`] : [])];
    child = spawn('mariadbd', args, { stdio: 'ignore' });
    process.once('exit', killOnExit);
    const exited = new Promise<string>((resolve) => {
      child!.once('exit', (code, signal) => resolve(`exited with ${signal ?? `code ${code}`}`));
      child!.once('error', (err) => resolve(`could not be started: ${err.message}`));
    });

    const admin = await waitForServer(port, files.log, exited, opts.readyTimeoutMs ?? 30_000);
    const password = randomBytes(12).toString('hex');
    const user = 'kunlun';
    try {
      await admin.query(await readFile(DDL_FILE, 'utf8'));
      await admin.query(`CREATE USER ?@'127.0.0.1' IDENTIFIED BY ?`, [user, password]);
      await admin.query(`GRANT ALL ON ${METADATA_DATABASE}.* TO ?@'127.0.0.1'`, [user]);
      // Install leaves root without a password; this server is reachable only on loopback, but
      // a test helper should not hand out an open root either. IF EXISTS: with skip-name-resolve
      // the root@<hostname> row that install creates is not a usable account (ER_CANNOT_USER).
      const [roots] = await admin.query<RowDataPacket[]>(`SELECT User AS user, Host AS host FROM mysql.user WHERE User = 'root'`);
      const rootPassword = randomBytes(12).toString('hex');
      for (const r of roots) await admin.query('ALTER USER IF EXISTS ?@? IDENTIFIED BY ?', [r.user, r.host, rootPassword]);
      await admin.query(`USE ${METADATA_DATABASE}`);
    } catch (err) {
      await admin.end().catch(() => {});
      throw err;
    }

    const running = child;
    let stopped: Promise<void> | undefined;
    const db: MetaDb = {
      host: '127.0.0.1',
      port,
      user,
      password,
      database: METADATA_DATABASE,
      dir,
      pid: running.pid!,
      addMetaNode: (n) => addMetaNode(admin, n),
      addStorageNode: (n) => addStorageNode(admin, n),
      addComputeNode: (n) => addComputeNode(admin, n),
      removeNode: (p, hostaddr) => removeNode(admin, p, hostaddr),
      stop() {
        stopped ??= (async () => {
          await admin.end().catch(() => admin.destroy());
          await stopChild(running, exited);
          process.removeListener('exit', killOnExit);
          await rm(dir, { recursive: true, force: true });
        })();
        return stopped;
      },
    };
    for (const node of opts.nodes ?? []) await addNode(db, node);
    return db;
  } catch (err) {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((resolve) => child!.once('exit', resolve));
    }
    process.removeListener('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Registers a node of any role. */
export function addNode(db: MetaDb, node: SeedNode): Promise<void> {
  switch (node.role) {
    case 'meta':
      return db.addMetaNode(node);
    case 'storage':
      return db.addStorageNode(node);
    case 'computer':
      return db.addComputeNode(node);
  }
}

async function addMetaNode(conn: mysql.Connection, n: NodeSeed): Promise<void> {
  await conn.query('INSERT INTO meta_db_nodes (hostaddr, port, user_name, passwd) VALUES (?, ?, ?, ?)', [
    n.hostaddr,
    n.port,
    n.user ?? 'pgx',
    n.password ?? 'pgx_pwd',
  ]);
}

async function addStorageNode(conn: mysql.Connection, n: StorageNodeSeed): Promise<void> {
  const clusterId = await clusterIdOf(conn, n.cluster);
  // LAST_INSERT_ID(id) makes insertId the existing row's id when the shard is already there.
  const [shard] = await conn.query<ResultSetHeader>(
    'INSERT INTO shards (name, db_cluster_id) VALUES (?, ?) ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id), num_nodes = num_nodes + 1',
    [n.shard, clusterId],
  );
  await conn.query('INSERT INTO shard_nodes (hostaddr, port, user_name, passwd, shard_id, db_cluster_id) VALUES (?, ?, ?, ?, ?, ?)', [
    n.hostaddr,
    n.port,
    n.user ?? 'pgx',
    n.password ?? 'pgx_pwd',
    shard.insertId,
    clusterId,
  ]);
}

async function addComputeNode(conn: mysql.Connection, n: ComputeNodeSeed): Promise<void> {
  const clusterId = await clusterIdOf(conn, n.cluster);
  const [seq] = await conn.query<ResultSetHeader>('INSERT INTO comp_nodes_id_seq VALUES ()');
  await conn.query(
    'INSERT INTO comp_nodes (id, name, hostaddr, port, db_cluster_id, user_name, passwd) VALUES (?, ?, ?, ?, ?, ?, ?)',
    [seq.insertId, n.name ?? `comp_${n.hostaddr}_${n.port}`, n.hostaddr, n.port, clusterId, n.user ?? 'abc', n.password ?? 'abc'],
  );
}

async function clusterIdOf(conn: mysql.Connection, name: string): Promise<number> {
  const [res] = await conn.query<ResultSetHeader>(
    'INSERT INTO db_clusters (name) VALUES (?) ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)',
    [name],
  );
  return res.insertId;
}

async function removeNode(conn: mysql.Connection, port: number, hostaddr?: string): Promise<number> {
  let removed = 0;
  for (const table of ['meta_db_nodes', 'shard_nodes', 'comp_nodes']) {
    const [res] = hostaddr
      ? await conn.query<ResultSetHeader>(`DELETE FROM ${table} WHERE port = ? AND hostaddr = ?`, [port, hostaddr])
      : await conn.query<ResultSetHeader>(`DELETE FROM ${table} WHERE port = ?`, [port]);
    removed += res.affectedRows;
  }
  return removed;
}

/** Polls until root can log in over TCP; fails early, with the error log's tail, if the server dies. */
async function waitForServer(port: number, logFile: string, exited: Promise<string>, timeoutMs: number): Promise<mysql.Connection> {
  const deadline = Date.now() + timeoutMs;
  let died: string | undefined;
  void exited.then((why) => {
    died = why;
  });
  let lastError = '';
  while (Date.now() < deadline) {
    if (died) throw new Error(`test metadata DB on port ${port} ${died}:\n${await logTail(logFile)}`);
    try {
      return await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', password: '', multipleStatements: true, connectTimeout: 2000 });
    } catch (err) {
      lastError = (err as Error).message;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`test metadata DB on port ${port} did not accept logins within ${timeoutMs} ms (${lastError}):\n${await logTail(logFile)}`);
}

async function stopChild(child: ChildProcess, exited: Promise<string>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

function lookupUser(name: string): { name: string; uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4) return { name, uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`OS user ${name} does not exist: the test metadata DB needs it to run mariadbd as non-root`);
}

async function logTail(file: string): Promise<string> {
  try {
    return tail(await readFile(file, 'utf8'));
  } catch {
    return `(no error log at ${file})`;
  }
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** A port nothing listens on right now, below the ephemeral range (see nodes.ts). */
export { freePort };

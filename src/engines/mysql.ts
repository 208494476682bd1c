// MariaDB and MySQL 8 storage/meta nodes. The two flavours differ only in what FLAVOURS lists;
// everything else (my.cnf, readiness, identity, stop ladder) is shared.
import { readdir, realpath, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { escape as sqlLiteral } from 'mysql2';
import mysql from 'mysql2/promise';
import { endConnection } from './sql-close.ts';
import type { Engine, ExitDiagnosis, LaunchPlan, NodeSpec } from './engine.ts';
import { waitForSql } from './readiness.ts';
import { sqlMonitorSession } from './monitor-session.ts';
import { diagnoseFromLogs } from './exit-diagnosis.ts';
import { climbStopLadder, cmdline, isAlive, pidsOwnedBy, sendSignal, startedAtMs, workingDir } from './process-info.ts';
import { emptyNodeDirAsAccount, readNodeLogTail, readNodePidFile, removeNodeFile, renameRotateNodeLog, writeNodeFile } from './node-files.ts';
import { assertSocketPathFits, clientHost, initMarkerFile, prepareNodeDirs, redact, runAsTool, serverLogFile } from './spec.ts';
import { mysqlBackup } from './mysql-backup.ts';

type FlavourName = NodeSpec['binaries']['mysqlFlavor'];

interface Flavour {
  /** my.cnf section the server reads. */
  section: string;
  /** argv0 basenames a server of this flavour runs under. */
  serverPrograms: string[];
  /** Initialises the empty data dir as runAs and runs initSqlFile once, before any server listens. */
  install(spec: NodeSpec, cnf: string, initSqlFile: string): { file: string; args: string[] };
  /** Statements the init SQL starts with. */
  initPreamble: string[];
  /** Hot physical backup and its stream unpacker, for the backup jobs. */
  backupProgram: string;
  streamUnpackProgram: string;
}

const FLAVOURS: Record<FlavourName, Flavour> = {
  mariadb: {
    section: 'mariadbd',
    serverPrograms: ['mariadbd', 'mysqld'],
    // `normal` root authentication: the default (unix_socket) refuses TCP logins from 127.0.0.1 (error 1130).
    install: (spec, cnf, sql) => ({
      file: spec.binaries.mysqlInstallDb,
      args: [
        `--defaults-file=${cnf}`,
        `--basedir=${spec.binaries.mysqlBaseDir}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        `--extra-file=${sql}`,
      ],
    }),
    // --extra-file runs in bootstrap mode, where the grant tables are not loaded yet: account
    // statements fail until FLUSH PRIVILEGES loads them.
    initPreamble: ['FLUSH PRIVILEGES'],
    backupProgram: 'mariabackup',
    streamUnpackProgram: 'mbstream',
  },
  mysql8: {
    section: 'mysqld',
    serverPrograms: ['mysqld'],
    // --init-file runs after --initialize has created the grant tables.
    install: (spec, cnf, sql) => ({
      file: spec.binaries.mysqld,
      args: [`--defaults-file=${cnf}`, '--initialize-insecure', `--init-file=${sql}`],
    }),
    initPreamble: [],
    backupProgram: 'xtrabackup',
    streamUnpackProgram: 'xbstream',
  },
};

export function mysqlFlavour(spec: NodeSpec): Flavour {
  return FLAVOURS[spec.binaries.mysqlFlavor];
}

/** Layout of a MySQL node dir. */
export function mysqlPaths(spec: NodeSpec) {
  return {
    cnf: path.join(spec.dir, 'my.cnf'),
    tmpDir: path.join(spec.dir, 'tmp'),
    socket: path.join(spec.runDir, 'mysqld.sock'),
    pidFile: path.join(spec.runDir, 'mysqld.pid'),
    errorLog: path.join(spec.logDir, 'error.log'),
  };
}

// Options node-mgr derives from the spec: overriding them in serverOptions would break identity checks.
const RESERVED = new Set(['datadir', 'port', 'bind_address', 'socket', 'pid_file', 'log_error']);
const normalise = (name: string) => name.replace(/-/g, '_').toLowerCase();

function cnfLine(name: string, value: string | number | boolean): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`server option name ${JSON.stringify(name)} is not a valid option name`);
  if (typeof value === 'boolean') return value ? name : `${name}=0`;
  const text = String(value);
  if (/[\r\n]/.test(text)) throw new Error(`server option ${name} has a line break in its value`);
  return `${name}=${text}`;
}

/** The generated my.cnf: node-mgr's settings, the small defaults, then spec.serverOptions (which override the defaults). */
export function renderMyCnf(spec: NodeSpec): string {
  const p = mysqlPaths(spec);
  const fixed: [string, string | number | boolean][] = [
    ['datadir', spec.dataDir],
    ['port', spec.port],
    ['bind-address', spec.ip],
    ['socket', p.socket],
    ['pid-file', p.pidFile],
    ['log-error', p.errorLog],
  ];
  const defaults = new Map<string, [string, string | number | boolean]>();
  const put = (name: string, value: string | number | boolean) => defaults.set(normalise(name), [name, value]);
  put('tmpdir', p.tmpDir);
  put('skip-name-resolve', true);
  put('innodb_buffer_pool_size', '64M');
  put('log-bin', 'binlog');
  put('server-id', spec.port);
  put('binlog_format', 'ROW');
  for (const [name, value] of Object.entries(spec.serverOptions)) {
    if (RESERVED.has(normalise(name))) {
      throw new Error(`${spec.id}: serverOptions.${name} cannot be set: node-mgr derives it from the node entry`);
    }
    put(name, value);
  }
  return [
    `# Generated by node-mgr for ${spec.id}; rewritten before every start. Change serverOptions in the node-mgr config instead.`,
    `[${mysqlFlavour(spec).section}]`,
    ...fixed.map(([n, v]) => cnfLine(n, v)),
    ...[...defaults.values()].map(([n, v]) => cnfLine(n, v)),
    '',
    '[client]',
    `port=${spec.port}`,
    `socket=${p.socket}`,
    `host=${clientHost(spec)}`,
    'protocol=tcp',
    '',
  ].join('\n');
}

const LOCAL_HOSTS = ['localhost', '127.0.0.1', '::1'];

/**
 * Account SQL run once at init, inside the bootstrap (before any server listens), so the data
 * dir never serves a password-less root over TCP: root's local accounts get the admin password
 * (one secret to manage, no empty-password superuser left behind), the admin user spec.user is
 * created at '%' with every privilege, and the host-name root account that install-db adds
 * (unusable under skip-name-resolve) is dropped. Identifiers are quoted as string literals.
 */
export function initSql(spec: NodeSpec): string {
  const pw = sqlLiteral(spec.password);
  const rootLocal = LOCAL_HOSTS.map((h) => `${sqlAccount('root', h)} IDENTIFIED BY ${pw}`);
  const admin = sqlAccount(spec.user, '%');
  const host = hostname().toLowerCase();
  const statements = [
    ...mysqlFlavour(spec).initPreamble,
    ...(LOCAL_HOSTS.includes(host) ? [] : [`DROP USER IF EXISTS ${sqlAccount('root', host)}`]),
    `ALTER USER IF EXISTS ${rootLocal.join(', ')}`,
    `CREATE USER IF NOT EXISTS ${admin} IDENTIFIED BY ${pw}`,
    `GRANT ALL PRIVILEGES ON *.* TO ${admin} WITH GRANT OPTION`,
  ];
  return statements.map((s) => `${s};\n`).join('');
}

/** 'user'@'host' with both parts quoted as string literals. */
function sqlAccount(user: string, host: string): string {
  return `${sqlLiteral(user)}@${sqlLiteral(host)}`;
}

interface Credentials {
  user: string;
  password: string;
}

async function connect(spec: NodeSpec, creds: Credentials, timeoutMs: number): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: clientHost(spec),
    port: spec.port,
    user: creds.user,
    password: creds.password,
    connectTimeout: timeoutMs,
  });
}

/** SELECT 1 on a fresh connection, ended with COM_QUIT; the connection never outlives the call. */
async function selectOne(spec: NodeSpec, creds: Credentials, timeoutMs: number): Promise<void> {
  const conn = await connect(spec, creds, timeoutMs);
  try {
    await conn.query({ sql: 'SELECT 1', timeout: timeoutMs });
  } finally {
    await endConnection(conn, timeoutMs);
  }
}

const admin = (spec: NodeSpec): Credentials => ({ user: spec.user, password: spec.password });

function isAccessDenied(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ER_ACCESS_DENIED_ERROR' || code === 'ER_HOST_NOT_PRIVILEGED' || code === 'ER_DBACCESS_DENIED_ERROR';
}

async function sqlShutdown(spec: NodeSpec): Promise<void> {
  const conn = await connect(spec, admin(spec), Math.min(spec.policy.probe.timeoutMs, 5000));
  try {
    await conn.query('SHUTDOWN');
  } catch (err) {
    // The server may drop the connection before answering: the shutdown is under way all the same.
    const code = (err as { code?: string }).code;
    if (code !== 'PROTOCOL_CONNECTION_LOST' && code !== 'ECONNRESET') throw err;
  } finally {
    await endConnection(conn, 1000);
  }
}

async function isEmptyDir(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch {
    return true;
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

export const mysqlEngine: Engine = {
  kind: 'mysql',

  async isInitialised(spec) {
    return (await exists(path.join(spec.dataDir, 'mysql'))) && !(await exists(initMarkerFile(spec)));
  },

  async writeServerConfig(spec) {
    const { cnf } = mysqlPaths(spec);
    // Root's file in the account's dir: written new and renamed into place, never through a link.
    await writeNodeFile(spec, cnf, renderMyCnf(spec), { mode: 0o644 });
  },

  async initDataDir(spec, signal) {
    const p = mysqlPaths(spec);
    assertSocketPathFits(p.socket);
    await prepareNodeDirs(spec, [spec.dataDir, spec.logDir, spec.runDir, p.tmpDir]);
    const marker = initMarkerFile(spec);
    if (await exists(marker)) {
      // A previous init died half-way: what is in the data dir is ours and incomplete.
      await emptyNodeDirAsAccount(spec, spec.dataDir);
    } else if (await mysqlEngine.isInitialised(spec)) {
      return;
    } else if (!(await isEmptyDir(spec.dataDir))) {
      throw new Error(`${spec.id}: data dir ${spec.dataDir} is not empty and holds no initialised server; refusing to initialise over it`);
    }
    await writeNodeFile(spec, marker, `${new Date().toISOString()}\n`, { mode: 0o644 });
    await mysqlEngine.writeServerConfig(spec);
    // The SQL carries the admin password: readable by the server's user only, deleted right after.
    const sqlFile = path.join(spec.runDir, `init-${process.pid}-${Date.now()}.sql`);
    await writeNodeFile(spec, sqlFile, initSql(spec), { mode: 0o600, owner: spec.runAs });
    try {
      const { file, args } = mysqlFlavour(spec).install(spec, p.cnf, sqlFile);
      try {
        await runAsTool(spec, file, args, { cwd: spec.dataDir, signal });
      } catch (err) {
        // The bootstrap server reports its errors to log-error, not to install-db's output.
        const evidence = (await readNodeLogTail(spec, p.errorLog, 40)).filter((l) => /ERROR/.test(l)).map((l) => redact(l, spec.password));
        throw new Error([(err as Error).message, ...evidence.slice(-5)].join('\n'));
      }
    } finally {
      await removeNodeFile(spec, sqlFile).catch(() => undefined);
    }
    await removeNodeFile(spec, marker);
  },

  launchPlan(spec): LaunchPlan {
    // --defaults-file first: the Debian /etc/mysql config must not leak in. No --user: spawnServer
    // already runs the server as runAs.
    return { file: spec.binaries.mysqld, args: [`--defaults-file=${mysqlPaths(spec).cnf}`], cwd: spec.dataDir };
  },

  // Only the admin credentials are tried: they were set in the bootstrap, before the first start,
  // so there is no window in which root with an empty password would have to be used.
  async waitReady(spec, pid, signal) {
    await waitForSql(spec, pid, signal, { selectOne: (t) => selectOne(spec, admin(spec), t), isAuthFailure: isAccessDenied });
  },

  async probe(spec, signal) {
    if (signal.aborted) throw new Error(`${spec.id}: probe aborted`);
    try {
      await selectOne(spec, admin(spec), spec.policy.probe.timeoutMs);
    } catch (err) {
      throw new Error(`${spec.id}: SELECT 1 on ${clientHost(spec)}:${spec.port} failed: ${(err as Error).message}`);
    }
  },

  async openMonitor(spec, timeoutMs) {
    const label = `${spec.id}: SELECT 1 on ${clientHost(spec)}:${spec.port}`;
    let conn: mysql.Connection;
    try {
      conn = await connect(spec, admin(spec), timeoutMs);
    } catch (err) {
      throw new Error(`${label} failed: ${(err as Error).message}`);
    }
    return sqlMonitorSession({
      label,
      selectOne: async () => {
        await conn.query('SELECT 1');
      },
      // A fatal error with no query running is emitted on the connection: unheard, it would crash node-mgr.
      whenClosed: (listener) => {
        conn.on('error', listener);
        conn.on('end', listener);
      },
      quit: () => conn.end(),
      drop: () => conn.destroy(),
    });
  },

  async findRunning(spec) {
    const pidFile = await readNodePidFile(spec, mysqlPaths(spec).pidFile);
    if (pidFile && (await mysqlEngine.isOwnProcess(spec, pidFile.pid))) return pidFile.pid;
    // The pid file is written only once InnoDB is up: a server that is still starting has none yet.
    const flag = `--defaults-file=${mysqlPaths(spec).cnf}`;
    for (const pid of await pidsOwnedBy(spec.runAs.uid)) {
      const argv = await cmdline(pid);
      if (argv?.includes(flag) && (await mysqlEngine.isOwnProcess(spec, pid))) return pid;
    }
    return null;
  },

  async isOwnProcess(spec, pid) {
    if (!(await isAlive(pid))) return false;
    const argv = await cmdline(pid);
    if (!argv || !argv.includes(`--defaults-file=${mysqlPaths(spec).cnf}`)) return false;
    if (!mysqlFlavour(spec).serverPrograms.includes(path.basename(argv[0]))) return false;
    // mysqld chdirs into its data dir.
    const cwd = await workingDir(pid);
    const dataDir = await realpath(spec.dataDir).catch(() => spec.dataDir);
    if (cwd !== null && cwd !== dataDir) return false;
    const pidFile = await readNodePidFile(spec, mysqlPaths(spec).pidFile);
    if (pidFile) {
      // Another live server of this node wrote the pid file: pid is a second one that lost the race.
      if (pidFile.pid !== pid) return !(await cmdline(pidFile.pid))?.includes(`--defaults-file=${mysqlPaths(spec).cnf}`);
      // A pid file older than the process was written by an earlier process that had the same pid.
      const started = await startedAtMs(pid);
      if (started !== null && started > pidFile.mtimeMs + 2000) return false;
    }
    return true;
  },

  async stop(spec, pid, signal) {
    const { gracefulTimeoutMs, forcefulTimeoutMs } = spec.policy.stop;
    await climbStopLadder(
      pid,
      [
        { name: 'SQL SHUTDOWN', act: () => sqlShutdown(spec), waitMs: gracefulTimeoutMs },
        { name: 'SIGTERM', act: () => sendSignal(pid, 'SIGTERM'), waitMs: forcefulTimeoutMs },
        { name: 'SIGKILL', act: () => sendSignal(pid, 'SIGKILL'), waitMs: forcefulTimeoutMs },
      ],
      signal,
    );
  },

  async diagnoseExit(spec, exit): Promise<ExitDiagnosis> {
    // Errors before log-error is opened (and crash traces) land in the captured stderr.
    return diagnoseFromLogs([mysqlPaths(spec).errorLog, serverLogFile(spec)], exit, (file, n) => readNodeLogTail(spec, file, n));
  },

  // log-error is reopened by FLUSH ERROR LOGS: rename, then ask. A server that is down makes a new
  // file when it starts.
  async rotateOwnLogs(spec, { maxBytes, keep }) {
    const { errorLog } = mysqlPaths(spec);
    if (!(await renameRotateNodeLog(spec, errorLog, maxBytes, keep))) return [];
    try {
      const conn = await connect(spec, admin(spec), Math.min(spec.policy.probe.timeoutMs, 5000));
      try {
        await conn.query('FLUSH ERROR LOGS');
      } finally {
        await conn.end().catch(() => conn.destroy());
      }
    } catch (err) {
      if (!['ECONNREFUSED', 'ENOENT'].includes((err as { code?: string }).code ?? '')) throw new Error(`${spec.id}: rotated ${errorLog} but FLUSH ERROR LOGS failed: ${(err as Error).message}`);
    }
    return [errorLog];
  },

  ownedPaths(spec) {
    return spec.dataDir.startsWith(spec.dir + path.sep) ? [spec.dir] : [spec.dir, spec.dataDir];
  },

  laysOutNodeDir: true,

  // A getter: mysql-backup.ts imports this module's paths, and the cycle must not be read at load.
  get backup() {
    return mysqlBackup;
  },
};

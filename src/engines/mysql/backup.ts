// Physical backups of MariaDB (mariabackup) and MySQL 8 (xtrabackup) nodes.
//
// A backup must be prepared before it is archived (PROTOCOL §4), and --prepare only works on files
// in a directory: it applies the copied redo log to them in place. So the server is copied once
// into a staging directory (--backup --target-dir), prepared there in place, and then streamed
// from there into the archive, straight to the store. That is one copy on local disk, never two:
// no xbstream file, no local .tgz.
import { lstat, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type mysql from 'mysql2/promise';
import { connectMysql } from './driver.ts';
import type { BackupPosition } from '../../backup/manifest.ts';
import { clientHost } from '../../host/address.ts';
import { prepareNodeDirs } from '../node-layout.ts';
import type { NodeSpec } from '../node-spec.ts';
import { treeBytes, walkStaged, type BackupCredentials, type PhysicalBackup, type PhysicalBackupRun } from '../physical-backup.ts';
import { redact, serverEnv } from '../run-as-node.ts';
import { mysqlFlavour } from './flavour.ts';
import { mysqlPaths } from './paths.ts';
import { mariadbBinlogReplay } from './binlog-replay.ts';

/** The backup program: the configured one, unless the flavour needs another (xtrabackup for MySQL 8). */
export function backupTool(spec: NodeSpec): string {
  const wanted = mysqlFlavour(spec).backupProgram;
  const configured = spec.binaries.mysqlBackup;
  return path.basename(configured).startsWith(wanted) ? configured : wanted;
}

/**
 * Runs the backup tool as the node's OS user. `--defaults-file` comes first (the Debian
 * /etc/mysql config must not leak in); the password travels in MYSQL_PWD, never in argv, where
 * any user could read it in `ps`.
 */
async function runTool(spec: NodeSpec, args: string[], opts: { creds?: BackupCredentials; signal: AbortSignal }): Promise<string> {
  const tool = backupTool(spec);
  const argv = [`--defaults-file=${mysqlPaths(spec).cnf}`, ...args, ...(opts.creds ? [`--user=${opts.creds.user}`] : [])];
  const result = await execa(tool, argv, {
    uid: spec.runAs.uid,
    gid: spec.runAs.gid,
    env: serverEnv(spec, opts.creds ? { MYSQL_PWD: opts.creds.password } : {}),
    extendEnv: false,
    cwd: spec.dir,
    cancelSignal: opts.signal,
    all: true,
    reject: false,
    maxBuffer: 16 * 1024 * 1024,
  });
  const output = opts.creds ? redact(result.all ?? '', opts.creds.password) : (result.all ?? '');
  if (result.failed) {
    const why = result.isCanceled ? 'was cancelled' : `failed (exit ${result.exitCode ?? result.signal})`;
    // The tool reports the cause in its last lines ("[ERROR] …", "Access denied …").
    const lines = output.trim().split('\n');
    const errors = lines.filter((l) => /error|denied|cannot|can't|failed/i.test(l));
    throw new Error(`${spec.id}: ${path.basename(tool)} ${args[0]} ${why}: ${(errors.length ? errors : lines).slice(-4).join(' | ')}`);
  }
  return output;
}

/** `server_version = 10.11.6-MariaDB-0+deb12u1-log` from xtrabackup_info. */
async function serverVersion(target: string): Promise<string> {
  const info = await readFile(path.join(target, 'xtrabackup_info'), 'utf8').catch(() => '');
  return /^server_version\s*=\s*(.+)$/m.exec(info)?.[1]?.trim() ?? 'unknown';
}

/** xtrabackup_binlog_info: `<file>\t<position>[\t<gtid>]`; absent when binary logging is off. */
async function binlogPosition(target: string): Promise<BackupPosition> {
  let text: string;
  try {
    text = await readFile(path.join(target, 'xtrabackup_binlog_info'), 'utf8');
  } catch {
    return { kind: 'none', reason: 'the server does not write binary logs' };
  }
  const [file, pos, gtid] = text.trim().split('\t');
  if (!file || !pos || !/^\d+$/.test(pos)) return { kind: 'none', reason: `unreadable xtrabackup_binlog_info: ${JSON.stringify(text.slice(0, 100))}` };
  return { kind: 'binlog', file, position: Number(pos), ...(gtid ? { gtid: gtid.trim() } : {}) };
}

// Files of the data dir that a backup does not copy as they are (progress estimate only).
const NOT_COPIED = /^(ib_logfile\d+|.*\.\d{6}|.*\.index|.*\.pid|.*\.sock)$/;

export const mysqlBackup: PhysicalBackup = {
  dataDirMode: 0o750,
  logReplay: mariadbBinlogReplay,

  async take(spec, { creds, stagingDir, signal, progress }): Promise<PhysicalBackupRun> {
    const target = path.join(stagingDir, 'backup');
    const estimate = await treeBytes(spec.dataDir, (name) => NOT_COPIED.test(name));
    progress({ phase: 'copying', bytesDone: 0, bytesTotal: estimate });
    // The copy runs in a child process: its progress is the staging dir growing.
    const poll = setInterval(() => {
      void treeBytes(target).then((done) => progress({ phase: 'copying', bytesDone: done, bytesTotal: Math.max(estimate, done) }));
    }, 1000);
    try {
      await runTool(spec, ['--backup', `--target-dir=${target}`], { creds, signal });
    } finally {
      clearInterval(poll);
    }
    progress({ phase: 'preparing' });
    await runTool(spec, ['--prepare', `--target-dir=${target}`], { signal });
    const [version, position, staged] = await Promise.all([serverVersion(target), binlogPosition(target), treeBytes(target)]);
    const flavour = spec.binaries.mysqlFlavor;
    return {
      engine: { kind: 'mysql', flavour, tool: path.basename(backupTool(spec)), server_version: version },
      prepared: true,
      estimatedBytes: staged,
      files: () => walkStaged(target),
      position: () => position,
      // The job removes the staging dir itself.
      close: async () => undefined,
    };
  },

  async prepareNodeDirs(spec) {
    await prepareNodeDirs(spec, [spec.logDir, spec.runDir, mysqlPaths(spec).tmpDir, mysqlPaths(spec).filesDir]);
  },

  async finishUnpacked(spec, dir, manifest, signal) {
    // Archives of ours are prepared; one taken without --prepare gets it now, before the swap.
    if (!manifest.prepared) await runTool(spec, ['--prepare', `--target-dir=${dir}`], { signal });
    if (spec.binaries.mysqlFlavor === 'mariadb') await placeBinlogPlaceholder(spec, dir, manifest.position);
  },

  async restoreLogPosition(spec, opts) {
    // MySQL 8 keeps its GTIDs in mysql.gtid_executed, which the data files carry.
    if (spec.binaries.mysqlFlavor !== 'mariadb') return {};
    return restoreBinlogPosition(spec, opts);
  },
};

// ---------------------------------------------------------------------------------------------
// The binlog position after a restore
//
// The data files of a backup do not carry the binlog: a server started on them begins again at
// binlog.000001 with an empty @@gtid_binlog_pos, although the data is at the backup's GTID. So the
// GTID state is set back once it runs (SET GLOBAL gtid_binlog_state, which resets the binlog) and
// gtid_slave_pos with it, for a node that is to replicate from its shard's primary.
//
// The numbering continues past every binlog file the node had before and the backup names:
// MariaDB names a new binlog file (at start, and on the reset) one past the highest-numbered
// `<base>.NNNNNN` it finds in the directory, so an empty placeholder with the last number taken
// is put in the restored data dir before the swap; it is removed once the reset has opened the
// next file. A name thus never comes back with other contents, and binlog positions recorded
// before the restore (replicas, backups, purges) cannot be taken for new ones — even if node-mgr
// dies before the reset.

const GTID_LIST = /^\d+-\d+-\d+(,\d+-\d+-\d+)*$/;

function binlogBase(position: BackupPosition): { base: string; number: number } | null {
  if (position.kind !== 'binlog') return null;
  const m = /^([^/]+)\.(\d{6})$/.exec(position.file);
  if (!m) throw new Error(`the backup's binlog file ${JSON.stringify(position.file)} is not named <base>.NNNNNN`);
  return { base: m[1]!, number: Number(m[2]) };
}

/** The `<base>.NNNNNN` files in `dir` with their numbers and sizes (none when there is no dir). */
async function binlogFiles(dir: string | null, base: string): Promise<{ name: string; number: number; size: number }[]> {
  if (!dir) return [];
  const names = await readdir(dir).catch(() => [] as string[]);
  const pattern = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d{6})$`);
  const out: { name: string; number: number; size: number }[] = [];
  for (const name of names) {
    const m = pattern.exec(name);
    if (!m) continue;
    const st = await lstat(path.join(dir, name)).catch(() => null);
    if (st?.isFile()) out.push({ name, number: Number(m[1]), size: st.size });
  }
  return out;
}

const binlogName = (base: string, n: number) => `${base}.${String(n).padStart(6, '0')}`;

/**
 * Before the swap: an empty placeholder in the restored dir `dir` numbered after the highest
 * binlog the node has (its data dir is still the old one) or the backup names, so that the server
 * starting on it opens the next number.
 */
export async function placeBinlogPlaceholder(spec: NodeSpec, dir: string, position: BackupPosition): Promise<void> {
  const b = binlogBase(position);
  if (!b) return;
  const highest = Math.max(b.number, ...(await binlogFiles(spec.dataDir, b.base)).map((f) => f.number));
  // Created and chowned through one handle: the name is never followed to anything else.
  const fh = await open(path.join(dir, binlogName(b.base, highest)), 'wx', 0o640);
  try {
    await fh.chown(spec.runAs.uid, spec.runAs.gid);
  } finally {
    await fh.close();
  }
}

/** Once the server runs on the restored data: the backup's GTID state back, the numbering continued. */
export async function restoreBinlogPosition(
  spec: NodeSpec,
  opts: { position: BackupPosition; creds: BackupCredentials; previousDataDir: string | null },
): Promise<Record<string, string>> {
  const b = binlogBase(opts.position);
  if (!b || opts.position.kind !== 'binlog') return {};
  const gtid = opts.position.gtid?.trim() ?? '';
  if (gtid !== '' && !GTID_LIST.test(gtid)) throw new Error(`the backup's GTID ${JSON.stringify(gtid)} is not a list of domain-server-sequence`);

  const conn = await connectMysql({ host: clientHost(spec), port: spec.port, user: opts.creds.user, password: opts.creds.password, connectTimeout: 10_000 });
  const shown = async () => ((await conn.query('SHOW BINARY LOGS')) as unknown as [{ Log_name: string }[]])[0].map((r) => r.Log_name);
  const current = async () => ((await conn.query('SHOW MASTER STATUS')) as unknown as [{ File?: string }[]])[0][0]?.File;
  let placed: string | undefined;
  try {
    const file = await current();
    if (!file) throw new Error(`${spec.id} does not write binary logs`);
    if (!file.startsWith(`${b.base}.`)) throw new Error(`${spec.id} writes binary logs as ${file}, the backup as ${opts.position.file}`);
    // The server's own files go with the reset; every other number (the old data dir's, the
    // placeholder's, the backup's) stays taken.
    const own = new Set(await shown());
    const lying = (await binlogFiles(spec.dataDir, b.base)).filter((f) => !own.has(f.name));
    const next = Math.max(b.number, ...lying.map((f) => f.number), ...(await binlogFiles(opts.previousDataDir, b.base)).map((f) => f.number)) + 1;
    const floor = binlogName(b.base, next - 1);
    if (!lying.some((f) => f.name === floor) && !own.has(floor)) {
      await writeFile(path.join(spec.dataDir, floor), '', { flag: 'wx' });
      placed = path.join(spec.dataDir, floor);
    }
    // Allowed only on an empty binlog: the reset empties it (what the restored server wrote
    // since it started belongs to no history the backup knows).
    await conn.query('RESET MASTER');
    if (gtid !== '') {
      await conn.query('SET GLOBAL gtid_binlog_state = ?', [gtid]);
      await conn.query('SET GLOBAL gtid_slave_pos = ?', [gtid]);
    }
    // Should the reset still have opened a lower number, rotate on to the right one.
    for (let guard = 0; guard < 8; guard++) {
      const now = await current();
      if (Number(/\.(\d{6})$/.exec(now ?? '')?.[1] ?? 0) >= next) break;
      await conn.query('FLUSH BINARY LOGS');
      await conn.query('PURGE BINARY LOGS TO ?', [await current()]);
    }
    const [[after]] = (await conn.query('SELECT @@GLOBAL.gtid_binlog_pos AS pos')) as unknown as [{ pos: string }[]];
    if (gtid !== '' && after!.pos !== gtid) throw new Error(`@@gtid_binlog_pos is ${JSON.stringify(after!.pos)} after setting it to ${gtid}`);
    // The placeholders (ours, and the one placed before the swap) have done their work.
    const live = new Set(await shown());
    for (const f of await binlogFiles(spec.dataDir, b.base)) {
      if (!live.has(f.name) && f.size === 0) await rm(path.join(spec.dataDir, f.name), { force: true });
    }
    placed = undefined;
    return { binlog_file: (await current())!, ...(gtid !== '' ? { gtid_binlog_pos: after!.pos } : {}) };
  } finally {
    if (placed) await rm(placed, { force: true }).catch(() => undefined);
    await conn.end().catch(() => conn.destroy());
  }
}

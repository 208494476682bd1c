// Physical backups of MariaDB (mariabackup) and MySQL 8 (xtrabackup) nodes.
//
// A backup must be prepared before it is archived (PROTOCOL §4), and --prepare only works on files
// in a directory: it applies the copied redo log to them in place. So the server is copied once
// into a staging directory (--backup --target-dir), prepared there in place, and then streamed
// from there into the archive, straight to the store. That is one copy on local disk, never two:
// no xbstream file, no local .tgz.
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import mysql from 'mysql2/promise';
import type { NodeSpec } from './engine.ts';
import { mysqlFlavour, mysqlPaths } from './mysql.ts';
import { treeBytes, walkStaged, type BackupCredentials, type PhysicalBackup, type PhysicalBackupRun } from './physical-backup.ts';
import { clientHost, prepareNodeDirs, redact, serverEnv } from './spec.ts';
import type { BackupPosition, Manifest } from '../backup/manifest.ts';

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
    await prepareNodeDirs(spec, [spec.logDir, spec.runDir, mysqlPaths(spec).tmpDir]);
  },

  async finishUnpacked(spec, dir, manifest, signal) {
    // Archives of ours are prepared; one taken without --prepare gets it now, before the swap.
    if (!manifest.prepared) await runTool(spec, ['--prepare', `--target-dir=${dir}`], { signal });
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
// GTID state is set back (SET GLOBAL gtid_binlog_state, which resets the binlog) and
// gtid_slave_pos with it, for a node that is to replicate from its shard's primary. The numbering
// continues past every binlog file the node had before: MariaDB names a new binlog file one past
// the highest-numbered `<base>.NNNNNN` it finds in the directory, so an empty placeholder of the
// last number taken makes the reset open the next one. A name is then never reused for other
// contents, and backups or purges taken before the restore cannot mistake new files for old.

const GTID_LIST = /^\d+-\d+-\d+(,\d+-\d+-\d+)*$/;

/** The highest N of `<base>.NNNNNN` files in `dir`, 0 when there are none (or no dir). */
async function highestBinlogNumber(dir: string | null, base: string): Promise<number> {
  if (!dir) return 0;
  const names = await readdir(dir).catch(() => [] as string[]);
  const pattern = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d{6})$`);
  return names.reduce((max, n) => Math.max(max, Number(pattern.exec(n)?.[1] ?? 0)), 0);
}

const binlogName = (base: string, n: number) => `${base}.${String(n).padStart(6, '0')}`;

export async function restoreBinlogPosition(
  spec: NodeSpec,
  opts: { manifest: Manifest; creds: BackupCredentials; previousDataDir: string | null },
): Promise<Record<string, string>> {
  const position = opts.manifest.position;
  if (position.kind !== 'binlog') return {};
  const m = /^(.+)\.(\d{6})$/.exec(position.file);
  if (!m) throw new Error(`the backup's binlog file ${JSON.stringify(position.file)} is not named <base>.NNNNNN`);
  const base = m[1]!;
  if (base.includes('/')) throw new Error(`the backup's binlog file ${position.file} is not a plain file name`);
  const gtid = position.gtid?.trim() ?? '';
  if (gtid !== '' && !GTID_LIST.test(gtid)) throw new Error(`the backup's GTID ${JSON.stringify(gtid)} is not a list of domain-server-sequence`);
  const next = Math.max(Number(m[2]), await highestBinlogNumber(opts.previousDataDir, base), await highestBinlogNumber(spec.dataDir, base)) + 1;

  const conn = await mysql.createConnection({ host: clientHost(spec), port: spec.port, user: opts.creds.user, password: opts.creds.password, connectTimeout: 10_000 });
  const placeholder = path.join(spec.dataDir, binlogName(base, next - 1));
  let placed = false;
  try {
    const [[status]] = (await conn.query('SHOW MASTER STATUS')) as unknown as [{ File?: string }[]];
    if (!status?.File) throw new Error(`${spec.id} does not write binary logs`);
    if (!status.File.startsWith(`${base}.`)) throw new Error(`${spec.id} writes binary logs as ${status.File}, the backup as ${position.file}`);
    // Not one of the server's own files (those it deletes on the reset): only a name to count from.
    await writeFile(placeholder, '', { flag: 'wx' }).then(
      () => (placed = true),
      (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      },
    );
    if (gtid !== '') {
      // Allowed only on an empty binlog: the reset empties it (what the restored server wrote
      // since it started belongs to no history the backup knows).
      await conn.query('RESET MASTER');
      await conn.query('SET GLOBAL gtid_binlog_state = ?', [gtid]);
      await conn.query('SET GLOBAL gtid_slave_pos = ?', [gtid]);
    } else {
      await conn.query('RESET MASTER');
    }
    // Where the placeholder could not help (its name was the server's current file), rotate on.
    for (let guard = 0; guard < 8; guard++) {
      const [[now]] = (await conn.query('SHOW MASTER STATUS')) as unknown as [{ File: string }[]];
      if (Number(/\.(\d{6})$/.exec(now!.File)?.[1] ?? 0) >= next) break;
      await conn.query('FLUSH BINARY LOGS');
      const [[rotated]] = (await conn.query('SHOW MASTER STATUS')) as unknown as [{ File: string }[]];
      await conn.query('PURGE BINARY LOGS TO ?', [rotated!.File]);
    }
    const [[after]] = (await conn.query('SELECT @@GLOBAL.gtid_binlog_pos AS pos')) as unknown as [{ pos: string }[]];
    const [[file]] = (await conn.query('SHOW MASTER STATUS')) as unknown as [{ File: string }[]];
    if (gtid !== '' && after!.pos !== gtid) throw new Error(`@@gtid_binlog_pos is ${JSON.stringify(after!.pos)} after setting it to ${gtid}`);
    return { binlog_file: file!.File, ...(gtid !== '' ? { gtid_binlog_pos: after!.pos } : {}) };
  } finally {
    if (placed) await rm(placeholder, { force: true }).catch(() => undefined);
    await conn.end().catch(() => conn.destroy());
  }
}

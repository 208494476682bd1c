// Physical backups of MariaDB (mariabackup) and MySQL 8 (xtrabackup) nodes.
//
// A backup must be prepared before it is archived (PROTOCOL §4), and --prepare only works on files
// in a directory: it applies the copied redo log to them in place. So the server is copied once
// into a staging directory (--backup --target-dir), prepared there in place, and then streamed
// from there into the archive, straight to the store. That is one copy on local disk, never two:
// no xbstream file, no local .tgz.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { NodeSpec } from './engine.ts';
import { mysqlFlavour, mysqlPaths } from './mysql.ts';
import { treeBytes, walkStaged, type BackupCredentials, type PhysicalBackup, type PhysicalBackupRun } from './physical-backup.ts';
import { prepareNodeDirs, redact, serverEnv } from './spec.ts';
import type { BackupPosition } from '../backup/manifest.ts';

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
};

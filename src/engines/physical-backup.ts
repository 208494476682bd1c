// What an engine offers the cold-backup and cold-restore jobs: a hot physical backup of its
// running server as a stream of files, and the engine's own last step on a restored data dir.
// The jobs pack, upload, verify and swap; only the commands and formats of mariabackup,
// xtrabackup and pg_basebackup live behind this interface.
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import type { BackupPosition, Manifest, ManifestEngine } from '../backup/manifest.ts';
import type { NodeSpec } from './node-spec.ts';

/** One entry of a physical backup, named relative to the data dir it becomes. */
export interface BackupFile {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  size: number;
  mode: number;
  mtime: Date;
  linkTarget?: string;
  /** Files only: exactly `size` bytes; read it before asking for the next entry. */
  body?: AsyncIterable<Uint8Array>;
}

export interface BackupProgress {
  phase: string;
  bytesDone?: number;
  bytesTotal?: number;
}

export interface BackupCredentials {
  user: string;
  password: string;
}

/** A backup under way: its files are read once, in order; close() always follows. */
export interface PhysicalBackupRun {
  readonly engine: ManifestEngine;
  /** True when the files are a data dir a server can start from as they are. */
  readonly prepared: boolean;
  /** Bytes the files are expected to total (progress), null when unknown. */
  readonly estimatedBytes: number | null;
  files(): AsyncIterable<BackupFile>;
  /** Where the backup stands in the server's log; known once files() has been read to its end. */
  position(): BackupPosition;
  /** Ends sessions and child processes, removes staged files. Safe to call more than once. */
  close(): Promise<void>;
}

export interface PhysicalBackup {
  /**
   * Starts a hot, consistent backup of the running server. `stagingDir` is an empty directory
   * owned by the node's OS user, for engines that must stage; it is the job's to remove.
   */
  take(
    spec: NodeSpec,
    opts: { creds: BackupCredentials; stagingDir: string; signal: AbortSignal; progress: (p: BackupProgress) => void },
  ): Promise<PhysicalBackupRun>;
  /** Mode of the data dir itself (the files keep the modes they were archived with). */
  readonly dataDirMode: number;
  /** Creates the node's own directories (logs, sockets, tmp) for a node rebuilt from a backup. */
  prepareNodeDirs(spec: NodeSpec): Promise<void>;
  /**
   * Last step on an unpacked, digest-checked backup in `dir`, before it becomes the data dir:
   * whatever the engine still needs (a --prepare) or offers as its own check (pg_verifybackup).
   */
  finishUnpacked(spec: NodeSpec, dir: string, manifest: Manifest, signal: AbortSignal): Promise<void>;
  /**
   * Once the server runs on the restored data: gives it back the log position the backup was
   * taken at, where the data files alone do not carry it (MariaDB's binlog GTID state), so that
   * replicas can follow and the log numbering continues past every file the node had before
   * (`previousDataDir`, null for a node that had none). Returns what it set, for the job result.
   */
  restoreLogPosition?(
    spec: NodeSpec,
    opts: { position: BackupPosition; creds: BackupCredentials; previousDataDir: string | null },
  ): Promise<Record<string, string>>;
  /** Point-in-time restore: applies archived logs to an unpacked backup before it becomes the data dir. */
  readonly logReplay?: BinlogReplay;
}

/** One archived log file, downloaded and checked, in replay order. */
export interface ReplayFile {
  name: string;
  path: string;
  size: number;
}

export interface ReplayProgress {
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
  events: number;
}

export interface ReplayOptions {
  files: ReplayFile[];
  /** The backup's log position: the replay starts there, in files[0]. */
  start: BackupPosition;
  /** Events stamped at or after this second are not applied. */
  stopAt: Date;
  creds: BackupCredentials;
  signal: AbortSignal;
  /** Told the pid of the private server the replay runs (null once it is gone), for the restore journal. */
  onServer(pid: number | null): Promise<void>;
  progress(p: ReplayProgress): void;
}

export interface ReplayOutcome {
  /** The last transaction applied in full; null when no event before the stop time followed the backup. */
  last: { file: string; position: number; gtid: string | null; time: string } | null;
  events: number;
  bytes: number;
  /** The log position the data is at now (what the restored server must continue from). */
  position: BackupPosition;
}

export interface BinlogReplay {
  replay(spec: NodeSpec, dataDir: string, opts: ReplayOptions): Promise<ReplayOutcome>;
  /** `YYYY-MM-DD HH:MM:SS` read in the running server's own time zone; null when the server does not answer. */
  serverTime(spec: NodeSpec, creds: BackupCredentials, local: string): Promise<Date | null>;
}

/** The entries of a staged directory tree, parents before children, in a stable order. */
export async function* walkStaged(root: string, rel = ''): AsyncGenerator<BackupFile> {
  const names = (await readdir(path.join(root, rel))).sort();
  for (const name of names) {
    const relPath = rel ? `${rel}/${name}` : name;
    const full = path.join(root, relPath);
    const st = await lstat(full);
    const base = { path: relPath, mode: st.mode & 0o7777, mtime: st.mtime };
    if (st.isDirectory()) {
      yield { ...base, type: 'dir', size: 0 };
      yield* walkStaged(root, relPath);
    } else if (st.isFile()) {
      yield { ...base, type: 'file', size: st.size, body: createReadStream(full, { highWaterMark: 256 * 1024 }) };
    } else if (st.isSymbolicLink()) {
      yield { ...base, type: 'symlink', size: 0, linkTarget: await readlink(full) };
    }
    // Sockets and FIFOs have no place in a backup.
  }
}

/** Total size of the regular files under dir whose base name `skip` does not match (progress estimates). */
export async function treeBytes(dir: string, skip: (name: string) => boolean = () => false): Promise<number> {
  let total = 0;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (skip(name)) continue;
    const full = path.join(dir, name);
    const st = await lstat(full).catch(() => null);
    if (!st) continue;
    if (st.isDirectory()) total += await treeBytes(full, skip);
    else if (st.isFile()) total += st.size;
  }
  return total;
}

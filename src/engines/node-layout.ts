// The on-disk layout of a node dir: which files node-mgr and its jobs put there, which entries are
// someone else's, and how the dir tree is created and handed to the node's OS account.
import { lstat, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { JOURNAL_NAME } from '../backup/restore-journal.ts';
import { assertTraversable } from '../host/run-as.ts';
import type { NodeSpec } from './node-spec.ts';
import { createNewFileIn, openDirBeneath, openSubdir, rootOf } from './node-files.ts';

/** Where spawnServer appends the server's stdout and stderr. */
export function serverLogFile(spec: Pick<NodeSpec, 'logDir'>): string {
  return path.join(spec.logDir, 'server.log');
}

/** node-mgr's own record of the pid it spawned, for programs that write no pidfile of their own. */
export function spawnedPidFile(spec: Pick<NodeSpec, 'runDir'>): string {
  return path.join(spec.runDir, 'spawned.pid');
}

/** Marker present while initDataDir runs: a data dir next to it is a half-done init, safe to redo. */
export function initMarkerFile(spec: Pick<NodeSpec, 'dir'>): string {
  return path.join(spec.dir, '.init-in-progress');
}

/** Written (O_EXCL, never through a link) into a node dir that node-mgr itself created; holds the node id. */
export const OWNED_MARKER_NAME = '.node-mgr-owned';

/** True when node-mgr created the node dir for this very node (its marker names the node). */
export async function isOwnNodeDir(spec: Pick<NodeSpec, 'dir' | 'id'>): Promise<boolean> {
  const st = await lstat(path.join(spec.dir, OWNED_MARKER_NAME)).catch(() => null);
  if (!st?.isFile()) return false;
  const text = await readFile(path.join(spec.dir, OWNED_MARKER_NAME), 'utf8').catch(() => '');
  return text.trim() === spec.id;
}

/** Prefix of the staging dirs a cold backup makes in the node dir (when no stagingDir is configured). */
export const COLD_BACKUP_STAGING_PREFIX = '.coldbackup-staging-';

/**
 * Whether node-mgr, or a job of it, puts an entry of this name in a database node's dir: the data
 * dir (and a restore's `<data>.old-*` / `<data>.restore-*`), log/, run/, tmp/, files/, my.cnf, the
 * init marker, the restore journal and backup staging dirs. Anything else is someone else's.
 */
export function isNodeDirEntry(spec: Pick<NodeSpec, 'dir' | 'dataDir'>, name: string): boolean {
  if (['log', 'run', 'tmp', 'files', 'my.cnf', path.basename(initMarkerFile(spec)), JOURNAL_NAME, OWNED_MARKER_NAME].includes(name)) return true;
  if (name.startsWith(COLD_BACKUP_STAGING_PREFIX)) return true;
  if (path.dirname(spec.dataDir) !== spec.dir) return false;
  const data = path.basename(spec.dataDir);
  return name === data || name.startsWith(`${data}.old-`) || name.startsWith(`${data}.restore-`);
}

/** Entries of the node dir that node-mgr did not put there (none when the dir does not exist). */
export async function foreignNodeDirEntries(spec: Pick<NodeSpec, 'dir' | 'dataDir'>): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(spec.dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names.filter((name) => !isNodeDirEntry(spec, name)).sort();
}

/**
 * Creates the node dir tree and hands it to runAs: the node dir and the leaf dirs (data, log,
 * run…) are owned by runAs, dirs above the node dir that did not exist are made root's (0755),
 * so the account cannot swap the node dir. Every dir is opened without following links and
 * owned/chmodded through its descriptor: a link planted where a leaf goes is refused, never
 * followed (see node-files.ts).
 */
export async function prepareNodeDirs(spec: NodeSpec, leafDirs: string[], leafMode = 0o750): Promise<void> {
  const owner = spec.runAs;
  for (const target of [spec.dir, ...leafDirs]) await assertTraversable(target, spec.runAs);
  const existed = await lstat(spec.dir).then(
    () => true,
    () => false,
  );
  const nodeDir = await openDirBeneath(spec.dir, spec.dir, spec.runAs, { mode: 0o755, owner });
  try {
    // What node-mgr made, DROP may take away whole; a dir that was there before keeps existing.
    if (!existed) await createNewFileIn(nodeDir, OWNED_MARKER_NAME, `${spec.id}\n`, 0o644);
  } finally {
    await nodeDir.handle.close();
  }
  for (const leaf of leafDirs) {
    if (rootOf(spec, leaf) === leaf) {
      // A data dir kept outside the node dir is a tree of its own.
      const dir = await openDirBeneath(leaf, leaf, spec.runAs, { mode: leafMode, owner, chownExisting: true });
      await dir.handle.close();
      continue;
    }
    const parent = await openDirBeneath(rootOf(spec, leaf), path.dirname(leaf), spec.runAs, { mode: 0o755, owner });
    try {
      const dir = await openSubdir(parent, path.basename(leaf), { mode: leafMode, owner, chownExisting: true });
      await dir.handle.close();
    } finally {
      await parent.handle.close();
    }
  }
}

// Unix socket paths are limited to 108 bytes (sun_path) including the terminating NUL.
const MAX_SOCKET_PATH = 107;

/** Throws when the node dir is so deep that the server could not create its unix socket. */
export function assertSocketPathFits(socketPath: string): void {
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new Error(`unix socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes: choose a shorter node dir`);
  }
}

// The restore journal: a small file in the node dir that says which directories a cold restore
// is juggling, so that a node-mgr killed in the middle of one finds, at its next start, a data
// dir that is either the old one or the fully restored one — never a half-unpacked one.
//
// A restore unpacks into `<data>.restore-<t>` (the node still runs on `<data>`), stops the node,
// renames `<data>` → `<data>.old-<t>` and `<data>.restore-<t>` → `<data>`, then starts it. Each
// step is written here first. Recovery decides from what is on disk, with the journal's step to
// break the one ambiguity (both dirs present: a finished swap, or a rollback half done):
// before the swap completed, the old data dir is put back; after it, the restored one stays
// (its server may already be running: servers outlive node-mgr).
import { constants as fsConstants } from 'node:fs';
import { lstat, open, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { BackupPosition } from './manifest.ts';
import { isAlive, listPids, sendSignal, waitForExit, workingDir } from '../host/process-info.ts';

/** The restore journal, kept in the node dir while a cold restore swaps the data dir. */
export const JOURNAL_NAME = '.restore-journal.json';

/** The node a journal belongs to, as the journal needs it. */
export interface JournalNode {
  id: string;
  /** The node dir, where the journal lives. */
  dir: string;
  dataDir: string;
}

export type RestoreStep =
  /** Unpacking into newDir (and, for a restore to a time, fetching archived logs); the data dir is untouched. */
  | 'unpacking'
  /** Replaying archived logs into newDir with a private server (replayPid); the data dir is untouched. */
  | 'replaying'
  /** Taking the node down; the data dir is untouched. */
  | 'stopping'
  /** Renaming dataDir → oldDir, newDir → dataDir. */
  | 'swapping'
  /** The restored data is in place; starting on it (and giving it the backup's log position). */
  | 'swapped'
  /** Started on the restored data, with the backup's log position. */
  | 'positioned'
  /** The restored data failed: renaming dataDir → failedDir, oldDir → dataDir. */
  | 'rolling_back';

export interface RestoreJournal {
  job: string;
  node: string;
  /** The backup being restored (for messages). */
  file: string;
  dataDir: string;
  newDir: string;
  oldDir: string;
  failedDir: string;
  /** Whether the node had a data dir before (a rebuild into a new node has none to put back). */
  hadData: boolean;
  step: RestoreStep;
  /** The backup's log position, once known: set back at the next start if the job could not. */
  position?: BackupPosition;
  /** Scratch directories of a restore to a time (fetched logs): removed whatever the outcome. */
  scratchDirs?: string[];
  /** The private server replaying logs into newDir: stopped before newDir is removed. */
  replayPid?: number;
  at: string;
}

export type RecoveryOutcome = 'old' | 'restored' | 'none';

export function journalPath(spec: Pick<JournalNode, 'dir'>): string {
  return path.join(spec.dir, JOURNAL_NAME);
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
}

/** fsync a directory, so that renames and new entries in it survive a crash of the host. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes a small file so that a crash leaves the old or the new one, whole: temp file, fsync, rename, fsync the dir. */
export async function writeFileDurably(file: string, text: string): Promise<void> {
  const temp = `${file}.tmp`;
  await writeFile(temp, text, { mode: 0o600 });
  const fh = await open(temp, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(temp, file);
  await syncDir(path.dirname(file));
}

/** Writes the journal atomically (see writeFileDurably). */
export async function writeJournal(spec: Pick<JournalNode, 'dir'>, journal: Omit<RestoreJournal, 'at'>): Promise<RestoreJournal> {
  const full: RestoreJournal = { ...journal, at: new Date().toISOString() };
  await writeFileDurably(journalPath(spec), `${JSON.stringify(full, null, 1)}\n`);
  return full;
}

export async function readJournal(spec: Pick<JournalNode, 'dir'>): Promise<RestoreJournal | null> {
  let text: string;
  try {
    text = await readFile(journalPath(spec), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return JSON.parse(text) as RestoreJournal;
}

export async function removeJournal(spec: Pick<JournalNode, 'dir'>): Promise<void> {
  await rm(journalPath(spec), { force: true });
  await rm(`${journalPath(spec)}.tmp`, { force: true });
}

/** Renames and makes the rename durable. */
export async function durableRename(from: string, to: string): Promise<void> {
  await rename(from, to);
  await syncDir(path.dirname(to));
  if (path.dirname(from) !== path.dirname(to)) await syncDir(path.dirname(from));
}

/**
 * Kills the private server a restore to a time was replaying logs with, if it still runs: its data
 * dir (the unpacked backup) is about to be removed. Only a process working in that very dir is
 * touched (a server chdirs into its data dir), so a recycled pid is left alone. The journal's pid
 * is looked at first; a node-mgr killed between starting the server and journaling its pid left
 * none, so then every process is asked whether it works in that dir. Returns the pids killed.
 */
async function stopReplayServer(pid: number | undefined, dir: string): Promise<number[]> {
  const real = await realpath(dir).catch(() => null);
  if (real === null) return [];
  const candidates = pid !== undefined && (await isAlive(pid)) && (await workingDir(pid)) === real ? [pid] : [];
  if (candidates.length === 0) {
    for (const p of await listPids()) if (p !== process.pid && (await workingDir(p)) === real) candidates.push(p);
  }
  for (const p of candidates) sendSignal(p, 'SIGKILL');
  for (const p of candidates) await waitForExit(p, 30_000);
  return candidates;
}

/**
 * Puts the directories of an interrupted restore in order (see the file comment) and removes the
 * journal. The directories no longer needed are removed in the background: they may be large,
 * and nothing will use their names again.
 */
export interface RecoveredRestore {
  outcome: RecoveryOutcome;
  journal: RestoreJournal;
  /** The server found running on the data dir, if any. */
  running: number | null;
}

export async function recoverRestore<N extends JournalNode>(
  spec: N,
  engine: { findRunning(spec: N): Promise<number | null> },
  log: Logger,
): Promise<RecoveredRestore | null> {
  const j = await readJournal(spec);
  if (!j) return null;
  // Only ever act on the directories this journal names, for the node it was written for.
  if (j.dataDir !== spec.dataDir) throw new Error(`${journalPath(spec)} is for data dir ${j.dataDir}, but node ${spec.id} has ${spec.dataDir}; resolve it by hand`);
  if (j.step === 'replaying' || j.replayPid !== undefined) {
    for (const pid of await stopReplayServer(j.replayPid, j.newDir)) {
      log.warn({ node: spec.id, pid }, `stopped the replay server (pid ${pid}) an interrupted restore to a time had left running on ${j.newDir}`);
    }
  }
  const data = await exists(j.dataDir);
  const old = await exists(j.oldDir);
  let outcome: RecoveryOutcome;
  const running = data ? await engine.findRunning(spec) : null;
  if (running !== null) {
    // A server runs on the data dir: whatever it runs on stays (it started after a finished swap).
    outcome = old || j.step === 'swapped' || j.step === 'positioned' ? 'restored' : 'old';
    if (j.step === 'rolling_back' && old) {
      throw new Error(`${spec.id}: a server (pid ${running}) runs on ${j.dataDir} while an interrupted restore was putting ${j.oldDir} back; stop it and start node-mgr again`);
    }
  } else if (!data) {
    if (old) {
      // The swap had begun: the old data dir goes back.
      await durableRename(j.oldDir, j.dataDir);
      outcome = 'old';
    } else {
      outcome = 'none';
    }
  } else if (old) {
    if (j.step === 'rolling_back') {
      await durableRename(j.dataDir, j.failedDir);
      await durableRename(j.oldDir, j.dataDir);
      outcome = 'old';
    } else {
      outcome = 'restored';
    }
  } else if (!j.hadData) {
    // A rebuild: a data dir now means the restored one was moved in.
    if (j.step === 'rolling_back') {
      await durableRename(j.dataDir, j.failedDir);
      outcome = 'none';
    } else {
      outcome = 'restored';
    }
  } else {
    outcome = 'old';
  }
  await removeJournal(spec);
  const leftovers = [j.newDir, j.failedDir, ...(j.scratchDirs ?? []), ...(outcome === 'restored' ? [j.oldDir] : [])];
  void Promise.all(leftovers.map((d) => rm(d, { recursive: true, force: true }))).catch((err: unknown) =>
    log.error({ node: spec.id, err: String(err) }, 'removing the directories of an interrupted restore failed'),
  );
  log.warn(
    { node: spec.id, job: j.job, file: j.file, step: j.step, outcome },
    `an interrupted restore of ${spec.id} was found (${j.step}): the node keeps ${outcome === 'old' ? 'its previous data' : outcome === 'restored' ? `the data restored from ${j.file}` : 'no data (it was being rebuilt)'}`,
  );
  return { outcome, journal: j, running };
}

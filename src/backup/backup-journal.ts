// The backup journal: one small file per running cold backup in node-mgr's state dir, naming what
// the job leaves behind until it commits — its staging dir and its `<name>.tgz._COPYING_` upload
// (with the sidecar written just before the rename). A backup that ends, well or badly, removes
// what it made and then its journal. A journal still there belongs to a backup that node-mgr did
// not see to its end (it was killed, or the store was unreachable for the clean-up): the next
// start, `prune_backups` and the node's next backup remove what it names, whatever its age.
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { sidecarPath } from './catalog.ts';
import { writeFileDurably } from './restore-journal.ts';
import type { BackupStore } from './store.ts';

export interface BackupJournal {
  job: string;
  node: string;
  /** The store the upload goes to (`local` or `webhdfs`), as storeNamed() takes it. */
  store: string;
  /** Its location, for messages. */
  storeLocation: string;
  /** The final name; the upload is `<final>._COPYING_`. */
  final: string;
  copying: string;
  /** The local staging dir of the backup tool's output. */
  staging: string;
  at: string;
}

/** What cleaning up after a backup did: each path removed, and each that could not be. */
export interface BackupCleanUp {
  removed: string[];
  left: { path: string; error: string }[];
  /** The backup had reached its final name before node-mgr lost it: nothing of it was removed. */
  committed: boolean;
}

export function backupJournalDir(stateDir: string): string {
  return path.join(stateDir, 'backup-journal');
}

function journalFile(stateDir: string, job: string): string {
  // Job ids never hold a slash (the runner refuses them); encode anyway, the name is a file name.
  return path.join(backupJournalDir(stateDir), `${encodeURIComponent(job)}.json`);
}

/** Writes the journal before the backup makes anything: temp file, fsync, rename, fsync the dir. */
export async function writeBackupJournal(stateDir: string, journal: Omit<BackupJournal, 'at'>): Promise<void> {
  const file = journalFile(stateDir, journal.job);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileDurably(file, `${JSON.stringify({ ...journal, at: new Date().toISOString() }, null, 1)}\n`);
}

export async function removeBackupJournal(stateDir: string, job: string): Promise<void> {
  await rm(journalFile(stateDir, job), { force: true });
}

/** Every journal in the state dir, oldest first. One that cannot be read is skipped (and named in `unreadable`). */
export async function readBackupJournals(stateDir: string): Promise<{ journals: BackupJournal[]; unreadable: string[] }> {
  const dir = backupJournalDir(stateDir);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { journals: [], unreadable: [] };
    throw err;
  }
  const journals: BackupJournal[] = [];
  const unreadable: string[] = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    try {
      journals.push(JSON.parse(await readFile(path.join(dir, name), 'utf8')) as BackupJournal);
    } catch {
      unreadable.push(path.join(dir, name));
    }
  }
  return { journals: journals.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0)), unreadable };
}

/**
 * Removes what a backup named in `journal` left: its staging dir, and — unless it had committed —
 * its upload and the sidecar written for it. Removes the journal once nothing is left.
 */
export async function cleanUpAfterBackup(stateDir: string, journal: BackupJournal, store: BackupStore): Promise<BackupCleanUp> {
  const out: BackupCleanUp = { removed: [], left: [], committed: false };
  const attempt = async (what: string, fn: () => Promise<boolean>) => {
    try {
      if (await fn()) out.removed.push(what);
    } catch (err) {
      out.left.push({ path: what, error: (err as Error).message ?? String(err) });
    }
  };
  await attempt(journal.staging, async () => {
    const there = await readdir(journal.staging).then(
      () => true,
      () => false,
    );
    await rm(journal.staging, { recursive: true, force: true });
    return there;
  });
  try {
    out.committed = (await store.stat(journal.final)) !== null;
  } catch (err) {
    out.left.push({ path: journal.copying, error: (err as Error).message ?? String(err) });
  }
  if (!out.committed && out.left.length === 0) {
    for (const p of [journal.copying, sidecarPath(journal.final)]) {
      await attempt(`${p} (${journal.store} store)`, async () => {
        if ((await store.stat(p)) === null) return false;
        await store.delete(p);
        return true;
      });
    }
  }
  if (out.left.length === 0) await removeBackupJournal(stateDir, journal.job);
  return out;
}

/** One sentence on a clean-up, for a job's info. */
export function describeCleanUp(c: BackupCleanUp): string {
  const parts: string[] = [];
  if (c.committed) parts.push('the backup had been committed under its final name and stays');
  if (c.removed.length) parts.push(`removed ${c.removed.join(' and ')}`);
  else if (!c.committed && c.left.length === 0) parts.push('it had left nothing behind');
  if (c.left.length) parts.push(`could not remove ${c.left.map((l) => `${l.path} (${l.error})`).join(', ')}: prune_backups or the node's next backup tries again`);
  return parts.join('; ');
}

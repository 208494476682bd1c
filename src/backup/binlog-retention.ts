// Retention of archived binlogs: a file whose last event is older than the oldest backup retention
// keeps can serve no point-in-time restore (every restore starts from a kept backup and replays
// forward from it), so it goes with the backups it was kept for.
//
// Each source's files are retired in sequence order, only a prefix: the retention line is appended
// first (the index stops naming the file), then the file is deleted. A crash between the two leaves
// a file no line names, which the next prune removes.
import { BackupStoreError, type BackupStore } from './store.ts';
import { COPYING_SUFFIX, STALE_UPLOAD_MS } from './layout.ts';
import { archivedBinlogPath, binlogIndexPath, binlogSeq, BINLOG_INDEX_NAME, readBinlogArchive, type RetiredBinlog } from './binlog-archive.ts';

export interface RetiredFile {
  path: string;
  reason: string;
}

async function listOrNone(store: BackupStore, dir: string) {
  try {
    return await store.list(dir);
  } catch (err) {
    if (err instanceof BackupStoreError && err.code === 'not_found') return [];
    throw err;
  }
}

/**
 * Retires, in every source's archive under `<backupDir>/binlogs/`, the archived binlogs whose last
 * event is before `keepFrom` (the oldest kept backup's time), and removes what earlier retirements
 * or abandoned uploads left. Returns what it removed (or, with dryRun, would remove).
 */
export async function retireArchivedBinlogs(
  store: BackupStore,
  backupDir: string,
  keepFrom: Date,
  opts: { dryRun?: boolean; now?: Date } = {},
): Promise<RetiredFile[]> {
  const now = opts.now ?? new Date();
  const out: RetiredFile[] = [];
  for (const source of await listOrNone(store, `${backupDir}/binlogs`)) {
    if (source.type !== 'dir') continue;
    const dir = `${backupDir}/binlogs/${source.name}`;
    const index = await readBinlogArchive(store, dir);
    const doomed = [];
    for (const e of index.entries) {
      if (!(Date.parse(e.last_event_time) < keepFrom.getTime())) break;
      doomed.push(e);
    }
    const named = new Set(index.entries.map((e) => e.file));
    for (const e of doomed) {
      out.push({ path: archivedBinlogPath(dir, e.file), reason: `its last event (${e.last_event_time}) is older than the oldest kept backup (${keepFrom.toISOString()})` });
      if (opts.dryRun) continue;
      const line: RetiredBinlog = { file: e.file, seq: e.seq, retired_at: now.toISOString(), reason: `older than the oldest kept backup (${keepFrom.toISOString()})` };
      await store.appendLine(binlogIndexPath(dir), JSON.stringify(line));
      await store.delete(archivedBinlogPath(dir, e.file));
    }
    // Leftovers: a retired file whose deletion did not happen, an upload abandoned long ago.
    const retiredThrough = Math.max(index.retiredThrough ?? -1, ...doomed.map((e) => e.seq));
    for (const f of await listOrNone(store, dir)) {
      if (f.type !== 'file' || f.name === BINLOG_INDEX_NAME) continue;
      const p = `${dir}/${f.name}`;
      const seq = binlogSeq(f.name);
      let reason: string | null = null;
      if (f.name.endsWith(COPYING_SUFFIX)) {
        if (now.getTime() - f.mtime.getTime() > STALE_UPLOAD_MS) reason = `an upload abandoned ${Math.round((now.getTime() - f.mtime.getTime()) / 3600_000)} h ago`;
      } else if (!named.has(f.name) && seq !== null && seq <= retiredThrough) {
        reason = 'retired from the archive earlier; its deletion did not happen then';
      }
      if (!reason) continue;
      out.push({ path: p, reason });
      if (!opts.dryRun) await store.delete(p);
    }
  }
  return out;
}

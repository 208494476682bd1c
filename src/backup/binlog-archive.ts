// The binlog archive: where a MySQL-protocol node's closed binlog files go in the backup store,
// and the index that says what is there. Point-in-time restore reads it; the archiver writes it.
//
// Layout, beside the node's cold backups (same store, same conventions):
//   <backupDir>/binlogs/<source>/<binlog file name>     the file's bytes, committed through
//                                                        `<name>._COPYING_`, verified, renamed
//   <backupDir>/binlogs/<source>/INDEX.jsonl            one ArchivedBinlog per line, appended
//                                                        after the rename (the commit point)
// `<source>` names the server whose binlogs these are (`<host>_<port>`): a shard's replicas share
// the backup dir, but each writes its own binlog sequence.
import { z } from 'zod';
import { backupDirFor, type BackupOwner } from './layout.ts';
import { BackupStoreError, type BackupStore } from './store.ts';

export const BINLOG_INDEX_NAME = 'INDEX.jsonl';

export const archivedBinlogSchema = z.object({
  /** The binlog file's name on the server, e.g. `binlog.000007`. */
  file: z.string().regex(/^[A-Za-z0-9_.-]+\.\d{6,}$/),
  /** The sequence number in the name (7 for `binlog.000007`): a gap in it is a gap in the archive. */
  seq: z.number().int().nonnegative(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Timestamp of the file's first event (its format description), ISO 8601 UTC. */
  first_event_time: z.string(),
  /** Timestamp of the file's last event, ISO 8601 UTC. */
  last_event_time: z.string(),
  /** `@@gtid_binlog_state`-style list of the GTIDs before the file's first event, when known. */
  gtid_list: z.string().optional(),
  /**
   * The same list at the file's end (gtid_list with the file's own GTIDs), when known. The next file
   * of one history has `gtid_list` equal to it (as sets); a file that does not (a restored server
   * starting a new history under the next number) does not continue this one.
   */
  gtid_end: z.string().optional(),
  /**
   * sha256 of the file's first and last ENDS_BYTES (binlogEnds), when recorded: what a restarted
   * archiver compares, with the size, to tell that the server's file under this name is still the
   * one archived without reading it whole (docs/decisions.md).
   */
  ends_sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  /** When node-mgr committed it, ISO 8601 UTC. */
  archived_at: z.string(),
});

export type ArchivedBinlog = z.infer<typeof archivedBinlogSchema>;

/** How many bytes at each end of a binlog `ends_sha256` covers. */
export const ENDS_BYTES = 64 * 1024;

/**
 * The byte ranges `ends_sha256` covers in a file of `size` bytes: the head, and the tail after it
 * (they never overlap; a file of at most 2 × ENDS_BYTES is covered whole).
 */
export function binlogEnds(size: number): { head: [number, number]; tail: [number, number] } {
  const headEnd = Math.min(size, ENDS_BYTES);
  return { head: [0, headEnd], tail: [Math.max(headEnd, size - ENDS_BYTES), size] };
}

/** Who produced a binlog sequence: the node's backup owner plus the host it runs on. */
export interface BinlogSource extends BackupOwner {
  host: string;
}

function sourceSegment(source: BinlogSource): string {
  const name = `${source.host}_${source.port}`;
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith('.')) {
    throw new BackupStoreError('invalid_path', `host ${JSON.stringify(source.host)} cannot name a directory in the binlog archive`);
  }
  return name;
}

/** The store directory of one server's archived binlogs. */
export function binlogArchiveDir(source: BinlogSource): string {
  return `${backupDirFor(source)}/binlogs/${sourceSegment(source)}`;
}

export const binlogIndexPath = (dir: string) => `${dir}/${BINLOG_INDEX_NAME}`;
export const archivedBinlogPath = (dir: string, file: string) => `${dir}/${file}`;

/**
 * A retention line: the file was removed from the archive (it is older than every kept backup).
 * Appended before the file is deleted, so the index never names a file that is gone; a later
 * archiving line for the same file (it was archived again) wins over it.
 */
export const retiredBinlogSchema = z.object({
  file: archivedBinlogSchema.shape.file,
  seq: z.number().int().nonnegative(),
  retired_at: z.string(),
  reason: z.string(),
});

export type RetiredBinlog = z.infer<typeof retiredBinlogSchema>;

export interface BinlogArchiveIndex {
  /** What the archive holds, ordered by `seq`. */
  entries: ArchivedBinlog[];
  /** The highest `seq` retention removed, or null: files up to it are not archived again. */
  retiredThrough: number | null;
}

/**
 * The archive's index in `dir`. A line that does not parse is skipped (a torn last line after a
 * crash); for a file archived twice the last line wins; a retention line removes the file's entry.
 * No index: nothing archived.
 */
export async function readBinlogArchive(store: BackupStore, dir: string, signal?: AbortSignal): Promise<BinlogArchiveIndex> {
  let text = '';
  try {
    const stream = await store.read(binlogIndexPath(dir), { signal });
    for await (const chunk of stream) text += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
  } catch (err) {
    if (err instanceof BackupStoreError && err.code === 'not_found') return { entries: [], retiredThrough: null };
    throw err;
  }
  const byFile = new Map<string, ArchivedBinlog>();
  let retiredThrough: number | null = null;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      continue;
    }
    const entry = archivedBinlogSchema.safeParse(parsed);
    if (entry.success) {
      byFile.set(entry.data.file, entry.data);
      continue;
    }
    const retired = retiredBinlogSchema.safeParse(parsed);
    if (retired.success) {
      byFile.delete(retired.data.file);
      retiredThrough = Math.max(retiredThrough ?? 0, retired.data.seq);
    }
  }
  return { entries: [...byFile.values()].sort((a, b) => a.seq - b.seq), retiredThrough };
}

/** The archive's entries in `dir`, ordered by `seq` (see readBinlogArchive). No index: none archived. */
export async function readBinlogIndex(store: BackupStore, dir: string, signal?: AbortSignal): Promise<ArchivedBinlog[]> {
  return (await readBinlogArchive(store, dir, signal)).entries;
}

/** `binlog.000007` → 7; null for a name without a numeric extension. */
export function binlogSeq(file: string): number | null {
  const m = /\.(\d+)$/.exec(file);
  return m ? Number(m[1]) : null;
}

/** The first missing sequence number between the entries' first and last, or null when none is missing. */
export function firstGap(entries: readonly ArchivedBinlog[]): { after: ArchivedBinlog; missing: number } | null {
  for (let i = 1; i < entries.length; i++) {
    if (entries[i]!.seq !== entries[i - 1]!.seq + 1) return { after: entries[i - 1]!, missing: entries[i - 1]!.seq + 1 };
  }
  return null;
}

/** What get_node, /v1/nodes/:port, metrics and the inspector show of a node's binlog archive. */
export interface BinlogArchiveView {
  /** Archiving is on for this node (config binlogArchive.enabled, and the node has a place in the store). */
  enabled: boolean;
  /** `archiving`: a pass is running; `ok`: the last pass archived every closed file; `error`: it did not; `waiting`: the node does not serve now; `off`. */
  state: 'off' | 'waiting' | 'archiving' | 'ok' | 'error';
  /** Why it is off or waiting, or what failed. */
  detail: string | null;
  /** `<store>:<dir>` of the node's archive. */
  archive: string | null;
  last_archived: { file: string; archived_at: string; last_event_time: string; size: number } | null;
  /** The binlog the server writes now (as of the last pass). */
  current_file: string | null;
  /** Closed binlogs not archived yet. */
  pending_files: string[];
  /**
   * Their bytes: what the archive still has to copy of closed files (lag_bytes adds the current
   * file's). Goes down while a pass uploads, file by file.
   */
  pending_bytes: number;
  /** Seconds since the oldest transaction the archive does not have was written; 0 when it has them all. */
  lag_seconds: number;
  /** Bytes of binlog the archive does not have (pending files, and the current file's transactions). */
  lag_bytes: number;
  /** Files and bytes archived by this node-mgr since it started. */
  archived_files: number;
  archived_bytes: number;
  last_pass_at: string | null;
}

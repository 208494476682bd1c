// Point-in-time restore, the store side: which backup a restore to time T starts from, and which
// archived binlogs bring it to T. Everything here only reads the store, so every refusal (a time in
// the future, before the first usable backup, past the end of the archive, across a gap in it)
// comes before the node is touched, as one sentence that names the reason.
import { listBackups, backupDirFor, type BackupListing, type BackupOwner } from './catalog.ts';
import { binlogArchiveDir, firstGap, readBinlogIndex, type ArchivedBinlog, type BinlogSource } from './binlog-archive.ts';
import { describePosition, type BackupPosition } from './manifest.ts';
import type { BackupStore } from './store.ts';

/** A restore to a time that cannot be done; the message is the sentence for the operator. */
export class RestoreTimeRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestoreTimeRefused';
  }
}

// `2026-12-04 10:15:00`, `2026-12-04T10:15:00`, optional fraction, optional zone (Z, +01:00, +0100).
const TIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?$/;

export interface ParsedRestoreTime {
  /** The instant, when the text carries a zone. */
  instant: Date | null;
  /** `YYYY-MM-DD HH:MM:SS` to be read in the server's time zone, when it carries none. */
  local: string | null;
}

/** Checks the form of a restore_time; throws RestoreTimeRefused for anything else. */
export function parseRestoreTime(text: string): ParsedRestoreTime {
  const m = TIME.exec(text.trim());
  if (!m) throw new RestoreTimeRefused(`restore_time ${JSON.stringify(text)} is not a time: give ISO 8601 (2026-12-04T10:15:00Z) or YYYY-MM-DD HH:MM:SS in the server's time zone`);
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const local = `${y}-${mo}-${d} ${h}:${mi}:${s}`;
  const probe = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
  if (Number.isNaN(probe.getTime()) || probe.toISOString().slice(0, 19) !== `${y}-${mo}-${d}T${h}:${mi}:${s}`) {
    throw new RestoreTimeRefused(`restore_time ${JSON.stringify(text)} is not a valid date and time`);
  }
  if (!zone) return { instant: null, local };
  const z = zone === 'Z' ? 'Z' : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone;
  return { instant: new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}${frac ?? ''}${z}`), local: null };
}

/** Binlog events carry whole seconds: a restore time is taken to its second. */
export function toWholeSecond(at: Date): Date {
  return new Date(Math.floor(at.getTime() / 1000) * 1000);
}

export interface PointInTimePlan {
  backup: BackupListing;
  /** When the backup was complete (its manifest's time). */
  backupCreated: string;
  start: Extract<BackupPosition, { kind: 'binlog' }>;
  source: BinlogSource;
  archiveDir: string;
  /** The archived binlogs to replay, from the one the backup starts in to the first that reaches the stop time. */
  files: ArchivedBinlog[];
  stopAt: Date;
}

const iso = (d: Date) => d.toISOString().replace('.000Z', 'Z');

/**
 * The backup and binlogs for a restore of `node` to `stopAt`: the newest backup of the node's
 * backup dir that was complete by then and whose last check passed (or `file`, when the caller
 * names one), and its source server's archived binlogs from the backup's position until one that
 * reaches `stopAt`, without a gap.
 */
export async function planPointInTime(
  store: BackupStore,
  node: BackupOwner,
  stopAt: Date,
  opts: { now?: Date; file?: string; signal?: AbortSignal } = {},
): Promise<PointInTimePlan> {
  const now = opts.now ?? new Date();
  if (stopAt.getTime() > now.getTime()) {
    throw new RestoreTimeRefused(`restore_time ${iso(stopAt)} is in the future (it is ${iso(toWholeSecond(now))} now): nothing has been written at that time yet`);
  }
  const dir = backupDirFor(node);
  const listed = await listBackups(store, dir);
  const usable = listed
    .map((b) => ({ b, v: b.verify }))
    .filter(({ v }) => v?.result === 'ok' && v.engine?.kind === 'mysql' && v.position?.kind === 'binlog' && v.created && v.source)
    .sort((x, y) => Date.parse(y.v!.created!) - Date.parse(x.v!.created!));
  let chosen;
  if (opts.file !== undefined) {
    const named = listed.find((b) => b.path === opts.file);
    if (!named) throw new RestoreTimeRefused(`${opts.file} is not a backup in ${dir}`);
    chosen = usable.find((u) => u.b.path === opts.file);
    if (!chosen) throw new RestoreTimeRefused(`${opts.file} cannot start a point-in-time restore: ${named.verify?.result === 'failed' ? `its last check failed (${named.verify.error ?? 'corrupt'})` : 'it has no passed check with a binlog position (run verify_backup)'}`);
    if (Date.parse(chosen.v!.created!) > stopAt.getTime()) {
      throw new RestoreTimeRefused(`${opts.file} was completed at ${chosen.v!.created}, after restore_time ${iso(stopAt)}`);
    }
  } else {
    chosen = usable.find((u) => Date.parse(u.v!.created!) <= stopAt.getTime());
    if (!chosen) {
      if (usable.length === 0) throw new RestoreTimeRefused(`${dir} holds no MariaDB backup with a binlog position whose last check passed: there is nothing to restore from`);
      const oldest = usable[usable.length - 1]!;
      throw new RestoreTimeRefused(`restore_time ${iso(stopAt)} is before the oldest usable backup of ${dir} (${oldest.b.name}, completed at ${oldest.v!.created})`);
    }
  }
  const v = chosen.v!;
  const start = v.position as Extract<BackupPosition, { kind: 'binlog' }>;
  const source: BinlogSource = { ...node, port: v.source!.port, host: v.source!.host };
  const archiveDir = binlogArchiveDir(source);
  const entries = await readBinlogIndex(store, archiveDir, opts.signal);
  const startSeq = Number(/\.(\d+)$/.exec(start.file)?.[1] ?? NaN);
  const from = entries.findIndex((e) => e.seq === startSeq);
  const backupText = `${chosen.b.name} (position ${describePosition(start)})`;
  if (from < 0) {
    if (entries.length === 0) throw new RestoreTimeRefused(`the binlog archive ${archiveDir} is empty: no binlog of ${v.source!.host}:${v.source!.port} has been archived, so nothing after ${backupText} can be replayed`);
    const before = [...entries].reverse().find((e) => e.seq < startSeq);
    const after = entries.find((e) => e.seq > startSeq);
    throw new RestoreTimeRefused(
      `the binlog archive ${archiveDir} has no ${start.file}, which ${backupText} starts from` +
        (before || after ? ` (it holds ${before ? `${before.file} and earlier` : ''}${before && after ? ', ' : ''}${after ? `${after.file} and later` : ''})` : ''),
    );
  }
  let cover = -1;
  for (let i = from; i < entries.length; i++) {
    if (Date.parse(entries[i]!.last_event_time) >= stopAt.getTime()) {
      cover = i;
      break;
    }
  }
  const reach = entries.slice(from, cover >= 0 ? cover + 1 : entries.length);
  const gap = firstGap(reach);
  if (gap) {
    const next = reach.find((e) => e.seq > gap.after.seq)!;
    const missing = gap.after.file.replace(/\d+$/, (d) => String(gap.missing).padStart(d.length, '0'));
    throw new RestoreTimeRefused(
      `the binlog archive ${archiveDir} has a gap: ${missing}${next.seq - gap.missing > 1 ? ` (and ${next.seq - gap.missing - 1} more)` : ''} is missing between ${gap.after.file} (last event ${gap.after.last_event_time}) and ${next.file} (first event ${next.first_event_time}), so the events of that span cannot be replayed to reach ${iso(stopAt)}`,
    );
  }
  if (cover < 0) {
    const last = entries[entries.length - 1]!;
    throw new RestoreTimeRefused(`the binlog archive ${archiveDir} ends at ${last.last_event_time} (${last.file}): restore_time ${iso(stopAt)} is later, and its binlogs are not archived yet`);
  }
  return { backup: chosen.b, backupCreated: v.created!, start, source, archiveDir, files: reach, stopAt };
}

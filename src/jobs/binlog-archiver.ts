// One archiving pass over one MySQL-protocol node: every closed binlog file not yet in the archive
// is copied to the backup store (binlog-archive.ts has the layout), the current file is rotated when
// the configured interval says so, and what is still missing from the archive is measured.
//
// Commit, as for backups: stream to `<file>._COPYING_` (sha256 and the event times computed on the
// way), check the store's size, rename to `<file>`, then append the INDEX line: until that line
// exists the file is not archived, whatever is in the store.
import { constants } from 'node:fs';
import { realpath, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { NodeSpec } from '../engines/node-spec.ts';
import { openPlainFile, UnsafeNodePath, withParentDir } from '../engines/node-files.ts';
import { Digest } from '../backup/archive.ts';
import { BinlogScanner, type BinlogSummary } from '../backup/binlog-file.ts';
import {
  archivedBinlogPath,
  archivedBinlogSchema,
  binlogEnds,
  binlogIndexPath,
  binlogSeq,
  readBinlogArchive,
  type ArchivedBinlog,
} from '../backup/binlog-archive.ts';
import { COPYING_SUFFIX } from '../backup/catalog.ts';
import type { BackupStore } from '../backup/store.ts';
import { closeSession, openSession, rows, type Session } from './node-sql.ts';

/** How far into the current file a pass looks for its first transaction (the bookkeeping events at its start are far smaller). */
const HEAD_BYTES = 64 * 1024;

export class BinlogArchiveError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BinlogArchiveError';
  }
}

export interface ArchivePassOptions {
  store: BackupStore;
  /** The node's archive directory in the store (binlogArchiveDir). */
  dir: string;
  /** Rotate the current file once it is this old and holds a transaction; 0: never. */
  rotateEverySeconds: number;
  /** name:size:sha256 of files already found identical to their archived copy (kept between passes). */
  confirmed: Set<string>;
  signal?: AbortSignal;
  log?: Logger;
  /** Each file committed to the archive, as it is. */
  onArchived?: (entry: ArchivedBinlog) => void;
  /** The closed files about to be uploaded (not in the archive), with their sizes: what the pass has to copy. */
  onPending?: (files: { name: string; size: number }[]) => void;
  now?: () => number;
}

export interface ArchivePassResult {
  /** Files committed by this pass. */
  archived: ArchivedBinlog[];
  /** The newest file in the archive (by sequence), after the pass. */
  lastArchived: ArchivedBinlog | null;
  /** The file the server writes now. */
  current: string;
  /** Closed files still not in the archive (a failure stopped the pass before them). */
  pending: string[];
  /** Their bytes. */
  pendingBytes: number;
  /** Bytes of binlog the archive does not have: pending files, and the current file's transactions. */
  lagBytes: number;
  /** When the oldest transaction the archive does not have was written (ms); null when it has everything. */
  behindSinceMs: number | null;
  /** The current file was rotated by this pass (FLUSH BINARY LOGS). */
  rotated: boolean;
  /** What stopped the pass before every closed file was archived; null when nothing did. */
  error: string | null;
}

interface ServerBinlog {
  name: string;
  seq: number;
  size: number;
}

interface ServerState {
  dir: string;
  files: ServerBinlog[];
  current: string;
  position: number;
}

/** The archive key of a file whose bytes were found identical to its archived copy. */
const confirmedKey = (e: { file: string; size: number; sha256: string }) => `${e.file}:${e.size}:${e.sha256}`;

/**
 * Opens a binlog below the node's directories as a plain file of its own: the servers' account owns
 * the data dir and could put a link to a root-only file there, which node-mgr must never read (and
 * copy to the store). The file is read through the descriptor, never reopened by name.
 */
export async function withBinlogFile<T>(spec: NodeSpec, file: string, fn: (fh: FileHandle, size: number) => Promise<T>): Promise<T> {
  return withParentDir(spec, file, async (dir, name) => {
    const fh = await openPlainFile(dir, name, constants.O_RDONLY);
    if (!fh) {
      throw new UnsafeNodePath(`${file} is missing or is not a plain file of its own (a symbolic link, a hard link, a fifo): node-mgr does not read it`);
    }
    try {
      return await fn(fh, (await fh.stat()).size);
    } finally {
      await fh.close();
    }
  });
}

/** The first `limit` bytes of a binlog (a file still written: only whole events count). */
async function scanHead(spec: NodeSpec, file: string, limit: number): Promise<BinlogSummary> {
  return withBinlogFile(spec, file, async (fh, size) => {
    const buf = Buffer.alloc(Math.min(size, limit));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const scanner = new BinlogScanner(file);
    scanner.push(buf.subarray(0, bytesRead));
    return scanner.finish({ partialOk: true });
  });
}

/** sha256 of the parts of `chunk` (at `pos` in the file) that fall in the file's ends, fed in file order. */
function feedEnds(digest: Digest, ends: ReturnType<typeof binlogEnds>, chunk: Buffer, pos: number): void {
  for (const [from, to] of [ends.head, ends.tail]) {
    const a = Math.max(from, pos);
    const b = Math.min(to, pos + chunk.length);
    if (a < b) digest.update(chunk.subarray(a - pos, b - pos));
  }
}

/** sha256 of a binlog's ends (binlogEnds) and its size, read safely: two reads, whatever the file's size. */
async function endsDigestOf(spec: NodeSpec, file: string): Promise<{ ends: string; size: number }> {
  return withBinlogFile(spec, file, async (fh, size) => {
    const ends = binlogEnds(size);
    const digest = new Digest();
    for (const [from, to] of [ends.head, ends.tail]) {
      if (from >= to) continue;
      const buf = Buffer.alloc(to - from);
      const { bytesRead } = await fh.read(buf, 0, buf.length, from);
      digest.update(buf.subarray(0, bytesRead));
    }
    return { ends: digest.hex(), size };
  });
}

/** sha256 of a whole binlog, read safely. */
async function digestOf(spec: NodeSpec, file: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  return withBinlogFile(spec, file, async (fh, size) => {
    const digest = new Digest();
    if (size > 0) for await (const chunk of fh.createReadStream({ start: 0, end: size - 1, autoClose: false, signal })) digest.update(chunk as Buffer);
    return { sha256: digest.hex(), size: digest.bytes };
  });
}

/**
 * The server says where its binlogs are; node-mgr reads only below the node's own directories, and
 * names them by the node's configured paths (the server may report a real path), so that the
 * safe file helpers walk the node's tree from its root.
 */
async function withinNodeDirs(spec: NodeSpec, dir: string): Promise<string> {
  const inside = (root: string) => dir === root || dir.startsWith(`${root}${path.sep}`);
  for (const root of [spec.dataDir, spec.dir]) {
    if (inside(root)) return dir;
    const real = await realpath(root).catch(() => root);
    if (inside(real)) return path.join(root, path.relative(real, dir));
  }
  throw new BinlogArchiveError(`the binlogs of ${spec.id} are in ${dir}, outside its directories ${spec.dir} and ${spec.dataDir}: node-mgr does not archive them`);
}

async function readServerState(conn: Session, spec: NodeSpec): Promise<ServerState> {
  const [vars] = await rows<{ on: number | string; base: string | null }>(conn, 'SELECT @@log_bin AS `on`, @@log_bin_basename AS base');
  if (!vars || !Number(vars.on) || !vars.base) throw new BinlogArchiveError(`binary logging is off on ${spec.id}: there are no binlogs to archive`);
  const dir = await withinNodeDirs(spec, path.dirname(vars.base));
  const list = await rows<{ Log_name: string; File_size: number | string }>(conn, 'SHOW BINARY LOGS');
  const [master] = await rows<{ File: string; Position: number | string }>(conn, 'SHOW MASTER STATUS');
  if (!master) throw new BinlogArchiveError(`${spec.id} shows no current binlog (SHOW MASTER STATUS is empty)`);
  const files: ServerBinlog[] = [];
  for (const r of list) {
    const seq = binlogSeq(r.Log_name);
    if (!archivedBinlogSchema.shape.file.safeParse(r.Log_name).success || seq === null) {
      throw new BinlogArchiveError(`${spec.id} lists a binlog named ${JSON.stringify(r.Log_name)}, which is not <base>.NNNNNN`);
    }
    files.push({ name: r.Log_name, seq, size: Number(r.File_size) });
  }
  return { dir, files: files.sort((a, b) => a.seq - b.seq), current: master.File, position: Number(master.Position) };
}

/**
 * Copies one closed binlog to the archive and commits it. A file already under the final name
 * without an INDEX line was left by a node-mgr killed between the rename and the line: it is not
 * archived, so it is replaced.
 */
async function archiveOne(spec: NodeSpec, file: string, opts: ArchivePassOptions): Promise<ArchivedBinlog> {
  const { store, dir, signal } = opts;
  const name = path.basename(file);
  const final = archivedBinlogPath(dir, name);
  const copying = `${final}${COPYING_SUFFIX}`;
  return withBinlogFile(spec, file, async (fh, size) => {
    if (size < 4) throw new BinlogArchiveError(`${file} has ${size} bytes: not a binlog`);
    const digest = new Digest();
    const endsDigest = new Digest();
    const ends = binlogEnds(size);
    const scanner = new BinlogScanner(file);
    async function* bytes() {
      let pos = 0;
      for await (const chunk of fh.createReadStream({ start: 0, end: size - 1, autoClose: false, highWaterMark: 256 * 1024 })) {
        scanner.push(chunk as Buffer);
        digest.update(chunk as Buffer);
        feedEnds(endsDigest, ends, chunk as Buffer, pos);
        pos += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
    }
    // A `._COPYING_` left by a killed node-mgr is replaced by this write (the store replaces a file).
    const { bytes: written } = await store.write(copying, bytes(), { signal });
    const summary = scanner.finish();
    if (written !== size || digest.bytes !== size) throw new BinlogArchiveError(`uploading ${file}: ${digest.bytes} bytes read and ${written} written of its ${size}`);
    const st = await store.stat(copying);
    if (st?.size !== size) throw new BinlogArchiveError(`uploading ${file}: the store holds ${st?.size ?? 'no'} bytes of the ${size} uploaded to ${copying}`);
    if (await store.stat(final)) await store.delete(final);
    await store.rename(copying, final);
    const entry: ArchivedBinlog = {
      file: name,
      seq: binlogSeq(name)!,
      size,
      sha256: digest.hex(),
      first_event_time: new Date(summary.firstEventTime! * 1000).toISOString(),
      last_event_time: new Date(summary.lastEventTime! * 1000).toISOString(),
      ...(summary.gtidList !== null ? { gtid_list: summary.gtidList } : {}),
      ...(summary.gtidEnd !== null ? { gtid_end: summary.gtidEnd } : {}),
      ends_sha256: endsDigest.hex(),
      archived_at: new Date((opts.now ?? Date.now)()).toISOString(),
    };
    // The commit point.
    await store.appendLine(binlogIndexPath(dir), JSON.stringify(entry));
    return entry;
  });
}

/**
 * One pass: archive every closed binlog missing from the archive (oldest first; the first failure
 * stops the pass, so the archive never has a gap that a later file hides), rotate the current file
 * when it is due, and measure what the archive still lacks. Throws only when the node cannot be
 * asked (no SQL login, binary logging off) or its archive cannot be read.
 */
export async function archiveBinlogs(spec: NodeSpec, opts: ArchivePassOptions): Promise<ArchivePassResult> {
  const now = opts.now ?? Date.now;
  const conn = await openSession(spec, { user: spec.user, password: spec.password }, 'archiving its binlogs');
  try {
    const archived: ArchivedBinlog[] = [];
    let error: string | null = null;
    let rotated = false;
    let server = await readServerState(conn, spec);
    let index = await readBinlogArchive(opts.store, opts.dir, opts.signal);

    const copyClosed = async (): Promise<string[]> => {
      const have = new Map(index.entries.map((e) => [e.file, e]));
      const pending: string[] = [];
      opts.onPending?.(
        server.files
          .filter((f) => f.name !== server.current && !have.has(f.name) && !(index.retiredThrough !== null && f.seq <= index.retiredThrough))
          .map((f) => ({ name: f.name, size: f.size })),
      );
      for (const f of server.files) {
        if (f.name === server.current) continue;
        if (index.retiredThrough !== null && f.seq <= index.retiredThrough) continue;
        if (error !== null) {
          pending.push(f.name);
          continue;
        }
        const file = path.join(server.dir, f.name);
        try {
          const entry = have.get(f.name);
          if (entry) {
            if (opts.confirmed.has(confirmedKey(entry))) continue;
            // Archived before (by an earlier node-mgr, or in a pass that did not record it): the
            // same bytes are not uploaded again; other bytes under the same name are a conflict.
            // A closed binlog is only ever appended to and then closed, so the same size and the
            // same bytes at both ends (the head names the server, its start time and its GTID
            // list) are the same file: a restart reads 128 KiB of it, not all of it. An entry
            // without ends_sha256 (an older node-mgr's) is checked whole.
            if (entry.ends_sha256 !== undefined) {
              const local = await endsDigestOf(spec, file);
              if (local.size === entry.size && local.ends === entry.ends_sha256) {
                opts.confirmed.add(confirmedKey(entry));
                continue;
              }
              throw new BinlogArchiveError(
                `${f.name} of ${spec.id} (${local.size} bytes) differs from the file archived under that name in ${opts.dir} ` +
                  `(${entry.size} bytes${local.size === entry.size ? '; the bytes at its start or end differ' : ''}): another server wrote binlogs on this port before; move ${opts.dir} aside to archive this one`,
              );
            }
            const local = await digestOf(spec, file, opts.signal);
            if (local.sha256 === entry.sha256 && local.size === entry.size) {
              opts.confirmed.add(confirmedKey(entry));
              continue;
            }
            throw new BinlogArchiveError(
              `${f.name} of ${spec.id} (${local.size} bytes, sha256 ${local.sha256}) differs from the file archived under that name in ${opts.dir} ` +
                `(${entry.size} bytes, sha256 ${entry.sha256}): another server wrote binlogs on this port before; move ${opts.dir} aside to archive this one`,
            );
          }
          const done = await archiveOne(spec, file, opts);
          opts.confirmed.add(confirmedKey(done));
          archived.push(done);
          index = { ...index, entries: [...index.entries, done] };
          opts.onArchived?.(done);
          opts.log?.info({ node: spec.id, file: done.file, bytes: done.size, store: opts.store.name }, 'archived a binlog');
        } catch (err) {
          if (opts.signal?.aborted) throw err;
          error = `archiving ${f.name} of ${spec.id} to ${opts.dir} (${opts.store.name} store ${opts.store.location}) failed: ${(err as Error).message}`;
          pending.push(f.name);
        }
      }
      return pending;
    };

    let pending = await copyClosed();
    let head = await scanHead(spec, path.join(server.dir, server.current), Math.min(server.position, HEAD_BYTES));
    const hasTransactions = head.contentEvents > 0 || server.position > HEAD_BYTES;
    const openedAt = head.firstEventTime === null ? null : head.firstEventTime * 1000;
    if (opts.rotateEverySeconds > 0 && hasTransactions && openedAt !== null && now() - openedAt >= opts.rotateEverySeconds * 1000 && error === null) {
      await conn.query('FLUSH BINARY LOGS');
      rotated = true;
      opts.log?.info({ node: spec.id, file: server.current }, `rotated the binlog (its first event is more than ${opts.rotateEverySeconds} s old)`);
      server = await readServerState(conn, spec);
      pending = await copyClosed();
      head = await scanHead(spec, path.join(server.dir, server.current), Math.min(server.position, HEAD_BYTES));
    }

    // What the archive lacks: the pending files whole, and the current file from its first transaction.
    const sizes = new Map(server.files.map((f) => [f.name, f.size]));
    const pendingBytes = pending.reduce((sum, f) => sum + (sizes.get(f) ?? 0), 0);
    let lagBytes = pendingBytes;
    const since: number[] = [];
    if (pending.length > 0) {
      const oldest = await scanHead(spec, path.join(server.dir, pending[0]!), HEAD_BYTES).catch(() => null);
      const t = oldest?.firstContentTime ?? oldest?.firstEventTime ?? null;
      if (t !== null) since.push(t * 1000);
    }
    if (head.contentEvents > 0 || server.position > HEAD_BYTES) {
      lagBytes += Math.max(0, server.position - bookkeepingEnd(head));
      const t = head.firstContentTime ?? head.firstEventTime;
      if (t !== null) since.push(t * 1000);
    }
    const lastArchived = index.entries.at(-1) ?? null;
    return { archived, lastArchived, current: server.current, pending, pendingBytes, lagBytes, behindSinceMs: since.length ? Math.min(...since) : null, rotated, error };
  } finally {
    await closeSession(conn);
  }
}

/** Where the bookkeeping events at the start of a file end: its first transaction, or all it has. */
function bookkeepingEnd(head: BinlogSummary): number {
  return head.firstContentOffset ?? head.end;
}

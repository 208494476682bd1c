// The byte stream of a table transfer: a header frame, the .cfg and .ibd bytes, a trailer frame.
// The source writes it while its table is locked; the destination reads it, into staging files.
// The same stream goes to a local destination in-process and to another host's node-mgr as the
// body of `POST /v1/recv/table`, so both paths run the same code.
//
//   [u32 BE length][header JSON][cfg bytes][ibd bytes][u32 BE length][trailer JSON]
//
// The header says the file sizes (known once FLUSH TABLES … FOR EXPORT has written the .cfg); the
// trailer carries what is known only at the end: the files' sha256 and the source's row count and
// CHECKSUM TABLE, taken while the lock was held.
import { open } from 'node:fs/promises';
import { FollowingDigest, sha256Files } from './file-digest.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KindedError } from '../error-kind.ts';

export const TABLE_STREAM_CONTENT_TYPE = 'application/vnd.node-mgr.table-stream';

export type TableFileKind = 'cfg' | 'ibd';
/** The .cfg first: it is small, and a destination that refuses it learns so before the big file. */
export const FILE_ORDER: readonly TableFileKind[] = ['cfg', 'ibd'];

/** What the destination must know about the source table to create or check its own. */
export interface SourceTable {
  /** SHOW CREATE TABLE of the source, under the source's name. */
  createStatement: string;
  /** SELECT VERSION() of the source server. */
  version: string;
  pageSize: number;
}

/** Where a stream sent to another node-mgr goes; absent for a local destination. */
export interface RemoteDestination {
  port: number;
  /** The MySQL database name (Kunlun names already mapped). */
  database: string;
  table: string;
  user: string;
  password: string;
}

export interface StreamHeader {
  v: 1;
  jobId: string;
  /** The source node, for messages and the destination's log. */
  source: string;
  table: SourceTable;
  files: Array<{ kind: TableFileKind; size: number }>;
  destination?: RemoteDestination;
}

export interface SourceSummary {
  rows: string;
  checksum: string;
}

export interface StreamTrailer extends SourceSummary {
  sha256: Record<TableFileKind, string>;
}

const MAX_FRAME = 4 * 1024 * 1024;
const WRITE_BATCH = 1024 * 1024;
/** Read size of the source files (4 MiB measured no faster over HTTP on loopback). */
const READ_CHUNK = 1024 * 1024;

/** A broken table stream: the sender's fault. */
export class TableStreamError extends Error implements KindedError {
  readonly kind = 'invalid';
  constructor(message: string) {
    super(message);
    this.name = 'TableStreamError';
  }
}

function frame(value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  return Buffer.concat([len, json]);
}

/**
 * An optional ceiling on the bytes per second a transfer reads: sends then leave disk and network
 * to the databases. Set with NODE_MGR_TABLE_SEND_MAX_BYTES_PER_S (0 or unset: no ceiling); the
 * tests use it to have a send still copying when they kill node-mgr.
 */
export function sendRateLimit(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.NODE_MGR_TABLE_SEND_MAX_BYTES_PER_S;
  const n = raw === undefined ? 0 : Number(raw);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/**
 * The read buffers of one send, handed back by the consumer once a chunk is written (a socket
 * write's callback): the source's reads then allocate nothing. Without it every 1 MiB read was a
 * new external buffer, and the garbage collector took a third of the sending thread's time.
 */
export class ChunkPool {
  private readonly free: Buffer[] = [];
  private readonly owners = new Set<ArrayBufferLike>();
  private readonly waiting: Array<{ resolve: (b: Buffer) => void; reject: (e: Error) => void }> = [];
  private closed: Error | null = null;

  constructor(count: number, readonly size: number) {
    for (let i = 0; i < count; i++) {
      const buf = Buffer.allocUnsafeSlow(size);
      this.owners.add(buf.buffer);
      this.free.push(buf);
    }
  }

  /** A free buffer; waits for one to be given back. */
  take(): Promise<Buffer> {
    if (this.closed) return Promise.reject(this.closed);
    const buf = this.free.pop();
    if (buf) return Promise.resolve(buf);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** The consumer is done with `chunk` (a view of one of the pool's buffers; anything else is ignored). */
  give(chunk: Buffer): void {
    if (!this.owners.has(chunk.buffer)) return;
    const buf = Buffer.from(chunk.buffer, 0, this.size);
    const next = this.waiting.shift();
    if (next) next.resolve(buf);
    else this.free.push(buf);
  }

  /** No more buffers: a read waiting for one fails with `reason`. */
  close(reason: Error): void {
    this.closed ??= reason;
    for (const w of this.waiting.splice(0)) w.reject(this.closed);
  }
}

export interface SendOptions {
  signal?: AbortSignal;
  /** Called with the bytes read so far. */
  onBytes?: (done: number) => void;
  maxBytesPerSec?: number;
  /** Read into these buffers; the consumer gives each chunk back once done with it. Without: a new buffer per read. */
  pool?: ChunkPool;
  /** Called once the files' sha256 is known. */
  onHashed?: () => void;
  /** Called with the trailer just before it is sent: the source keeps the files' sha256. */
  onTrailer?: (trailer: StreamTrailer) => void;
}

/**
 * The stream of one export: the header, each file read from disk, and the trailer once `summary`
 * (the locked source's count and checksum) is known. The files' sha256 is taken by a worker thread
 * reading the same files meanwhile (they cannot change under FLUSH TABLES … FOR EXPORT), so the
 * event loop only moves bytes.
 */
export async function* tableStream(
  header: StreamHeader,
  paths: Record<TableFileKind, string>,
  summary: Promise<SourceSummary>,
  opts: SendOptions = {},
): AsyncGenerator<Buffer> {
  yield frame(header);
  const hashing = sha256Files(header.files.map((f) => paths[f.kind]), opts.signal);
  hashing.catch(() => undefined);
  const started = Date.now();
  let done = 0;
  for (const { kind, size } of header.files) {
    let read = 0;
    const file = await open(paths[kind], 'r');
    try {
      while (read < size) {
        opts.signal?.throwIfAborted();
        const buf = opts.pool ? await opts.pool.take() : Buffer.allocUnsafe(READ_CHUNK);
        const { bytesRead } = await file.read(buf, 0, Math.min(buf.length, size - read), read);
        if (bytesRead === 0) {
          opts.pool?.give(buf);
          break;
        }
        read += bytesRead;
        done += bytesRead;
        opts.onBytes?.(done);
        yield buf.subarray(0, bytesRead);
        if (opts.maxBytesPerSec) {
          const due = started + (done / opts.maxBytesPerSec) * 1000;
          if (due > Date.now()) await sleep(due - Date.now(), undefined, { signal: opts.signal });
        }
      }
    } finally {
      await file.close();
    }
    // The files cannot change under FLUSH TABLES … FOR EXPORT; a short read means something else is wrong.
    if (read !== size) throw new TableStreamError(`${paths[kind]} gave ${read} bytes, ${size} were expected`);
  }
  const digests = await hashing;
  opts.onHashed?.();
  const sha256 = Object.fromEntries(header.files.map((f, i) => [f.kind, digests[i]!])) as Record<TableFileKind, string>;
  const s = await summary;
  const trailer: StreamTrailer = { sha256, rows: s.rows, checksum: s.checksum };
  opts.onTrailer?.(trailer);
  yield frame(trailer);
}

/** Reads exact byte counts out of a chunked input. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Buffer | string>;

  constructor(input: AsyncIterable<Buffer | string>) {
    this.it = input[Symbol.asyncIterator]();
  }

  private async more(): Promise<boolean> {
    const next = await this.it.next();
    if (next.done) return false;
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }

  async exact(n: number, what: string): Promise<Buffer> {
    while (this.buf.length < n) {
      if (!(await this.more())) throw new TableStreamError(`the stream ended inside the ${what}`);
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async frame<T>(what: string): Promise<T> {
    const len = (await this.exact(4, what)).readUInt32BE(0);
    if (len > MAX_FRAME) throw new TableStreamError(`the ${what} claims ${len} bytes, more than ${MAX_FRAME}`);
    try {
      return JSON.parse((await this.exact(len, what)).toString('utf8')) as T;
    } catch (err) {
      if (err instanceof TableStreamError) throw err;
      throw new TableStreamError(`the ${what} is not valid JSON`);
    }
  }

  /** Hands `n` bytes to `sink` chunk by chunk, without holding more than one chunk. */
  async pass(n: number, what: string, sink: (chunk: Buffer) => Promise<void>): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.more())) throw new TableStreamError(`the stream ended inside the ${what} (${n - left} of ${n} bytes)`);
      const take = this.buf.subarray(0, Math.min(left, this.buf.length));
      this.buf = this.buf.subarray(take.length);
      left -= take.length;
      await sink(take);
    }
  }

  async atEnd(): Promise<boolean> {
    while (this.buf.length === 0) if (!(await this.more())) return true;
    return false;
  }
}

export interface ReceiveOptions {
  /** Hash what is written and compare with the trailer (a stream that crossed a network). */
  verifyHashes: boolean;
  onBytes?: (done: number) => void;
}

/**
 * Reads a whole stream: `place(header)` checks the header and says where each file goes (it may
 * throw to refuse the transfer before any byte is written); the files are written there (mode 0600,
 * until the importer hands them to the server's user) and the trailer is returned.
 */
export async function receiveTableStream(
  input: AsyncIterable<Buffer | string>,
  place: (header: StreamHeader) => Promise<Record<TableFileKind, string>>,
  opts: ReceiveOptions,
): Promise<{ header: StreamHeader; trailer: StreamTrailer; bytes: number }> {
  const reader = new FrameReader(input);
  const header = await reader.frame<StreamHeader>('header');
  if (header?.v !== 1 || !Array.isArray(header.files) || header.files.map((f) => f.kind).join() !== FILE_ORDER.join()) {
    throw new TableStreamError('the header is not a table-stream v1 header with a .cfg and an .ibd file');
  }
  for (const f of header.files) if (!Number.isSafeInteger(f.size) || f.size < 0) throw new TableStreamError(`the header gives a bad size for the .${f.kind} file`);
  const targets = await place(header);
  // A stream that crossed a network is hashed as it is written, by a worker reading the files back.
  const digest = opts.verifyHashes ? new FollowingDigest() : null;
  const got: Partial<Record<TableFileKind, Promise<string>>> = {};
  let bytes = 0;
  try {
    for (const { kind, size } of header.files) {
      const file = await open(targets[kind], 'wx', 0o600);
      digest?.open(targets[kind]);
      let inFile = 0;
      // A socket delivers 16–64 KiB at a time: write in batches of about 1 MiB (one writev each).
      let batch: Buffer[] = [];
      let batched = 0;
      const flush = async () => {
        if (batched === 0) return;
        await file.writev(batch);
        bytes += batched;
        inFile += batched;
        digest?.written(inFile);
        opts.onBytes?.(bytes);
        batch = [];
        batched = 0;
      };
      try {
        await reader.pass(size, `.${kind} file`, async (chunk) => {
          batch.push(chunk);
          batched += chunk.length;
          if (batched >= WRITE_BATCH) await flush();
        });
        await flush();
        // No fsync: IMPORT TABLESPACE rewrites and flushes every page itself, and a crash before it
        // discards the staged files anyway.
      } finally {
        await file.close();
      }
      if (digest) {
        got[kind] = digest.close();
        got[kind].catch(() => undefined);
      }
    }
    const trailer = await reader.frame<StreamTrailer>('trailer');
    if (!(await reader.atEnd())) throw new TableStreamError('the stream goes on after its trailer');
    if (typeof trailer?.rows !== 'string' || typeof trailer.checksum !== 'string') throw new TableStreamError('the trailer lacks the source row count or checksum');
    for (const kind of FILE_ORDER) {
      const written = await got[kind];
      if (written !== undefined && written !== trailer.sha256?.[kind]) throw new TableStreamError(`the .${kind} file arrived damaged: sha256 ${written}, the source read ${trailer.sha256?.[kind]}`);
    }
    return { header, trailer, bytes };
  } finally {
    await digest?.stop();
  }
}

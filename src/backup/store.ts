// Where cold backups live: one interface over a local directory and HDFS (WebHDFS), so backup
// and restore jobs never know which one they write to (PROTOCOL.md §4: same layout on both).
import type { Readable } from 'node:stream';

/** Bytes to store: a Node stream, or any (async) iterable of chunks, e.g. an async generator. */
export type ByteSource = Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/**
 * Wraps a source so a store knows how many bytes went through and whether reading the source
 * (rather than writing to the store) is what failed: the two need different error messages.
 */
export class CountedSource {
  bytes = 0;
  /** Set when the source itself threw. */
  error: unknown = undefined;

  constructor(private readonly source: ByteSource) {}

  /** A generator function for stream.pipeline. */
  readonly stream = async function* (this: CountedSource) {
    try {
      for await (const chunk of this.source as AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
        this.bytes += chunk.byteLength;
        yield chunk;
      }
    } catch (err) {
      this.error = err;
      throw err;
    }
  }.bind(this);
}

export interface StoreEntry {
  name: string;
  size: number;
  mtime: Date;
  type: 'file' | 'dir';
}

export interface StoreStat {
  size: number;
  mtime: Date;
  type: 'file' | 'dir';
}

/**
 * A backup store. Paths are absolute POSIX paths in the store's own namespace
 * (`/coldbackup/clust1/shard1/coldback_20211122_234303.tgz`); see `checkStorePath`.
 */
export interface BackupStore {
  readonly name: 'local' | 'webhdfs';
  /** Where the store is, for messages and logs: a directory or a WebHDFS URL. */
  readonly location: string;

  /** Entries directly under `dir`, sorted by name. A missing `dir` is a `not_found` error. */
  list(dir: string): Promise<StoreEntry[]>;
  /** `null` when nothing is at `path`. */
  stat(path: string): Promise<StoreStat | null>;
  /**
   * Streams `source` into the file `path`, creating missing parent directories and replacing a
   * file already there. Resolves once the store has the bytes durably. On any failure (source
   * error, abort, store or network error) it rejects, and no partial file is left at `path`
   * nor under any other name (on HDFS a file that was at `path` before may be gone: CREATE
   * replaces it as the upload starts). The commit protocol (write `x._COPYING_`, verify, rename
   * to `x`) is the caller's.
   */
  write(path: string, source: ByteSource, opts?: { signal?: AbortSignal }): Promise<{ bytes: number }>;
  /**
   * The file's bytes from `offset` (default 0; at most the file's size) to its end. A transfer
   * that breaks errors the stream with a BackupStoreError; aborting destroys it (AbortError).
   */
  read(path: string, opts?: { offset?: number; signal?: AbortSignal }): Promise<Readable>;
  /** Renames a file or directory. `to` must not exist; its parent is created if missing. */
  rename(from: string, to: string): Promise<void>;
  /** Appends `line` and a newline to `path`, creating the file if missing. */
  appendLine(path: string, line: string): Promise<void>;
  /** Deletes a file or a directory tree. Nothing at `path` is not an error. */
  delete(path: string): Promise<void>;
  /** Creates `path` and missing parents, like `mkdir -p`. */
  mkdirs(path: string): Promise<void>;
}

export type BackupStoreErrorCode =
  | 'invalid_path'
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'not_a_directory'
  | 'not_a_file'
  | 'aborted'
  /** The store holds the file but its bytes are damaged (HDFS: every replica of a block failed its checksum). */
  | 'damaged'
  /** The store refused or failed the operation: network, DataNode, disk, permission… */
  | 'failed';

export class BackupStoreError extends Error {
  constructor(
    readonly code: BackupStoreErrorCode,
    message: string,
    readonly path?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'BackupStoreError';
  }
}

/**
 * Validates a store path and returns it normalised (repeated and trailing slashes removed).
 * Rejects what could name something outside the store or corrupt a record line: relative
 * paths, `.` and `..` segments, NUL and other control characters.
 */
export function checkStorePath(p: unknown): string {
  const reject = (why: string): never => {
    throw new BackupStoreError('invalid_path', `invalid backup store path ${JSON.stringify(p)}: ${why}`, String(p));
  };
  if (typeof p !== 'string') return reject('not a string');
  if (!p.startsWith('/')) return reject('must be absolute (start with "/")');
  if (p.includes('\0')) return reject('contains a NUL byte');
  // eslint-disable-next-line no-control-regex
  if (/[\x01-\x1f\x7f]/.test(p)) return reject('contains a control character');
  const segments = p.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '..' || s === '.')) return reject('contains a "." or ".." segment');
  return '/' + segments.join('/');
}

/** Validates a record line for `appendLine`: one line, no control characters. */
export function checkRecordLine(line: unknown, path: string): string {
  // eslint-disable-next-line no-control-regex
  if (typeof line !== 'string' || /[\x00-\x08\x0a-\x1f\x7f]/.test(line)) {
    throw new BackupStoreError('invalid_argument', `appendLine ${path}: the line must be one line of text without control characters`, path);
  }
  return line;
}

export function checkOffset(offset: unknown, path: string): number {
  if (offset === undefined) return 0;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw new BackupStoreError('invalid_argument', `read ${path}: offset must be a non-negative integer, got ${String(offset)}`, path);
  }
  return offset;
}

/** The error an aborted store operation rejects with; the signal's reason is its cause. */
export function abortedError(op: string, path: string, signal: AbortSignal): BackupStoreError {
  return new BackupStoreError('aborted', `${op} ${path}: aborted`, path, { cause: signal.reason });
}

// Backup archives as streams: POSIX tar (ustar + pax) written and read chunk by chunk, gzip'd,
// with sha256 computed on the way (per file and of the compressed bytes). Nothing is staged: a
// multi-GB archive goes from its source to the store, or from the store to a directory, through
// a few hundred KB of buffers. Our own small tar code rather than a dependency: the format subset
// we need (regular files, directories, long names and sizes through pax) is a page of code, and
// the reader also parses pg_basebackup's tar output.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';

const BLOCK = 512;
const ZERO_BLOCK = Buffer.alloc(BLOCK);
/** Largest value of an 11-digit octal field (sizes beyond go into a pax header). */
const MAX_OCTAL_11 = 0o77777777777;

/**
 * gzip level 1: on database files it gives within a few per cent of level 6's size at about 1.5×
 * the speed (measured on this project's 2-core host: 49 vs 32 MB/s), and compression is what
 * bounds a backup's throughput.
 */
export const GZIP_LEVEL = 1;
const ZLIB_CHUNK = 256 * 1024;

export type TarEntryType = 'file' | 'dir' | 'symlink';

export interface TarEntryInfo {
  /** Relative POSIX path, no leading `./`, no trailing slash. */
  path: string;
  type: TarEntryType;
  /** Bytes of content (0 for directories and symlinks). */
  size: number;
  /** Permission bits (0o7777 at most). */
  mode: number;
  mtime: Date;
  /** Symlinks only. */
  linkTarget?: string;
}

export interface TarInput extends TarEntryInfo {
  /** Files only: exactly `size` bytes. */
  body?: AsyncIterable<Uint8Array> | Uint8Array;
}

export interface TarEntry extends TarEntryInfo {
  /** Files only. Single use; an entry whose body is not read is skipped when the next is asked for. */
  body: AsyncIterable<Buffer>;
}

export class ArchiveError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ArchiveError';
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

function octal(value: number, width: number): string {
  // width - 1 digits and a NUL, as GNU and BSD tar write them.
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body);
  // The length counts its own digits.
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return Buffer.from(`${len}${body}`, 'utf8');
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rest);
}

function header(h: { name: string; size: number; mode: number; mtime: number; typeflag: string; linkname?: string }): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(h.name, 0, 100, 'utf8');
  b.write(octal(h.mode & 0o7777, 8), 100, 8, 'ascii');
  b.write(octal(0, 8), 108, 8, 'ascii');
  b.write(octal(0, 8), 116, 8, 'ascii');
  b.write(octal(h.size, 12), 124, 12, 'ascii');
  b.write(octal(Math.max(0, Math.floor(h.mtime)), 12), 136, 12, 'ascii');
  b.fill(' ', 148, 156);
  b.write(h.typeflag, 156, 1, 'ascii');
  if (h.linkname) b.write(h.linkname, 157, 100, 'utf8');
  b.write('ustar\0', 257, 6, 'ascii');
  b.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(octal(sum, 7) + ' ', 148, 8, 'ascii');
  return b;
}

/** The header block(s) of one entry: a pax header first when the name or size do not fit ustar. */
export function tarHeader(e: TarEntryInfo): Buffer {
  const name = e.type === 'dir' ? `${e.path}/` : e.path;
  const typeflag = e.type === 'dir' ? '5' : e.type === 'symlink' ? '2' : '0';
  const size = e.type === 'file' ? e.size : 0;
  const pax: Buffer[] = [];
  if (Buffer.byteLength(name) > 100 || /[^\x20-\x7e]/.test(name)) pax.push(paxRecord('path', name));
  if (size > MAX_OCTAL_11) pax.push(paxRecord('size', String(size)));
  if (e.linkTarget !== undefined && (Buffer.byteLength(e.linkTarget) > 100 || /[^\x20-\x7e]/.test(e.linkTarget))) {
    pax.push(paxRecord('linkpath', e.linkTarget));
  }
  const mtime = e.mtime.getTime() / 1000;
  const own = header({ name: name.slice(0, 100), size: Math.min(size, MAX_OCTAL_11), mode: e.mode, mtime, typeflag, linkname: e.linkTarget?.slice(0, 100) });
  if (pax.length === 0) return own;
  const records = Buffer.concat(pax);
  const paxHeader = header({ name: `PaxHeaders/${name}`.slice(0, 100), size: records.length, mode: 0o644, mtime, typeflag: 'x' });
  return Buffer.concat([paxHeader, records, padding(records.length), own]);
}

/** The tar bytes of `entries`, in order, ending with the two zero blocks. */
export async function* tarStream(entries: AsyncIterable<TarInput> | Iterable<TarInput>): AsyncGenerator<Buffer> {
  for await (const e of entries) {
    yield tarHeader(e);
    if (e.type !== 'file') continue;
    let written = 0;
    const body = e.body ?? Buffer.alloc(0);
    const chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array> = body instanceof Uint8Array ? [body] : body;
    for await (const chunk of chunks) {
      written += chunk.byteLength;
      if (written > e.size) throw new ArchiveError(`${e.path} grew while it was being archived (more than the ${e.size} bytes it had)`);
      yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
    if (written !== e.size) throw new ArchiveError(`${e.path} shrank while it was being archived (${written} of ${e.size} bytes)`);
    const pad = padding(e.size);
    if (pad.length) yield pad;
  }
  yield Buffer.alloc(BLOCK * 2);
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Pulls exact byte counts out of a chunk stream without copying more than a header at a time. */
class ByteReader {
  #it: AsyncIterator<Uint8Array>;
  #buf: Buffer = Buffer.alloc(0);
  #ended = false;
  /** Bytes handed out so far (for error messages). */
  offset = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]();
  }

  async #fill(): Promise<boolean> {
    if (this.#ended) return false;
    const { value, done } = await this.#it.next();
    if (done) {
      this.#ended = true;
      return false;
    }
    const chunk = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    return true;
  }

  /** Exactly n bytes, or null at a clean end of input (no byte left). */
  async exactly(n: number): Promise<Buffer | null> {
    while (this.#buf.length < n) {
      if (!(await this.#fill())) {
        if (this.#buf.length === 0) return null;
        throw new ArchiveError(`the archive ends in the middle of a block at byte ${this.offset + this.#buf.length} (truncated)`);
      }
    }
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    this.offset += n;
    return out;
  }

  /** The next n bytes as they arrive. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.#buf.length === 0 && !(await this.#fill())) {
        throw new ArchiveError(`the archive ends inside a file's content at byte ${this.offset} (truncated)`);
      }
      const piece = this.#buf.subarray(0, Math.min(left, this.#buf.length));
      this.#buf = this.#buf.subarray(piece.length);
      this.offset += piece.length;
      left -= piece.length;
      yield piece;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const piece of this.take(n)) void piece;
  }

  async close(): Promise<void> {
    await this.#it.return?.();
  }
}

function cString(b: Buffer, start: number, len: number): string {
  const field = b.subarray(start, start + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

function numeric(b: Buffer, start: number, len: number, what: string): number {
  const field = b.subarray(start, start + len);
  if (field[0]! & 0x80) {
    // GNU base-256: big-endian, the top bit of the first byte marks the encoding.
    let v = field[0]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + field[i]!;
    return v;
  }
  const text = field.toString('ascii').replace(/[\0 ]+$/g, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new ArchiveError(`corrupt tar header: field ${what} is ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

function checksumOk(b: Buffer): boolean {
  const stored = numeric(b, 148, 8, 'chksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : b[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    const len = Number(data.toString('ascii', pos, space));
    if (space < 0 || !Number.isInteger(len) || len <= 0 || pos + len > data.length) throw new ArchiveError('corrupt pax header in the archive');
    const record = data.toString('utf8', space + 1, pos + len - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += len;
  }
  return out;
}

/** `./a/b/` → `a/b`; the root itself (`./`) → ''. */
export function normaliseEntryPath(p: string): string {
  return p.replace(/^(\.\/)+/, '').replace(/\/+$/, '').replace(/\/+/g, '/');
}

/**
 * The entries of a tar stream, in order. Regular files, directories and symlinks; hard links,
 * devices and FIFOs are refused (no backup of ours contains them). Headers are checksummed, so
 * a corrupt byte in one is reported rather than misread.
 */
export async function* readTar(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry> {
  const reader = new ByteReader(source);
  let pending: { drain: () => Promise<void> } | null = null;
  let pax: Record<string, string> = {};
  let longName: string | null = null;
  let longLink: string | null = null;
  try {
    for (;;) {
      if (pending) {
        await pending.drain();
        pending = null;
      }
      const at = reader.offset;
      const block = await reader.exactly(BLOCK);
      if (block === null) throw new ArchiveError('the archive ends without its end-of-archive blocks (truncated)');
      if (block.equals(ZERO_BLOCK)) return;
      if (!checksumOk(block)) throw new ArchiveError(`corrupt tar header at byte ${at} of the archive (checksum mismatch)`);
      const typeflag = String.fromCharCode(block[156]!);
      let size = numeric(block, 124, 12, 'size');
      if (pax.size !== undefined) size = Number(pax.size);
      const dataBlocks = Math.ceil(size / BLOCK) * BLOCK;

      if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
        if (size > 1024 * 1024) throw new ArchiveError(`tar extension header of ${size} bytes at byte ${at}: too large`);
        const data = (await reader.exactly(dataBlocks)) ?? Buffer.alloc(0);
        const content = data.subarray(0, size);
        if (typeflag === 'x') pax = { ...pax, ...parsePax(content) };
        else if (typeflag === 'L') longName = cString(content, 0, content.length);
        else if (typeflag === 'K') longLink = cString(content, 0, content.length);
        continue; // 'g' (global pax) holds nothing we use
      }

      const ustar = block.toString('ascii', 257, 262) === 'ustar';
      const prefix = ustar ? cString(block, 345, 155) : '';
      const rawName = pax.path ?? longName ?? (prefix ? `${prefix}/${cString(block, 0, 100)}` : cString(block, 0, 100));
      const linkTarget = pax.linkpath ?? longLink ?? cString(block, 157, 100);
      const mtimeS = pax.mtime !== undefined ? Number(pax.mtime) : numeric(block, 136, 12, 'mtime');
      const info = {
        path: normaliseEntryPath(rawName),
        size,
        mode: numeric(block, 100, 8, 'mode') & 0o7777,
        mtime: new Date(mtimeS * 1000),
      };
      pax = {};
      longName = null;
      longLink = null;

      let type: TarEntryType;
      if (typeflag === '0' || typeflag === '\0' || typeflag === '7') type = rawName.endsWith('/') ? 'dir' : 'file';
      else if (typeflag === '5') type = 'dir';
      else if (typeflag === '2') type = 'symlink';
      else if (typeflag === '1') throw new ArchiveError(`the archive holds a hard link (${info.path} → ${linkTarget}), which backups never contain`);
      else throw new ArchiveError(`the archive holds ${info.path} of tar type ${JSON.stringify(typeflag)}, which backups never contain`);

      if (type !== 'file') {
        if (dataBlocks) await reader.skip(dataBlocks);
        yield { ...info, type, size: 0, ...(type === 'symlink' ? { linkTarget } : {}), body: emptyBody() };
        continue;
      }
      let consumed = 0;
      let started = false;
      const body = (async function* () {
        if (started) throw new ArchiveError(`the content of ${info.path} can be read only once`);
        started = true;
        for await (const piece of reader.take(size)) {
          consumed += piece.length;
          yield piece;
        }
      })();
      pending = {
        drain: async () => {
          if (!started) await body.return(undefined);
          const rest = size - consumed;
          await reader.skip(rest + (dataBlocks - size));
        },
      };
      yield { ...info, type, body };
    }
  } finally {
    await reader.close();
  }
}

async function* emptyBody(): AsyncGenerator<Buffer> {}

// ---------------------------------------------------------------------------------------------
// Digests

/** sha256 and byte count of everything that passes, for one stream. */
export class Digest {
  readonly #hash = createHash('sha256');
  bytes = 0;

  update(chunk: Uint8Array): void {
    this.#hash.update(chunk);
    this.bytes += chunk.byteLength;
  }

  hex(): string {
    return this.#hash.digest('hex');
  }
}

/** Passes chunks through, feeding them to `digest` (and `onChunk`, for progress). */
export async function* digesting(source: AsyncIterable<Uint8Array>, digest: Digest, onChunk?: (bytes: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    digest.update(chunk);
    onChunk?.(chunk.byteLength);
    yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}

// ---------------------------------------------------------------------------------------------
// Backup archives: files then MANIFEST.json, gzip'd

export const MANIFEST_NAME = 'MANIFEST.json';

export interface PackedFile {
  path: string;
  size: number;
  mode: number;
  sha256: string;
}

export interface PackedTree {
  files: PackedFile[];
  dirs: { path: string; mode: number }[];
  symlinks: { path: string; target: string }[];
}

/**
 * The gzip'd tar of a backup: every entry of `files` as it comes, its sha256 computed on the way,
 * then MANIFEST.json built by `manifest` from those digests. The manifest comes last because the
 * digests are only known once the files have passed; the reader checks them at the end, before
 * anything is used. `onRawBytes` sees the uncompressed file bytes (progress).
 */
export function packArchive(
  files: AsyncIterable<TarInput>,
  manifest: (tree: PackedTree) => Uint8Array,
  opts: { onRawBytes?: (bytes: number) => void; level?: number } = {},
): Readable {
  const tree: PackedTree = { files: [], dirs: [], symlinks: [] };
  async function* withDigests(): AsyncGenerator<TarInput> {
    for await (const f of files) {
      if (f.path === MANIFEST_NAME) throw new ArchiveError(`the backup holds a file named ${MANIFEST_NAME}, the name the archive keeps for its manifest`);
      if (f.type === 'dir') {
        tree.dirs.push({ path: f.path, mode: f.mode });
        yield f;
      } else if (f.type === 'symlink') {
        tree.symlinks.push({ path: f.path, target: f.linkTarget ?? '' });
        yield f;
      } else {
        const digest = new Digest();
        const source = f.body instanceof Uint8Array ? [f.body] : (f.body ?? []);
        yield { ...f, body: digesting(toAsync(source), digest, opts.onRawBytes) };
        // tarStream has consumed the whole body before it asks for the next entry.
        tree.files.push({ path: f.path, size: f.size, mode: f.mode, sha256: digest.hex() });
      }
    }
    const text = manifest(tree);
    yield { path: MANIFEST_NAME, type: 'file', size: text.byteLength, mode: 0o644, mtime: new Date(), body: text };
  }
  const gzip = createGzip({ level: opts.level ?? GZIP_LEVEL, chunkSize: ZLIB_CHUNK });
  const tar = Readable.from(tarStream(withDigests()), { objectMode: false, highWaterMark: ZLIB_CHUNK });
  // Errors of either side end up on the returned stream (pipeline destroys gzip with them).
  pipeline(tar, gzip).catch(() => undefined);
  return gzip;
}

async function* toAsync(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* source;
}

export interface ReadArchiveResult {
  /** sha256 and size of the compressed bytes read. */
  sha256: string;
  bytes: number;
  /** What the archive actually holds, with the digests computed while reading. */
  tree: PackedTree;
  /** The raw MANIFEST.json, null if the archive has none. */
  manifest: Buffer | null;
}

/**
 * Reads a backup archive from `source` (gzip'd tar): hashes the compressed bytes and every file,
 * hands each entry to `sink` (which must consume a file's body, or leave it to be skipped), keeps
 * MANIFEST.json aside. Comparing the result with the manifest and the sidecar digest is the
 * caller's: this only reports what is there.
 */
export async function readArchive(
  source: AsyncIterable<Uint8Array>,
  sink: ((entry: TarEntry) => Promise<void>) | null,
  opts: { onCompressedBytes?: (bytes: number) => void } = {},
): Promise<ReadArchiveResult> {
  const outer = new Digest();
  const gunzip = createGunzip({ chunkSize: ZLIB_CHUNK });
  const feeding = pipeline(Readable.from(digesting(source, outer, opts.onCompressedBytes)), gunzip);
  // Its failure also reaches the reading loop below, which may be awaiting the sink meanwhile:
  // handled from the start, so that it never counts as an unhandled rejection.
  feeding.catch(() => undefined);
  const tree: PackedTree = { files: [], dirs: [], symlinks: [] };
  let manifest: Buffer | null = null;
  try {
    // The tar reader stops at the end-of-archive blocks; gunzip must then be read to its end, so it
    // must survive the reader letting go of it.
    for await (const entry of readTar(gunzip.iterator({ destroyOnReturn: false }))) {
      if (entry.path === MANIFEST_NAME && entry.type === 'file') {
        if (entry.size > 64 * 1024 * 1024) throw new ArchiveError(`${MANIFEST_NAME} of ${entry.size} bytes is too large`);
        const parts: Buffer[] = [];
        for await (const piece of entry.body) parts.push(piece);
        manifest = Buffer.concat(parts);
        continue;
      }
      if (entry.type === 'dir') tree.dirs.push({ path: entry.path, mode: entry.mode });
      else if (entry.type === 'symlink') tree.symlinks.push({ path: entry.path, target: entry.linkTarget ?? '' });
      if (entry.type !== 'file') {
        if (sink) await sink(entry);
        continue;
      }
      const digest = new Digest();
      const hashed: TarEntry = { ...entry, body: digesting(entry.body, digest) };
      if (sink) await sink(hashed);
      // Whatever the sink left unread still counts in the digest.
      for await (const rest of hashed.body) void rest;
      tree.files.push({ path: entry.path, size: entry.size, mode: entry.mode, sha256: digest.hex() });
    }
    // Trailing bytes after the end-of-archive blocks (padding to a record) still go through the digest.
    for await (const rest of gunzip) void rest;
    await feeding;
  } catch (err) {
    gunzip.destroy();
    await feeding.catch(() => undefined);
    if (err instanceof ArchiveError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('Z_')) {
      throw new ArchiveError(`the archive is not valid gzip at or before byte ${outer.bytes}: ${(err as Error).message}`, { cause: err });
    }
    throw err;
  }
  return { sha256: outer.hex(), bytes: outer.bytes, tree, manifest };
}

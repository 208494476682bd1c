// The embedded backup store: a directory on local disk. Store paths map under its root and are
// confined there through realpath checks, so a symlink planted in the tree cannot lead out.
import { randomUUID } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { addAbortSignal, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CountedSource,
  BackupStoreError,
  abortedError,
  checkOffset,
  checkRecordLine,
  checkStorePath,
  type BackupStore,
  type ByteSource,
  type StoreEntry,
  type StoreStat,
} from './store.ts';
import { openAmong } from '../host/process-info.ts';

// In-progress writes: hidden, unique, recognisable (and left out of list()).
const TEMP_NAME = /^\.(.+)\.[0-9a-f-]{36}\.tmp$/;
const tempNameFor = (target: string) => path.join(path.dirname(target), `.${path.basename(target)}.${randomUUID()}.tmp`);

export class LocalDirStore implements BackupStore {
  readonly name = 'local' as const;
  readonly location: string;
  #root: Promise<string> | undefined;

  /** `rootDir` is created on first use. */
  constructor(rootDir: string) {
    this.location = path.resolve(rootDir);
  }

  async list(dir: string): Promise<StoreEntry[]> {
    const p = checkStorePath(dir);
    const real = await this.#resolve('list', p, { followFinal: true });
    let names: string[];
    try {
      names = await fs.readdir(real);
    } catch (err) {
      throw this.#fsError('list', p, err);
    }
    const entries: StoreEntry[] = [];
    for (const name of names.sort()) {
      if (TEMP_NAME.test(name)) continue;
      // lstat: a symlink is not followed (it may point out of the store), and not listed.
      const st = await fs.lstat(path.join(real, name)).catch(() => null);
      if (!st || !(st.isFile() || st.isDirectory())) continue;
      entries.push({ name, size: st.isFile() ? st.size : 0, mtime: st.mtime, type: st.isFile() ? 'file' : 'dir' });
    }
    return entries;
  }

  async stat(storePath: string): Promise<StoreStat | null> {
    const p = checkStorePath(storePath);
    const real = await this.#resolve('stat', p, { followFinal: true });
    const st = await fs.stat(real).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return null;
      throw this.#fsError('stat', p, err);
    });
    if (!st) return null;
    return { size: st.isFile() ? st.size : 0, mtime: st.mtime, type: st.isDirectory() ? 'dir' : 'file' };
  }

  async write(storePath: string, source: ByteSource, opts: { signal?: AbortSignal } = {}): Promise<{ bytes: number }> {
    const p = checkStorePath(storePath);
    if (p === '/') throw new BackupStoreError('not_a_file', 'write /: the store root is a directory', p);
    const { signal } = opts;
    if (signal?.aborted) throw abortedError('write', p, signal);
    const target = await this.#resolve('write', p, { followFinal: false, createParent: true });
    // Write under a temp name in the same directory, fsync, then rename: the final name only
    // ever shows a complete file, and a crash leaves at most a hidden temp file.
    const temp = tempNameFor(target);
    const counted = new CountedSource(source);
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(temp, 'wx', 0o640);
    } catch (err) {
      throw this.#fsError('write', p, err);
    }
    // The descriptor stays open until the temp name is gone (renamed or removed): a temp file that
    // no process holds open is one no upload is writing, which is what sweepTempFiles relies on.
    try {
      const file = fh;
      await pipeline(
        counted.stream,
        async (chunks: AsyncIterable<Uint8Array>) => {
          for await (const chunk of chunks) {
            // A write may take part of a chunk (a full disk reports itself on the next one).
            for (let at = 0; at < chunk.byteLength; ) at += (await file.write(chunk, at)).bytesWritten;
          }
        },
        signal ? { signal } : {},
      );
      await fh.sync();
      await fs.rename(temp, target);
    } catch (err) {
      await fs.rm(temp, { force: true });
      if (signal?.aborted) throw abortedError('write', p, signal);
      if (counted.error !== undefined) {
        const why = (counted.error as Error).message ?? String(counted.error);
        throw new BackupStoreError('failed', `write ${p}: reading the data to write failed after ${counted.bytes} bytes: ${why}`, p, { cause: counted.error });
      }
      throw this.#fsError('write', p, err);
    } finally {
      await fh.close();
    }
    await syncDir(path.dirname(target));
    return { bytes: counted.bytes };
  }

  async read(storePath: string, opts: { offset?: number; signal?: AbortSignal } = {}): Promise<Readable> {
    const p = checkStorePath(storePath);
    const offset = checkOffset(opts.offset, p);
    const { signal } = opts;
    if (signal?.aborted) throw abortedError('read', p, signal);
    const real = await this.#resolve('read', p, { followFinal: true });
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    } catch (err) {
      throw this.#fsError('read', p, err);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new BackupStoreError('not_a_file', `read ${p} (local backup store ${this.location}): is a directory`, p);
      if (offset > st.size) {
        throw new BackupStoreError('invalid_argument', `read ${p}: offset ${offset} is beyond the end of the file (${st.size} bytes)`, p);
      }
    } catch (err) {
      await fh.close();
      throw err;
    }
    const stream = fh.createReadStream({ start: offset });
    return signal ? addAbortSignal(signal, stream) : stream;
  }

  async rename(from: string, to: string): Promise<void> {
    const src = checkStorePath(from);
    const dst = checkStorePath(to);
    if (src === '/' || dst === '/') throw new BackupStoreError('invalid_path', `rename ${src} → ${dst}: cannot rename the store root`, src);
    const realSrc = await this.#resolve('rename', src, { followFinal: false });
    if (!(await exists(realSrc))) throw new BackupStoreError('not_found', `rename ${src} → ${dst}: ${src} does not exist`, src);
    const realDst = await this.#resolve('rename', dst, { followFinal: false, createParent: true });
    // fs.rename would silently replace the destination; a committed backup must never be.
    // node-mgr is the store's only writer, and its jobs for one node run one at a time.
    if (await exists(realDst)) throw new BackupStoreError('already_exists', `rename ${src} → ${dst}: ${dst} already exists`, dst);
    try {
      await fs.rename(realSrc, realDst);
    } catch (err) {
      throw this.#fsError('rename', src, err);
    }
    await syncDir(path.dirname(realDst));
    if (path.dirname(realSrc) !== path.dirname(realDst)) await syncDir(path.dirname(realSrc));
  }

  async appendLine(storePath: string, line: string): Promise<void> {
    const p = checkStorePath(storePath);
    checkRecordLine(line, p);
    const real = await this.#resolve('appendLine', p, { followFinal: true, createParent: true });
    try {
      // O_NOFOLLOW: a dangling symlink at the final name must not create a file elsewhere.
      const fh = await fs.open(real, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_APPEND | fsConstants.O_NOFOLLOW, 0o640);
      try {
        await fh.write(`${line}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw this.#fsError('appendLine', p, err);
    }
  }

  async delete(storePath: string): Promise<void> {
    const p = checkStorePath(storePath);
    if (p === '/') throw new BackupStoreError('invalid_path', 'delete /: refusing to delete the whole store', p);
    const real = await this.#resolve('delete', p, { followFinal: false });
    try {
      await fs.rm(real, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return; // under a file: nothing there
      throw this.#fsError('delete', p, err);
    }
  }

  async mkdirs(storePath: string): Promise<void> {
    const p = checkStorePath(storePath);
    const real = await this.#resolve('mkdirs', p, { followFinal: false });
    try {
      await fs.mkdir(real, { recursive: true });
    } catch (err) {
      throw this.#fsError('mkdirs', p, err);
    }
  }

  /**
   * Removes the temp files of writes that will never finish (a node-mgr killed mid-upload leaves
   * `.<name>.<uuid>.tmp`), anywhere in the store: only names of that pattern, only plain files, and
   * only those no process of this host holds open (a live write keeps its descriptor until the
   * rename, see write()). A store directory that does not exist yet is left uncreated.
   */
  async sweepTempFiles(): Promise<{ removed: string[]; failed: { path: string; error: string }[] }> {
    const out: { removed: string[]; failed: { path: string; error: string }[] } = { removed: [], failed: [] };
    if (!(await exists(this.location))) return out;
    const root = await this.#realRoot();
    const temps = new Set<string>();
    const walk = async (dir: string): Promise<void> => {
      const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        const full = path.join(dir, e.name);
        // Dirent types come from lstat: a symbolic link is neither, and is never followed.
        if (e.isDirectory()) await walk(full);
        else if (e.isFile() && TEMP_NAME.test(e.name)) temps.add(full);
      }
    };
    await walk(root);
    const live = await openAmong(temps);
    for (const t of temps) {
      if (live.has(t)) continue;
      const storePath = `/${path.relative(root, t).split(path.sep).join('/')}`;
      try {
        await fs.rm(t, { force: true });
        out.removed.push(storePath);
      } catch (err) {
        out.failed.push({ path: storePath, error: (err as Error).message });
      }
    }
    return out;
  }

  /** The root's real path, created on first use. */
  #realRoot(): Promise<string> {
    return (this.#root ??= fs.mkdir(this.location, { recursive: true }).then(() => fs.realpath(this.location))).catch((err) => {
      this.#root = undefined;
      throw new BackupStoreError('failed', `local backup store ${this.location}: cannot create or open it: ${(err as Error).message}`, '/', { cause: err });
    });
  }

  /**
   * The real on-disk path of a checked store path, proven to be inside the root: the nearest
   * existing ancestor is realpath'd, so a symlinked directory pointing out is caught.
   * `followFinal` also resolves the last component (to read through it); otherwise it is kept
   * as a name (to create, replace or delete that entry itself).
   */
  async #resolve(op: string, p: string, opts: { followFinal: boolean; createParent?: boolean }): Promise<string> {
    const root = await this.#realRoot();
    if (p === '/') return root;
    const lexical = path.join(root, p);
    let parent = await this.#realExisting(root, path.dirname(lexical), p);
    if (opts.createParent) {
      try {
        await fs.mkdir(parent, { recursive: true });
      } catch (err) {
        throw this.#fsError(op, p, err, `cannot create its directory ${path.posix.dirname(p)}`);
      }
      // Re-check: the directories now exist, and none of them may have led out meanwhile.
      parent = await this.#realExisting(root, path.dirname(lexical), p);
    }
    let target = path.join(parent, path.basename(lexical));
    if (opts.followFinal) {
      try {
        target = await fs.realpath(target);
      } catch {
        // Missing: the operation reports it. A dangling symlink: O_NOFOLLOW refuses it.
      }
    }
    if (!isInside(root, target)) {
      throw new BackupStoreError('invalid_path', `${p} resolves to ${target}, outside the local backup store ${root}`, p);
    }
    return target;
  }

  async #realExisting(root: string, dir: string, p: string): Promise<string> {
    let existing = dir;
    let rest = '';
    for (;;) {
      try {
        const real = await fs.realpath(existing);
        const resolved = rest ? path.join(real, rest) : real;
        if (!isInside(root, real)) {
          throw new BackupStoreError('invalid_path', `${p} resolves to ${resolved}, outside the local backup store ${root}`, p);
        }
        return resolved;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
        if (existing === root) throw this.#fsError('open', '/', err);
        rest = rest ? path.join(path.basename(existing), rest) : path.basename(existing);
        existing = path.dirname(existing);
      }
    }
  }

  #fsError(op: string, p: string, err: unknown, doing?: string): Error {
    if (err instanceof BackupStoreError) return err;
    const e = err as NodeJS.ErrnoException;
    const where = `${op} ${p} (local backup store ${this.location})${doing ? `: ${doing}` : ''}`;
    switch (e.code) {
      case 'ENOENT':
        return new BackupStoreError('not_found', `${where}: no such file or directory`, p, { cause: err });
      case 'ENOTDIR':
        return new BackupStoreError('not_a_directory', `${where}: a path component is a file, not a directory`, p, { cause: err });
      case 'EEXIST':
        return new BackupStoreError('not_a_directory', `${where}: a file is in the way of a directory`, p, { cause: err });
      case 'EISDIR':
        return new BackupStoreError('not_a_file', `${where}: is a directory`, p, { cause: err });
      case 'ELOOP':
        return new BackupStoreError('invalid_path', `${where}: is a symbolic link`, p, { cause: err });
      default:
        return new BackupStoreError('failed', `${where}: ${e.message}`, p, { cause: err });
    }
  }
}

function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return false;
      throw err;
    },
  );
}

/** fsync a directory so a rename or a new entry in it survives a crash. */
async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// Files inside node directories, handled so that nothing the servers' OS account can write there
// (a symlink, a hard link, a swapped directory) makes node-mgr act on a file outside them.
//
// The account (runAs) owns the node dir and everything below it, and anyone with a database login
// can run programs as it (COPY … TO PROGRAM, SELECT … INTO OUTFILE). When node-mgr runs as root,
// every path below a node dir is therefore hostile: directories are opened one component at a
// time with O_NOFOLLOW and the next name is looked up relative to the open descriptor (through
// /proc/self/fd/<fd>/<name>, Node's stand-in for openat), files are created new (O_EXCL) and
// renamed into place, owners and modes are set on the open descriptor, and a file that is not a
// plain file of its own (a symlink, a hard link, a fifo) is never read or written through. The
// directories above a node dir must be ones the account cannot change, or node-mgr refuses the node.
import { constants, lstatSync, realpathSync, statSync, type Stats } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { execa } from 'execa';
import { parsePidFile, type PidFile } from '../host/process-info.ts';
import { groupsOf, type RunAs } from '../host/run-as.ts';

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = constants;

/** A node's directories as these functions need them. */
export interface NodeDirs {
  id?: string;
  dir: string;
  dataDir: string;
  runAs: RunAs;
}

/** A path below a node dir that is a link, or not what node-mgr made, where it must act. */
export class UnsafeNodePath extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeNodePath';
  }
}

/** node-mgr runs as root and the servers as another account: that account must not steer root. */
export function crossesBoundary(runAs: RunAs): boolean {
  return process.getuid?.() === 0 && runAs.uid !== 0;
}

/** An open directory and the path it was opened as (for messages only: lookups go through the fd). */
export interface OpenDir {
  handle: FileHandle;
  path: string;
}

/** The path that names `name` inside the open directory: the kernel resolves it from the fd, not from the dir's path. */
export function inDir(dir: OpenDir, name: string): string {
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new Error(`${JSON.stringify(name)} is not a single file name`);
  }
  return `/proc/self/fd/${dir.handle.fd}/${name}`;
}

const errno = (err: unknown) => (err as NodeJS.ErrnoException).code;

/**
 * Throws a sentence naming the first directory above `target` in which runAs could replace the
 * next component (rename it away and put a link there): node-mgr would then act, as root, on
 * whatever the account chose. A world-writable sticky dir (/tmp) is fine when the next component
 * exists and belongs to someone else. Both the path as given and its real path are checked.
 */
export async function assertAncestorsSafe(target: string, runAs: RunAs): Promise<void> {
  if (!crossesBoundary(runAs)) return;
  const groups = await groupsOf(runAs);
  const given = path.resolve(target);
  const chains = [given];
  const real = realpathOfExisting(given);
  if (real !== given) chains.push(real);
  // Synchronous stats: a handful of directories whose inodes the kernel has cached, checked before
  // every file node-mgr opens below a node dir (several per restart). Each one awaited on the
  // thread pool was a round trip that a loaded machine stretches to a millisecond or more.
  for (const chain of chains) {
    let child = chain;
    for (let dir = path.dirname(chain); ; child = dir, dir = path.dirname(dir)) {
      const st = statOrNull(dir, statSync);
      if (st) {
        const writable = st.uid === runAs.uid || (groups.has(st.gid) && (st.mode & 0o020) !== 0) || (st.mode & 0o002) !== 0;
        if (writable) {
          const c = statOrNull(child, lstatSync);
          const stickyGuarded = (st.mode & 0o1000) !== 0 && st.uid !== runAs.uid && c !== null && c.uid !== runAs.uid;
          if (!stickyGuarded) {
            const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
            throw new UnsafeNodePath(
              `${dir} (owner uid ${st.uid}, mode ${mode}) can be changed by the servers' account ${runAs.name}, which could swap ${child} for a link ` +
                `and make node-mgr (root) act on another file: make ${dir} owned by root and not writable by ${runAs.name} ` +
                `(chown root ${dir}; chmod go-w ${dir}), put the node under such a directory, or run node-mgr as ${runAs.name}`,
            );
          }
        }
      }
      if (dir === path.dirname(dir)) break;
    }
  }
}

/** Any failure (missing, not a dir, a loop) is null, as for the awaited stat it replaced. */
function statOrNull(p: string, how: typeof statSync | typeof lstatSync): Stats | null {
  try {
    return how(p) ?? null;
  } catch {
    return null;
  }
}

/** The real path of the deepest existing ancestor, with the missing rest appended. */
function realpathOfExisting(p: string): string {
  const rest: string[] = [];
  for (let cur = p; ; cur = path.dirname(cur)) {
    try {
      return path.join(realpathSync.native(cur), ...rest.reverse());
    } catch {
      if (cur === path.dirname(cur)) return p;
      rest.push(path.basename(cur));
    }
  }
}

export interface CreateDir {
  mode: number;
  /** Owner of a dir node-mgr creates (and of an existing leaf, when `chownExisting`). */
  owner: RunAs;
  chownExisting?: boolean;
}

async function openDirNoFollow(at: string, shown: string): Promise<FileHandle> {
  try {
    return await open(at, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (err) {
    if (errno(err) === 'ELOOP' || errno(err) === 'ENOTDIR') {
      throw new UnsafeNodePath(
        `${shown} is a symbolic link or not a directory; node-mgr does not follow links inside node directories: remove it (rm ${shown}) and try again`,
      );
    }
    throw err;
  }
}

/** Sets owner and mode on an open dir we just made (or a leaf we own), never through a path. */
async function claim(handle: FileHandle, create: CreateDir, created: boolean): Promise<void> {
  if (!created && !create.chownExisting) return;
  if (crossesBoundary(create.owner)) await handle.chown(create.owner.uid, create.owner.gid);
  await handle.chmod(create.mode);
}

/** Opens (and with `create`, makes) the directory `name` inside `parent`, never following a link. */
export async function openSubdir(parent: OpenDir, name: string, create?: CreateDir): Promise<OpenDir> {
  const shown = path.join(parent.path, name);
  let created = false;
  if (create) {
    try {
      await mkdir(inDir(parent, name), create.mode);
      created = true;
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
    }
  }
  const handle = await openDirNoFollow(inDir(parent, name), shown);
  if (create) {
    try {
      await claim(handle, create, created);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }
  return { handle, path: shown };
}

/**
 * Opens `dir`, which is `root` or below it: `root`'s ancestors must be safe from runAs, and no
 * component from `root` down may be a link. With `create`, missing dirs are made: those above
 * `root` as root-owned 0755 dirs, `root` and below owned by create.owner.
 */
export async function openDirBeneath(root: string, dir: string, runAs: RunAs, create?: CreateDir): Promise<OpenDir> {
  const rel = path.relative(root, dir);
  if (rel.startsWith('..') || path.isAbsolute(rel)) throw new Error(`${dir} is not inside ${root}`);
  await assertAncestorsSafe(root, runAs);
  let created = false;
  if (create) {
    await mkdir(path.dirname(root), { recursive: true, mode: 0o755 });
    try {
      await mkdir(root, create.mode);
      created = true;
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
    }
  }
  let cur: OpenDir = { handle: await openDirNoFollow(root, root), path: root };
  try {
    if (create) await claim(cur.handle, rel ? { ...create, chownExisting: false } : create, created);
    for (const name of rel.split(path.sep).filter(Boolean)) {
      const next = await openSubdir(cur, name, create);
      await cur.handle.close();
      cur = next;
    }
    return cur;
  } catch (err) {
    await cur.handle.close();
    throw err;
  }
}

/** Which of the node's trees a path lies in (the node dir, or a data dir kept elsewhere); else its own dir. */
export function rootOf(node: NodeDirs, file: string): string {
  const inside = (root: string) => file === root || file.startsWith(`${root}${path.sep}`);
  if (inside(node.dir)) return node.dir;
  if (inside(node.dataDir)) return node.dataDir;
  return path.dirname(file);
}

/** Runs fn with the file's directory open (safely); the dir is closed afterwards. */
export async function withParentDir<T>(node: NodeDirs, file: string, fn: (dir: OpenDir, name: string) => Promise<T>, create?: CreateDir): Promise<T> {
  const dir = await openDirBeneath(rootOf(node, file), path.dirname(file), node.runAs, create);
  try {
    return await fn(dir, path.basename(file));
  } finally {
    await dir.handle.close();
  }
}

/**
 * Opens `name` in `dir` as a plain file of its own: not a link (O_NOFOLLOW), not a fifo or a
 * device (O_NONBLOCK keeps a fifo from blocking the open), not hard-linked elsewhere (a second
 * name could be a root file). Null when it is missing or not such a file.
 */
export async function openPlainFile(dir: OpenDir, name: string, flags: number): Promise<FileHandle | null> {
  let handle: FileHandle;
  try {
    handle = await open(inDir(dir, name), flags | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    if (['ENOENT', 'ELOOP', 'ENXIO', 'EISDIR'].includes(errno(err) ?? '')) return null;
    throw err;
  }
  const st = await handle.stat();
  if (!st.isFile() || st.nlink !== 1) {
    await handle.close();
    return null;
  }
  return handle;
}

/** The file's content, or null when it is missing or not a plain file of its own. */
export async function readNodeFile(node: NodeDirs, file: string): Promise<{ text: string; mtimeMs: number } | null> {
  try {
    return await withParentDir(node, file, async (dir, name) => {
      const handle = await openPlainFile(dir, name, O_RDONLY);
      if (!handle) return null;
      try {
        const [text, st] = await Promise.all([handle.readFile('utf8'), handle.stat()]);
        return { text, mtimeMs: st.mtimeMs };
      } finally {
        await handle.close();
      }
    });
  } catch (err) {
    if (errno(err) === 'ENOENT') return null;
    throw err;
  }
}

/** A pid file below a node dir, read without following links; null when missing or malformed. */
export async function readNodePidFile(node: NodeDirs, file: string): Promise<PidFile | null> {
  const read = await readNodeFile(node, file).catch(() => null);
  return read ? parsePidFile(read.text, read.mtimeMs) : null;
}

const TAIL_BYTES = 64 * 1024;

/** Last maxLines lines of an open file of `size` bytes, read from its last 64 KiB. */
export async function tailOfOpenFile(handle: FileHandle, size: number, maxLines: number): Promise<string[]> {
  const start = Math.max(0, size - TAIL_BYTES);
  const buf = Buffer.alloc(size - start);
  await handle.read(buf, 0, buf.length, start);
  let lines = buf.toString('utf8').split('\n');
  if (start > 0) lines = lines.slice(1); // the first line is cut
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.slice(-maxLines);
}

/** Last maxLines lines of a log below a node dir (from its last 64 KiB); [] when missing, a link or not a plain file. */
export async function readNodeLogTail(node: NodeDirs, file: string, maxLines: number): Promise<string[]> {
  try {
    return await withParentDir(node, file, async (dir, name) => {
      const handle = await openPlainFile(dir, name, O_RDONLY);
      if (!handle) return [];
      try {
        return await tailOfOpenFile(handle, (await handle.stat()).size, maxLines);
      } finally {
        await handle.close();
      }
    });
  } catch {
    return [];
  }
}

export interface WriteOptions {
  mode: number;
  /** The file's owner; node-mgr's own user when absent. */
  owner?: RunAs;
}

/** Creates a new file next to `name` under a fresh name (O_EXCL: never an existing file or link). */
async function createTemp(dir: OpenDir, name: string, opts: WriteOptions): Promise<{ handle: FileHandle; temp: string }> {
  const temp = `.${name}.node-mgr-${randomBytes(6).toString('hex')}`;
  const handle = await open(inDir(dir, temp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, opts.mode);
  try {
    if (opts.owner && crossesBoundary(opts.owner)) await handle.chown(opts.owner.uid, opts.owner.gid);
    await handle.chmod(opts.mode);
  } catch (err) {
    await handle.close();
    await unlink(inDir(dir, temp)).catch(() => undefined);
    throw err;
  }
  return { handle, temp };
}

/** Writes a file inside an open dir: a new file renamed over the old name (a link there is replaced, not followed). */
export async function replaceFileIn(dir: OpenDir, name: string, data: string | Buffer, opts: WriteOptions): Promise<void> {
  const { handle, temp } = await createTemp(dir, name, opts);
  try {
    await handle.writeFile(data);
  } catch (err) {
    await handle.close();
    await unlink(inDir(dir, temp)).catch(() => undefined);
    throw err;
  }
  await handle.close();
  try {
    await rename(inDir(dir, temp), inDir(dir, name));
  } catch (err) {
    await unlink(inDir(dir, temp)).catch(() => undefined);
    throw err;
  }
}

/** Creates a new file in an open dir (O_EXCL|O_NOFOLLOW: never over an existing name or link). */
export async function createNewFileIn(dir: OpenDir, name: string, data: string, mode: number): Promise<void> {
  const handle = await open(inDir(dir, name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  try {
    await handle.writeFile(data);
  } finally {
    await handle.close();
  }
}

/** Writes a file below a node dir without following links (see replaceFileIn). */
export async function writeNodeFile(node: NodeDirs, file: string, data: string | Buffer, opts: WriteOptions): Promise<void> {
  await withParentDir(node, file, (dir, name) => replaceFileIn(dir, name, data, opts));
}

/** Removes a file below a node dir (the name itself: unlink never follows a link). */
export async function removeNodeFile(node: NodeDirs, file: string): Promise<void> {
  try {
    await withParentDir(node, file, (dir, name) => unlink(inDir(dir, name)));
  } catch (err) {
    if (errno(err) !== 'ENOENT') throw err;
  }
}

/**
 * Opens a log below a node dir for appending (created 0640 for `owner` when missing). Whatever
 * the account put in its place (a link, a hard link, a fifo) is removed and a new file made: the
 * log is node-mgr's, and following the link would let the account choose which file root opens.
 */
export async function openNodeLogForAppend(node: NodeDirs, file: string, owner: RunAs): Promise<FileHandle> {
  return withParentDir(node, file, async (dir, name) => {
    for (let attempt = 0; ; attempt++) {
      const handle = await openPlainFile(dir, name, O_WRONLY | O_APPEND);
      if (handle) {
        const st = await handle.stat();
        // A log node-mgr itself made while running as root earlier: give it to the server's account.
        if (st.uid !== owner.uid && st.uid === 0 && crossesBoundary(owner)) await handle.chown(owner.uid, owner.gid);
        return handle;
      }
      await unlink(inDir(dir, name)).catch((err) => {
        if (errno(err) !== 'ENOENT') throw err;
      });
      try {
        const created = await open(inDir(dir, name), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW, 0o640);
        if (crossesBoundary(owner)) await created.chown(owner.uid, owner.gid);
        await created.chmod(0o640);
        return created;
      } catch (err) {
        // Someone made the name again between the unlink and the open: look once more.
        if (errno(err) !== 'EEXIST' || attempt >= 3) throw err;
      }
    }
  });
}

/**
 * Copy-truncate rotation of a log below a node dir: the writer keeps its O_APPEND fd, which lands
 * at the start of the truncated file. file.1 is the newest old copy, file.<keep> the oldest.
 * Copies are new files renamed into place; a link in the log's place is not rotated.
 * Lines written between the copy and the truncate are lost: the price of not reopening.
 */
/**
 * Whether a plain stat sees `file` larger than maxBytes: the walk that guards against planted links
 * (withParentDir) is needed only for a file to rotate, and housekeeping asks every node every
 * minute. A link can only make this look small or missing, and then nothing is done; a file that
 * looks large still goes through the guarded walk.
 */
async function looksLargerThan(file: string, maxBytes: number): Promise<boolean> {
  try {
    return (await stat(file)).size > maxBytes;
  } catch {
    return false;
  }
}

export async function copyTruncateNodeLog(node: NodeDirs, file: string, maxBytes: number, keep: number): Promise<boolean> {
  if (!(await looksLargerThan(file, maxBytes))) return false;
  try {
    return await withParentDir(node, file, async (dir, name) => {
      const src = await openPlainFile(dir, name, O_RDWR);
      if (!src) return false;
      try {
        const { size, mode } = await src.stat();
        if (size <= maxBytes) return false;
        if (keep > 0) {
          await shiftOldCopies(dir, name, keep);
          const { handle, temp } = await createTemp(dir, `${name}.1`, { mode: mode & 0o777 });
          try {
            const buf = Buffer.alloc(256 * 1024);
            for (let pos = 0; pos < size; ) {
              const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, size - pos), pos);
              if (bytesRead === 0) break;
              await handle.write(buf, 0, bytesRead);
              pos += bytesRead;
            }
          } finally {
            await handle.close();
          }
          await rename(inDir(dir, temp), inDir(dir, `${name}.1`));
        }
        await src.truncate(0);
        return true;
      } finally {
        await src.close();
      }
    });
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
}

/** name.<keep> is removed, name.<i> becomes name.<i+1>: renames and unlinks act on names, never through links. */
async function shiftOldCopies(dir: OpenDir, name: string, keep: number): Promise<void> {
  await unlink(inDir(dir, `${name}.${keep}`)).catch(() => undefined);
  for (let i = keep - 1; i >= 1; i--) await rename(inDir(dir, `${name}.${i}`), inDir(dir, `${name}.${i + 1}`)).catch(() => undefined);
}

/**
 * Rename rotation of a log the server reopens on request (MariaDB's error log after FLUSH ERROR
 * LOGS): name becomes name.1 and the server makes a new one. Returns true when it rotated.
 */
export async function renameRotateNodeLog(node: NodeDirs, file: string, maxBytes: number, keep: number): Promise<boolean> {
  if (!(await looksLargerThan(file, maxBytes))) return false;
  try {
    return await withParentDir(node, file, async (dir, name) => {
      const src = await openPlainFile(dir, name, O_RDONLY);
      if (!src) return false;
      let size: number;
      try {
        size = (await src.stat()).size;
      } finally {
        await src.close();
      }
      if (size <= maxBytes) return false;
      if (keep === 0) {
        await unlink(inDir(dir, name));
        return true;
      }
      await shiftOldCopies(dir, name, keep);
      await rename(inDir(dir, name), inDir(dir, `${name}.1`));
      return true;
    });
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Empties a directory below a node dir as the servers' account: a recursive delete as root could
 * be steered by a directory swapped for a link half-way, but the account can only delete what it
 * could delete anyway.
 */
export async function emptyNodeDirAsAccount(node: NodeDirs, dir: string): Promise<void> {
  const names = await readdir(dir).catch((err) => {
    if (errno(err) === 'ENOENT') return [] as string[];
    throw err;
  });
  if (!names.length) return;
  const targets = names.map((n) => path.join(dir, n));
  if (!crossesBoundary(node.runAs)) {
    for (const t of targets) await rm(t, { recursive: true, force: true });
    return;
  }
  const result = await execa('rm', ['-rf', '--', ...targets], { uid: node.runAs.uid, gid: node.runAs.gid, reject: false, all: true, env: { PATH: '/usr/bin:/bin' }, extendEnv: false });
  if (result.failed) throw new Error(`cannot empty ${dir} as ${node.runAs.name}: ${(result.all ?? '').trim().split('\n').slice(-3).join('; ')}`);
}

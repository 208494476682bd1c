// From a config entry to the NodeSpec engines work with, and the on-disk layout of a node dir.
import { readFileSync } from 'node:fs';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { effectivePolicy } from '../config/load.ts';
import type { Config, NodeEntry } from '../config/schema.ts';
import type { NodeSpec, RunAs } from './engine.ts';
import { createNewFileIn, groupsOf, openDirBeneath, openSubdir, rootOf } from './node-files.ts';

/** Resolves one node entry: id `<kind>-<port>`, dirs under the node dir unless given, policy overlaid. */
export function resolveSpec(config: Config, entry: NodeEntry, runAs: RunAs): NodeSpec {
  const dir = path.resolve(entry.dir);
  return {
    id: `${entry.kind}-${entry.port}`,
    kind: entry.kind,
    role: entry.role,
    port: entry.port,
    ip: entry.ip,
    dir,
    dataDir: entry.dataDir ? path.resolve(entry.dataDir) : path.join(dir, 'data'),
    logDir: path.join(dir, 'log'),
    runDir: path.join(dir, 'run'),
    cluster: entry.cluster,
    shard: entry.shard,
    user: entry.user,
    password: entry.password,
    serverOptions: { ...entry.serverOptions },
    command: entry.command ? [...entry.command] : undefined,
    pidFile: entry.pidFile ? path.resolve(dir, entry.pidFile) : undefined,
    healthUrl: entry.healthUrl,
    policy: effectivePolicy(config, entry),
    runAs,
    binaries: config.binaries,
  };
}

/**
 * Where nodes created over the API may live: nodesDir, discovery.baseDir, nodeRoots, and the
 * parent dirs of the nodes in the config file (the operator chose those places already).
 */
export function nodeRoots(config: Pick<Config, 'nodesDir' | 'nodeRoots' | 'discovery' | 'nodes'>): string[] {
  const roots = [config.nodesDir, ...(config.discovery.baseDir ? [config.discovery.baseDir] : []), ...config.nodeRoots];
  for (const n of config.nodes) roots.push(path.dirname(path.resolve(n.dir)));
  return [...new Set(roots.map((r) => path.resolve(r)))];
}

/** Looks the OS user up in /etc/passwd (the database processes run as it). */
export function lookupRunAs(name: string, passwd = '/etc/passwd'): RunAs {
  return parseRunAs(name, readPasswd(passwd), passwd);
}

function readPasswd(file: string): string {
  try {
    // Synchronous on purpose: this runs once at startup, before anything else can happen.
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file} to look up the runAs user: ${(err as Error).message}`);
  }
}

/** Parses passwd text; exported for tests. */
export function parseRunAs(name: string, passwdText: string, source = '/etc/passwd'): RunAs {
  for (const line of passwdText.split('\n')) {
    const f = line.split(':');
    if (f.length >= 4 && f[0] === name) return { name, uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(
    `runAs user '${name}' does not exist in ${source}: create it (e.g. \`useradd --system --no-create-home ${name}\`) or set runAs in the config`,
  );
}

/** Where spawnServer appends the server's stdout and stderr. */
export function serverLogFile(spec: Pick<NodeSpec, 'logDir'>): string {
  return path.join(spec.logDir, 'server.log');
}

/** node-mgr's own record of the pid it spawned, for programs that write no pidfile of their own. */
export function spawnedPidFile(spec: Pick<NodeSpec, 'runDir'>): string {
  return path.join(spec.runDir, 'spawned.pid');
}

/** Marker present while initDataDir runs: a data dir next to it is a half-done init, safe to redo. */
export function initMarkerFile(spec: Pick<NodeSpec, 'dir'>): string {
  return path.join(spec.dir, '.init-in-progress');
}

/** Written (O_EXCL, never through a link) into a node dir that node-mgr itself created; holds the node id. */
export const OWNED_MARKER_NAME = '.node-mgr-owned';

/** True when node-mgr created the node dir for this very node (its marker names the node). */
export async function isOwnNodeDir(spec: Pick<NodeSpec, 'dir' | 'id'>): Promise<boolean> {
  const st = await lstat(path.join(spec.dir, OWNED_MARKER_NAME)).catch(() => null);
  if (!st?.isFile()) return false;
  const text = await readFile(path.join(spec.dir, OWNED_MARKER_NAME), 'utf8').catch(() => '');
  return text.trim() === spec.id;
}

/** Prefix of the staging dirs a cold backup makes in the node dir (when no stagingDir is configured). */
export const COLD_BACKUP_STAGING_PREFIX = '.coldbackup-staging-';
/** The restore journal, kept in the node dir while a cold restore swaps the data dir. */
export const RESTORE_JOURNAL_NAME = '.restore-journal.json';

/**
 * Whether node-mgr, or a job of it, puts an entry of this name in a database node's dir: the data
 * dir (and a restore's `<data>.old-*` / `<data>.restore-*`), log/, run/, tmp/, my.cnf, the
 * init marker, the restore journal and backup staging dirs. Anything else is someone else's.
 */
export function isNodeDirEntry(spec: Pick<NodeSpec, 'dir' | 'dataDir'>, name: string): boolean {
  if (['log', 'run', 'tmp', 'my.cnf', path.basename(initMarkerFile(spec)), RESTORE_JOURNAL_NAME, OWNED_MARKER_NAME].includes(name)) return true;
  if (name.startsWith(COLD_BACKUP_STAGING_PREFIX)) return true;
  if (path.dirname(spec.dataDir) !== spec.dir) return false;
  const data = path.basename(spec.dataDir);
  return name === data || name.startsWith(`${data}.old-`) || name.startsWith(`${data}.restore-`);
}

/** Entries of the node dir that node-mgr did not put there (none when the dir does not exist). */
export async function foreignNodeDirEntries(spec: Pick<NodeSpec, 'dir' | 'dataDir'>): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(spec.dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names.filter((name) => !isNodeDirEntry(spec, name)).sort();
}

/** The host clients use to reach the server: its bind address, or loopback when it binds every address. */
export function clientHost(spec: Pick<NodeSpec, 'ip'>): string {
  if (spec.ip === '0.0.0.0' || spec.ip === '') return '127.0.0.1';
  if (spec.ip === '::') return '::1';
  return spec.ip;
}

export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip === 'localhost';
}

/**
 * Throws a sentence naming the first existing ancestor of `target` that runAs cannot enter.
 * We run as root, for whom access() always succeeds, so the mode bits are checked by hand.
 */
export async function assertTraversable(target: string, runAs: RunAs): Promise<void> {
  const groups = await groupsOf(runAs);
  const ancestors: string[] = [];
  for (let p = path.dirname(path.resolve(target)); ; p = path.dirname(p)) {
    ancestors.unshift(p);
    if (p === path.dirname(p)) break;
  }
  for (const dir of ancestors) {
    let st;
    try {
      st = await stat(dir);
    } catch {
      return; // Not created yet: we create it below, owned by runAs.
    }
    const bit = st.uid === runAs.uid ? 0o100 : groups.has(st.gid) ? 0o010 : 0o001;
    if (runAs.uid !== 0 && (st.mode & bit) === 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new Error(
        `${dir} (mode ${mode}, owner uid ${st.uid}) cannot be traversed by the runAs user ${runAs.name}: ` +
          `the server could not reach ${target}; chmod o+x ${dir} or choose another node dir`,
      );
    }
  }
}

/**
 * Creates the node dir tree and hands it to runAs: the node dir and the leaf dirs (data, log,
 * run…) are owned by runAs, dirs above the node dir that did not exist are made root's (0755),
 * so the account cannot swap the node dir. Every dir is opened without following links and
 * owned/chmodded through its descriptor: a link planted where a leaf goes is refused, never
 * followed (see node-files.ts).
 */
export async function prepareNodeDirs(spec: NodeSpec, leafDirs: string[], leafMode = 0o750): Promise<void> {
  const owner = spec.runAs;
  for (const target of [spec.dir, ...leafDirs]) await assertTraversable(target, spec.runAs);
  const existed = await lstat(spec.dir).then(
    () => true,
    () => false,
  );
  const nodeDir = await openDirBeneath(spec.dir, spec.dir, spec.runAs, { mode: 0o755, owner });
  try {
    // What node-mgr made, DROP may take away whole; a dir that was there before keeps existing.
    if (!existed) await createNewFileIn(nodeDir, OWNED_MARKER_NAME, `${spec.id}\n`, 0o644);
  } finally {
    await nodeDir.handle.close();
  }
  for (const leaf of leafDirs) {
    if (rootOf(spec, leaf) === leaf) {
      // A data dir kept outside the node dir is a tree of its own.
      const dir = await openDirBeneath(leaf, leaf, spec.runAs, { mode: leafMode, owner, chownExisting: true });
      await dir.handle.close();
      continue;
    }
    const parent = await openDirBeneath(rootOf(spec, leaf), path.dirname(leaf), spec.runAs, { mode: 0o755, owner });
    try {
      const dir = await openSubdir(parent, path.basename(leaf), { mode: leafMode, owner, chownExisting: true });
      await dir.handle.close();
    } finally {
      await parent.handle.close();
    }
  }
}

// Unix socket paths are limited to 108 bytes (sun_path) including the terminating NUL.
const MAX_SOCKET_PATH = 107;

/** Throws when the node dir is so deep that the server could not create its unix socket. */
export function assertSocketPathFits(socketPath: string): void {
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new Error(`unix socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes: choose a shorter node dir`);
  }
}

/**
 * Runs an init tool (install-db, initdb, postgres --single) to completion as the node's OS user.
 * The admin password never shows in an error: tools echo failing statements.
 */
export async function runAsTool(
  spec: NodeSpec,
  file: string,
  args: string[],
  options: { cwd: string; input?: string; signal?: AbortSignal },
): Promise<string> {
  const result = await execa(file, args, {
    uid: spec.runAs.uid,
    gid: spec.runAs.gid,
    env: serverEnv(spec),
    extendEnv: false,
    cwd: options.cwd,
    input: options.input,
    cancelSignal: options.signal,
    all: true,
    reject: false,
  });
  const output = redact(result.all ?? '', spec.password);
  if (result.failed) {
    const why = result.isCanceled ? 'was cancelled' : `failed (exit ${result.exitCode ?? result.signal})`;
    const tail = toolFailureEvidence(output);
    throw new Error(`${spec.id}: ${path.basename(file)} ${why}:\n${tail}`);
  }
  return output;
}

const PASSED_THROUGH = ['PATH', 'TZ', 'LD_LIBRARY_PATH'];

/**
 * The environment of servers and init tools: node-mgr's own (its tokens, NODE_OPTIONS) does not
 * leak into them, and HOME is the node dir so that no tool reads root's dotfiles.
 */
export function serverEnv(spec: Pick<NodeSpec, 'dir'>, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { LANG: 'C.UTF-8' };
  for (const name of PASSED_THROUGH) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  return { ...env, HOME: spec.dir, ...extra };
}

/** Replaces every occurrence of the secret. */
export function redact(text: string, secret: string): string {
  return secret ? text.split(secret).join('***') : text;
}

/** The error lines of a tool's output (install-db buries them under a page of advice), else its last lines. */
function toolFailureEvidence(output: string): string {
  const lines = output.trim().split('\n');
  const errors = lines.filter((l) => /\bERROR\b|\bFATAL\b|\[ERROR\]|error:/i.test(l));
  return (errors.length ? errors : lines).slice(-15).join('\n');
}

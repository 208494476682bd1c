// What /proc says about a process. Everything node-mgr concludes about a pid (alive, whose it is,
// which port it holds, whether it stopped) comes from here, so every path reads it the same way.
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { readFile, readdir, readlink, stat } from 'node:fs/promises';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type ProcessState = 'running' | 'zombie' | 'gone';

/** Linux reports /proc times in USER_HZ, which is 100 on every architecture node-mgr runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

interface StatFields {
  state: string;
  /** Field 9, the kernel's flags of the process's main thread. */
  flags: number;
  pgrp: number;
  startTicks: number;
}

async function readStat(pid: number): Promise<StatFields | null> {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  return parseStat(text);
}

/**
 * The same read without the thread pool: where a death must be noticed at once (an exit check,
 * the leftover scan), a few microseconds of blocking read beat a queue behind other file I/O,
 * which on a loaded machine costs tens of milliseconds.
 */
function readStatNow(pid: number | string): StatFields | null {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return null;
  }
}

function parseStat(text: string): StatFields {
  // comm (field 2) may contain spaces and parentheses: the fields after it start after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field n is rest[n - 3].
  return { state: rest[0], flags: Number(rest[9 - 3]), pgrp: Number(rest[5 - 3]), startTicks: Number(rest[22 - 3]) };
}

/** 'zombie' covers Z and X: such a process has exited, even though `kill -0` still succeeds. */
export async function processState(pid: number): Promise<ProcessState> {
  const stat = await readStat(pid);
  if (!stat) return 'gone';
  return stat.state === 'Z' || stat.state === 'X' ? 'zombie' : 'running';
}

/** The kernel's PF_EXITING: the thread is inside do_exit, from which nothing returns. */
const PF_EXITING = 0x4;

/**
 * Whether the process has ended or is ending, in one synchronous read (see readStatNow): gone, a
 * zombie, or its main thread already exiting. The last tells a killed server's death as soon as
 * its main thread runs again, before the memory teardown and the socket closes are over (tens of
 * milliseconds for mariadbd on a loaded machine), where waiting for Z needs a timer to fire again.
 * Like Z on the main thread, it is the whole process's end: servers never end their main thread alone.
 */
export function endedOrEndingNow(pid: number): boolean {
  const stat = Number.isInteger(pid) && pid > 0 ? readStatNow(pid) : null;
  return !stat || stat.state === 'Z' || stat.state === 'X' || (stat.flags & PF_EXITING) !== 0;
}

/** True while the process runs; a zombie counts as dead (it is only waiting to be reaped). */
export async function isAlive(pid: number): Promise<boolean> {
  return (await processState(pid)) === 'running';
}

/** Field 22 of /proc/<pid>/stat: clock ticks after boot. Together with the pid it names one process for ever. */
export async function startTime(pid: number): Promise<number | null> {
  return (await readStat(pid))?.startTicks ?? null;
}

/** The process group of pid (field 5), or null when it is gone. */
export async function processGroup(pid: number): Promise<number | null> {
  return (await readStat(pid))?.pgrp ?? null;
}

let bootTimeMs: number | undefined;
async function bootTime(): Promise<number> {
  if (bootTimeMs === undefined) {
    const text = await readFile('/proc/stat', 'utf8');
    const match = /^btime (\d+)$/m.exec(text);
    if (!match) throw new Error('/proc/stat has no btime line');
    bootTimeMs = Number(match[1]) * 1000;
  }
  return bootTimeMs;
}

/** When the process started, as epoch milliseconds (10 ms resolution), to compare with pidfiles. */
export async function startedAtMs(pid: number): Promise<number | null> {
  const ticks = await startTime(pid);
  if (ticks === null) return null;
  return (await bootTime()) + (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** argv of the process, or null when it is gone (a zombie has an empty cmdline: also null). */
export async function cmdline(pid: number): Promise<string[] | null> {
  try {
    return parseCmdline(await readFile(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return null;
  }
}

/** A zombie has an empty cmdline: null, like a process that is gone. */
function parseCmdline(raw: string): string[] | null {
  return raw === '' ? null : raw.replace(/\0$/, '').split('\0');
}

/** The working directory of the process: mariadbd and postgres chdir into their data dir. */
export async function workingDir(pid: number): Promise<string | null> {
  try {
    return await readlink(`/proc/${pid}/cwd`);
  } catch {
    return null;
  }
}

/** Short program name (/proc/<pid>/comm), e.g. `mariadbd`. */
export async function programName(pid: number): Promise<string | null> {
  try {
    return (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
  } catch {
    return null;
  }
}

/** Every pid currently in /proc. */
export async function listPids(): Promise<number[]> {
  const entries = await readdir('/proc');
  return entries.filter((e) => /^\d+$/.test(e)).map(Number);
}

/**
 * The pids of one OS user's processes, zombies included, in one synchronous pass over /proc: one
 * stat() of /proc/<pid> each for its owner, nothing read. The scans for a node's server look
 * only at runAs's processes, and they sit between a crash and its restart: fanned out on the thread
 * pool, these stats and a cmdline read per process took 150–480 ms at a load of 11 on 2 cores.
 */
export function pidsOwnedBy(uid: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    const first = name.charCodeAt(0);
    if (first < 48 || first > 57) continue;
    try {
      if (statSync(`/proc/${name}`).uid === uid) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** cmdline() in one synchronous read, for the same scans. */
export function cmdlineNow(pid: number): string[] | null {
  try {
    return parseCmdline(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
  } catch {
    return null;
  }
}

/** Whether any process (a zombie too) is still in process group pgid: one kill(-pgid, 0). */
export function processGroupExists(pgid: number): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    // EPERM: members exist that we may not signal.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Process group of pid in one synchronous read; null when it is gone or a zombie (it has exited). */
export function liveProcessGroupNow(pid: number): number | null {
  const stat = readStatNow(pid);
  return !stat || stat.state === 'Z' || stat.state === 'X' ? null : stat.pgrp;
}

/** workingDir() in one synchronous readlink; null when unreadable, gone or a zombie (which has no cwd). */
export function workingDirNow(pid: number): string | null {
  return readlinkNow(`/proc/${pid}/cwd`);
}

function readlinkNow(p: string): string | null {
  try {
    return readlinkSync(p);
  } catch {
    return null;
  }
}

const TCP_LISTEN = '0A';

/** Inodes of the sockets listening on port, from /proc/net/tcp and tcp6. */
async function listeningInodes(port: number): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = await readFile(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const localPort = parseInt(cols[1].split(':')[1] ?? '', 16);
      if (localPort === port && cols[3] === TCP_LISTEN && cols[9] !== '0') inodes.add(cols[9]);
    }
  }
  return inodes;
}

export interface PortHolder {
  pid: number;
  program: string;
}

/** Whether a listener could bind host:port now (node sets SO_REUSEADDR, as the servers do). */
function canBind(port: number, host: string): Promise<boolean | 'unknown'> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'EADDRINUSE' ? false : 'unknown'));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * Who listens on a TCP port where a server binding `host` would, so that preflight can say "port
 * 6001 is held by pid 1234 (mariadbd)". A free port is proven by a bind (well under a millisecond);
 * only a taken one is looked up in /proc/net/tcp, which takes ~100 ms on a host with tens of
 * thousands of sockets (TIME_WAIT after a burst of connections). A socket shared by several
 * processes (inherited across fork) is attributed to the lowest pid, which is normally the parent
 * that opened it. Null when nothing listens (or the holder is in another pid namespace).
 */
export async function portHolder(port: number, host = '0.0.0.0'): Promise<PortHolder | null> {
  if ((await canBind(port, host)) === true) return null;
  const inodes = await listeningInodes(port);
  if (inodes.size === 0) return null;
  const wanted = new Set([...inodes].map((i) => `socket:[${i}]`));
  for (const pid of (await listPids()).sort((a, b) => a - b)) {
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = await readlink(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (wanted.has(target)) return { pid, program: (await programName(pid)) ?? '?' };
    }
  }
  return null;
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}

/**
 * Resolves true once pid has exited (gone or zombie), false after timeoutMs.
 * Polls fast at first (a clean stop takes 20–300 ms) and then every 100 ms.
 * Rejects when the AbortSignal fires.
 */
export async function waitForExit(pid: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let interval = 10;
  for (;;) {
    if (signal?.aborted) throw abortError(signal);
    if (!(await isAlive(pid))) return true;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    try {
      await sleep(Math.min(interval, left), undefined, { signal });
    } catch {
      throw abortError(signal!);
    }
    interval = Math.min(interval * 2, 100);
  }
}

/** Sends a signal; a process that is already gone is not an error. */
export function sendSignal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** One rung of a stop ladder: an action (signal, SQL SHUTDOWN…) and how long to wait for the exit. */
export interface StopRung {
  name: string;
  act: () => void | Promise<void>;
  waitMs: number;
}

/**
 * Climbs the rungs in order until pid exits; returns the name of the rung that stopped it
 * (null when it was already gone). A rung whose action throws (e.g. SQL SHUTDOWN cannot connect)
 * is skipped, not fatal. Throws when the process survives the last rung.
 */
export async function climbStopLadder(pid: number, rungs: StopRung[], signal?: AbortSignal): Promise<string | null> {
  if (!(await isAlive(pid))) return null;
  const tried: string[] = [];
  for (const rung of rungs) {
    if (signal?.aborted) throw abortError(signal);
    tried.push(rung.name);
    try {
      await rung.act();
    } catch {
      continue;
    }
    if (await waitForExit(pid, rung.waitMs, signal)) return rung.name;
  }
  const state = (await readStat(pid))?.state ?? '?';
  throw new Error(`pid ${pid} is still alive (state ${state}) after the stop ladder ${tried.join(' → ')}`);
}

export interface PidFile {
  pid: number;
  /** All lines (PostgreSQL's postmaster.pid carries data dir, start time and port too). */
  lines: string[];
  mtimeMs: number;
}

/** Reads a pidfile whose first line is the pid; null when missing or malformed. */
export async function readPidFile(file: string): Promise<PidFile | null> {
  try {
    const [text, st] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    return parsePidFile(text, st.mtimeMs);
  } catch {
    return null;
  }
}

/** A pidfile's text: the pid on its first line; null when malformed. */
export function parsePidFile(text: string, mtimeMs: number): PidFile | null {
  const lines = text.split('\n');
  const pid = Number(lines[0].trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  return { pid, lines, mtimeMs };
}

/**
 * Which of `paths` (absolute, real paths) some process of this host holds open, from the links in
 * /proc/<pid>/fd. Processes whose descriptors node-mgr may not read (another account's, when it is
 * not root) are not seen: a caller deleting what no one holds open must own the directory.
 */
export async function openAmong(paths: ReadonlySet<string>): Promise<Set<string>> {
  const open = new Set<string>();
  if (paths.size === 0) return open;
  for (const pid of await listPids()) {
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => null);
      if (target !== null && paths.has(target)) open.add(target);
    }
    if (open.size === paths.size) break;
  }
  return open;
}

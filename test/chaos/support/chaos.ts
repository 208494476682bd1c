// Shared pieces of the fault and abuse suite: how big a run is, a seeded random source that a
// failing run prints so it can be replayed, /proc readings (RSS, open fds, servers per data dir),
// raw HTTP exchanges, and writers that record the rows the database acknowledged.
import { readFile, readdir, readlink } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import pg from 'pg';

// ---------------------------------------------------------------------------------------------
// Scale

/**
 * `CHAOS_SCALE=full` (npm run test:chaos) runs the whole campaign; anything else, and the default
 * under `npm test`, runs the bounded form. A number scales the bounded form (tuning only).
 */
export const CHAOS_SCALE = process.env.CHAOS_SCALE ?? 'small';
export const FULL = CHAOS_SCALE === 'full';

/** The bounded figure under npm test, the full one under test:chaos. */
export function scaled(small: number, full: number): number {
  if (FULL) return full;
  const factor = Number(CHAOS_SCALE);
  return Number.isFinite(factor) && factor > 0 ? Math.max(1, Math.round(small * factor)) : small;
}

// ---------------------------------------------------------------------------------------------
// Randomness

/** mulberry32: small, fast and seedable, so a failing run can be replayed with CHAOS_SEED. */
export class Rng {
  private state: number;
  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** A seed from CHAOS_SEED or fresh; the test logs it either way. */
export function chaosRng(label: string): Rng {
  const seed = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
  console.log(`[chaos] ${label}: CHAOS_SCALE=${CHAOS_SCALE} CHAOS_SEED=${seed}`);
  return new Rng(seed);
}

// ---------------------------------------------------------------------------------------------
// /proc

/** VmRSS of a process in bytes, or null when it is gone. */
export async function rssBytes(pid: number): Promise<number | null> {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** How many file descriptors a process holds open (sockets, files, pipes). */
export async function openFds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

export async function isAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Server processes working on a data dir: processes whose cwd is the dir and whose argv[0] is one
 * of the server programs (mariadbd chdirs into its data dir; a postmaster runs in it, and its
 * backends rename their argv to "postgres: …"), whose parent is not itself working in that dir (a
 * backend forked a moment ago still carries the postmaster's argv). Zombies do not count.
 */
export async function serversOnDataDir(dataDir: string, programs: readonly string[]): Promise<number[]> {
  return (await serverEvidence(dataDir, programs)).map((s) => s.pid);
}

export interface ServerSighting {
  pid: number;
  ppid: number;
  cmdline: string;
}

async function parentPid(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

export async function serverEvidence(dataDir: string, programs: readonly string[]): Promise<ServerSighting[]> {
  const found: ServerSighting[] = [];
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return found;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    try {
      if ((await readlink(`/proc/${pid}/cwd`)) !== dataDir) continue;
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      if (!programs.includes(path.basename(argv[0] ?? ''))) continue;
      const ppid = await parentPid(pid);
      if (ppid === null) continue;
      const parentCwd = await readlink(`/proc/${ppid}/cwd`).catch(() => null);
      if (parentCwd === dataDir) continue;
      if (await isAlive(pid)) found.push({ pid, ppid, cmdline: argv.join(' ').trim() });
    } catch {
      /* gone or not ours to read */
    }
  }
  return found;
}

/** SIGKILLs every process working under `root` (a test's temp tree): servers a failed test left behind. */
export async function killProcessesUnder(root: string): Promise<number[]> {
  const killed: number[] = [];
  for (const e of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const cwd = await readlink(`/proc/${e}/cwd`).catch(() => null);
    if (cwd && (cwd === root || cwd.startsWith(`${root}/`))) {
      try {
        process.kill(Number(e), 'SIGKILL');
        killed.push(Number(e));
      } catch {
        /* gone */
      }
    }
  }
  return killed;
}

export const MYSQL_SERVERS = ['mariadbd', 'mysqld'] as const;
export const PG_SERVERS = ['postgres'] as const;

/**
 * Samples /proc while faults are injected and remembers the most servers ever seen on each data
 * dir at once. Stops by itself after maxMs, whatever the caller does.
 */
/** A process working in a data dir: a server, a child of one (renamed `postgres: …` or not yet), a leftover. */
export interface DataDirProcess {
  pid: number;
  ppid: number;
  cmdline: string;
}

/** Every process of a database server in the data dir: cwd is the dir and argv[0] is a server program or a renamed PostgreSQL child. */
export async function dataDirProcesses(dataDir: string, programs: readonly string[]): Promise<DataDirProcess[]> {
  const found: DataDirProcess[] = [];
  for (const e of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    try {
      if ((await readlink(`/proc/${pid}/cwd`)) !== dataDir) continue;
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      const argv0 = argv[0] ?? '';
      if (!programs.includes(path.basename(argv0)) && !argv0.startsWith('postgres:')) continue;
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      found.push({ pid, ppid: Number(fields[1]), cmdline: argv.join(' ').trim().slice(0, 120) });
    } catch {
      /* gone */
    }
  }
  return found;
}

/**
 * How many server instances work on the data dir at once, as far as it matters: the servers
 * node-mgr spawned (its children), plus one when anything else (leftovers of a killed server, a
 * stray server) runs there beside a server. PostgreSQL's children are their own process groups
 * (setsid), so the tree is read from parent pids. Leftovers alone, while node-mgr reaps them and
 * before it starts the next server, are not a second server.
 */
export function serverInstances(procs: DataDirProcess[], managerPid: number): number {
  const servers = procs.filter((p) => p.ppid === managerPid);
  if (servers.length === 0) return 0;
  const ours = new Set(servers.map((s) => s.pid));
  const others = procs.filter((p) => !ours.has(p.pid) && !ours.has(p.ppid));
  return servers.length + (others.length > 0 ? 1 : 0);
}

export class DataDirWatch {
  readonly max = new Map<string, number>();
  /** What /proc showed whenever a data dir had processes of more than one server instance. */
  readonly evidence: string[] = [];
  readonly samples = { count: 0 };
  private stopped = false;
  private readonly done: Promise<void>;
  constructor(managerPid: number, dirs: Array<{ dataDir: string; programs: readonly string[] }>, intervalMs = 25, maxMs = 30 * 60_000) {
    for (const d of dirs) this.max.set(d.dataDir, 0);
    const deadline = Date.now() + maxMs;
    this.done = (async () => {
      while (!this.stopped && Date.now() < deadline) {
        for (const d of dirs) {
          const seen = await dataDirProcesses(d.dataDir, d.programs);
          let instances = serverInstances(seen, managerPid);
          // /proc is read one process at a time: a server killed during the scan leaves its children
          // looking orphaned beside it. A sighting counts only if every process in it still lives.
          if (instances > 1 && !(await Promise.all(seen.map((p) => isAlive(p.pid)))).every(Boolean)) instances = 1;
          if (instances > 1 && this.evidence.length < 20) this.evidence.push(`${d.dataDir}: ${JSON.stringify(seen)}`);
          if (instances > (this.max.get(d.dataDir) ?? 0)) this.max.set(d.dataDir, instances);
        }
        this.samples.count++;
        await sleep(intervalMs);
      }
    })();
  }
  async stop(): Promise<Map<string, number>> {
    this.stopped = true;
    await this.done;
    return this.max;
  }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits the bytes a server sent into responses (Content-Length framed, as node-mgr frames them). */
export function parseResponses(buf: Buffer): { responses: RawResponse[]; rest: Buffer } {
  const responses: RawResponse[] = [];
  let off = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const head = buf.subarray(off, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '');
    if (!m) break;
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    // An interim reply (100 Continue) has no body and is not the answer.
    if (m[1]!.startsWith('1')) {
      off = end + 4;
      continue;
    }
    const len = Number(headers['content-length'] ?? 0);
    if (end + 4 + len > buf.length) break;
    responses.push({ status: Number(m[1]), headers, body: buf.subarray(end + 4, end + 4 + len).toString('utf8') });
    off = end + 4 + len;
  }
  return { responses, rest: buf.subarray(off) };
}

export interface RawExchange {
  responses: RawResponse[];
  /** Bytes after the last whole response (a reply that is not Content-Length framed shows here). */
  trailing: string;
  /** The server closed the connection (rather than our timeout ending the exchange). */
  closedByServer: boolean;
  timedOut: boolean;
}

/**
 * Writes `chunks` (with `gapMs` between them), then reads until the server closes, `expect`
 * responses have arrived, or `timeoutMs` passes; always destroys the socket at the end.
 */
export function rawExchange(
  port: number,
  chunks: Array<Buffer | string>,
  opts: { expect?: number; timeoutMs?: number; gapMs?: number; halfClose?: boolean } = {},
): Promise<RawExchange> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    const received: Buffer[] = [];
    let closedByServer = false;
    let timedOut = false;
    let settled = false;
    const sock = net.connect(port, '127.0.0.1');
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      const { responses, rest } = parseResponses(Buffer.concat(received));
      resolve({ responses, trailing: rest.toString('latin1'), closedByServer, timedOut });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      finish();
    }, timeoutMs);
    sock.on('connect', async () => {
      for (let i = 0; i < chunks.length; i++) {
        if (sock.destroyed) return;
        sock.write(chunks[i]!);
        if (opts.gapMs && i < chunks.length - 1) await sleep(opts.gapMs);
      }
      if (opts.halfClose) sock.end();
    });
    sock.on('data', (d) => {
      received.push(d);
      if (opts.expect !== undefined && parseResponses(Buffer.concat(received)).responses.length >= opts.expect) finish();
    });
    sock.on('error', () => finish());
    sock.on('close', () => {
      closedByServer = !timedOut;
      finish();
    });
  });
}

/** What every error reply must be: JSON `{"result":"error","info":"<one sentence>"}`. */
export function errorShapeProblem(r: RawResponse | { status: number; body: string }): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.body);
  } catch {
    return `HTTP ${r.status} with a body that is not JSON: ${JSON.stringify(r.body.slice(0, 120))}`;
  }
  const b = parsed as { result?: unknown; info?: unknown };
  if (r.status >= 400) {
    if (b.result !== 'error') return `HTTP ${r.status} without result "error": ${r.body.slice(0, 160)}`;
    if (typeof b.info !== 'string' || b.info.trim() === '') return `HTTP ${r.status} without an info sentence: ${r.body.slice(0, 160)}`;
    if (/\n/.test(b.info)) return `HTTP ${r.status} with a multi-line info: ${r.body.slice(0, 160)}`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Writers that remember what the database acknowledged

export interface AckWriter {
  /** Ids whose INSERT the server acknowledged (autocommit: committed). */
  acked: number[];
  /** Inserts that failed (connection lost, server down); their rows may or may not exist. */
  failures: number;
  stop(): Promise<void>;
}

/**
 * Inserts ids 1, 2, 3… one at a time with autocommit, reconnecting after any failure, until
 * stopped or maxMs has passed. Only an id whose INSERT returned OK is recorded.
 */
export function mysqlAckWriter(opts: AckWriterOptions): AckWriter {
  return ackWriter(opts, async () => {
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: opts.port, user: opts.user, password: opts.password, connectTimeout: 2000 });
    return {
      insert: async (id) => void (await conn.query(`INSERT INTO ${opts.table} (id) VALUES (?)`, [id])),
      close: async () => conn.destroy(),
    };
  });
}

export function pgAckWriter(opts: AckWriterOptions): AckWriter {
  return ackWriter(opts, async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: opts.port, user: opts.user, password: opts.password, database: 'postgres', connectionTimeoutMillis: 2000 });
    c.on('error', () => {});
    await c.connect().catch((err) => {
      void c.end().catch(() => {});
      throw err;
    });
    return {
      insert: async (id) => void (await c.query(`INSERT INTO ${opts.table} (id) VALUES ($1)`, [id])),
      close: () => c.end().catch(() => {}),
    };
  });
}

interface AckWriterOptions {
  port: number;
  user: string;
  password: string;
  table: string;
  maxMs?: number;
}

interface WriterSession {
  insert(id: number): Promise<void>;
  close(): Promise<void>;
}

/** The insert loop both writers share; `connect` opens one session of the database's client. */
function ackWriter(opts: AckWriterOptions, connect: () => Promise<WriterSession>): AckWriter {
  const state: AckWriter & { stopped: boolean } = {
    acked: [],
    failures: 0,
    stopped: false,
    async stop() {
      state.stopped = true;
      await loop;
    },
  };
  const deadline = Date.now() + (opts.maxMs ?? 30 * 60_000);
  const loop = (async () => {
    let id = 0;
    let session: WriterSession | null = null;
    while (!state.stopped && Date.now() < deadline) {
      try {
        session ??= await connect();
        const next = id + 1;
        await session.insert(next);
        id = next;
        state.acked.push(next);
      } catch {
        state.failures++;
        // The INSERT may have committed before the connection broke: never reuse that id.
        id++;
        void session?.close();
        session = null;
        await sleep(50);
      }
    }
    await session?.close();
  })();
  return state;
}

/** Polls `check` until it returns a value (not undefined) or the time is up. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
}

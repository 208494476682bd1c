// The 20 real database nodes the benchmarks supervise: 10 MariaDB (2 meta + 8 storage, tiny
// buffer pools) and 10 PostgreSQL computing nodes. Their data dirs are initialised once, by
// node-mgr itself (POST /v1/nodes/:port/create), and kept under .cache/bench/fleet (git-ignored):
// a data dir does not care which port it serves on, so each run hands out fresh free ports.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import type { NodeSpec } from '../../src/engines/node-spec.ts';
import { engineFor } from '../../src/engines/index.ts';
import { cmdline, processState } from '../../src/host/process-info.ts';
import { lookupRunAs } from '../../src/host/run-as.ts';
import { resolveSpec } from '../../src/engines/node-spec.ts';
import { TEST_RUN_AS } from '../../test/support/nodes.ts';
import { api, startNodeMgrProcess } from '../../test/support/node-mgr-process.ts';
import { envInt, ROOT, sleep } from './report.ts';

export const FLEET_DIR = path.resolve(process.env.BENCH_FLEET_DIR ?? path.join(ROOT, '.cache/bench/fleet'));
const FLEET_VERSION = 1;

export const BENCH_USER = 'bench';
export const BENCH_PASSWORD = 'bench_pwd';

export type FleetKind = 'mysql' | 'postgres';

export interface FleetMember {
  name: string;
  kind: FleetKind;
  role: 'meta' | 'storage' | 'computer';
  dir: string;
}

/** A node entry of a node-mgr config, as plain JSON. */
export interface BenchEntry {
  kind: 'mysql' | 'postgres' | 'cluster_mgr';
  role: string;
  port: number;
  dir: string;
  user?: string;
  password?: string;
  cluster?: string;
  shard?: string;
  serverOptions?: Record<string, string | number | boolean>;
  command?: string[];
  pidFile?: string;
  healthUrl?: string;
  policy?: Record<string, Record<string, number>>;
}

// Small enough that 20 servers idle on a 2-core, shared machine; the options are written into the
// server's own config by node-mgr at every start, so they are also what a real deployment would set.
const MYSQL_OPTIONS = { innodb_buffer_pool_size: '8M', innodb_log_file_size: '8M', innodb_log_buffer_size: '1M', max_connections: 40, key_buffer_size: '1M' };
const POSTGRES_OPTIONS = { shared_buffers: '16MB', max_connections: 30 };

export function fleetMembers(mysqlCount = envInt('BENCH_MYSQL_NODES', 10), postgresCount = envInt('BENCH_POSTGRES_NODES', 10)): FleetMember[] {
  const pad = (i: number) => String(i).padStart(2, '0');
  const members: FleetMember[] = [];
  for (let i = 0; i < mysqlCount; i++) {
    members.push({ name: `mysql-${pad(i)}`, kind: 'mysql', role: i < 2 ? 'meta' : 'storage', dir: path.join(FLEET_DIR, `mysql-${pad(i)}`) });
  }
  for (let i = 0; i < postgresCount; i++) {
    members.push({ name: `postgres-${pad(i)}`, kind: 'postgres', role: 'computer', dir: path.join(FLEET_DIR, `postgres-${pad(i)}`) });
  }
  return members;
}

const FORBIDDEN_PORTS = new Set([3306, 5432]);
const handedOut = new Set<number>();

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A port free on 127.0.0.1, below the kernel's ephemeral range (32768–60999). Ports from
 * `listen(0)` come from that range, which outgoing connections also draw from: on this shared
 * machine a server started a few seconds later found "its" port taken by someone's client
 * socket. Below the range only another listener can collide.
 */
export async function benchPort(): Promise<number> {
  for (let i = 0; i < 1000; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (FORBIDDEN_PORTS.has(port) || handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port found between 20000 and 32000');
}

/** A config entry for a member on a port. */
export function entryFor(m: FleetMember, port: number, policy?: BenchEntry['policy']): BenchEntry {
  const shardOf = (name: string) => `shard${(Number(name.slice(-2)) % 4) + 1}`;
  const entry: BenchEntry = {
    kind: m.kind,
    role: m.role,
    port,
    dir: m.dir,
    user: BENCH_USER,
    password: BENCH_PASSWORD,
    cluster: 'bench_cluster',
    serverOptions: m.kind === 'mysql' ? MYSQL_OPTIONS : POSTGRES_OPTIONS,
  };
  if (m.role === 'storage') entry.shard = shardOf(m.name);
  if (policy) entry.policy = policy;
  return entry;
}

/** Entries for every member, each on a fresh free port. */
export async function fleetEntries(members: FleetMember[], policyOf: (m: FleetMember) => BenchEntry['policy'] = () => undefined): Promise<BenchEntry[]> {
  const entries: BenchEntry[] = [];
  for (const m of members) entries.push(entryFor(m, await benchPort(), policyOf(m)));
  return entries;
}

/** A node-mgr config for a bench run: loopback only, runAs the test user, state in `stateDir`. */
export async function benchConfig(stateDir: string, nodes: BenchEntry[], extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  return {
    listen: { host: '127.0.0.1', port: await benchPort() },
    stateDir,
    runAs: TEST_RUN_AS,
    nodes,
    ...extra,
  };
}

interface FleetFile {
  version: number;
  created: string;
  members: string[];
}

function readFleetFile(): FleetFile | null {
  try {
    const f = JSON.parse(readFileSync(path.join(FLEET_DIR, 'fleet.json'), 'utf8')) as FleetFile;
    return f.version === FLEET_VERSION ? f : null;
  } catch {
    return null;
  }
}

/**
 * Makes sure every member's data dir is initialised, creating the missing ones through node-mgr
 * (two at a time: the machine has 2 cores). Servers are left stopped. Returns the seconds spent.
 */
export async function ensureFleet(members: FleetMember[]): Promise<number> {
  await reapFleet(members);
  const known = new Set(readFleetFile()?.members ?? []);
  const missing = members.filter((m) => !known.has(m.name) || !existsSync(m.dir));
  if (missing.length === 0) return 0;
  const started = Date.now();
  console.log(`    initialising ${missing.length} fleet node(s) under ${path.relative(ROOT, FLEET_DIR) || FLEET_DIR} (once; later runs reuse them)…`);
  await mkdir(FLEET_DIR, { recursive: true });
  // The runAs user must traverse every ancestor of the node dirs.
  await chmod(FLEET_DIR, 0o755);
  for (const m of missing) await rm(m.dir, { recursive: true, force: true });
  const stateDir = path.join(FLEET_DIR, '.create-state');
  await rm(stateDir, { recursive: true, force: true });
  const entries = await fleetEntries(missing);
  const mgr = await startNodeMgrProcess(stateDir, await benchConfig(stateDir, entries, { stopNodesOnExit: true }));
  try {
    const queue = [...entries];
    const worker = async () => {
      for (let e = queue.shift(); e; e = queue.shift()) {
        const r = await api(mgr.url, 'POST', `/v1/nodes/${e.port}/create`);
        if (r.status !== 200) throw new Error(`creating fleet node ${e.dir} failed: HTTP ${r.status} ${r.text}`);
      }
    };
    await Promise.all([worker(), worker()]);
  } finally {
    // stopNodesOnExit: SIGTERM stops every server through its stop ladder.
    await mgr.stop('SIGTERM');
    await reapFleet(members);
  }
  await rm(stateDir, { recursive: true, force: true });
  const file: FleetFile = { version: FLEET_VERSION, created: new Date().toISOString(), members: [...new Set([...known, ...missing.map((m) => m.name)])] };
  writeFileSync(path.join(FLEET_DIR, 'fleet.json'), JSON.stringify(file, null, 2) + '\n');
  const s = (Date.now() - started) / 1000;
  console.log(`    fleet initialised in ${s.toFixed(0)} s`);
  return s;
}

/** Pidfiles a member's server may have left: the server's own and node-mgr's record of its spawn. */
function pidFilesOf(m: FleetMember): string[] {
  const own = m.kind === 'mysql' ? path.join(m.dir, 'run/mysqld.pid') : path.join(m.dir, 'data/postmaster.pid');
  return [own, path.join(m.dir, 'run/spawned.pid')];
}

function pidIn(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]!.trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Stops servers a previous (interrupted) bench left running on the fleet's data dirs: a server
 * whose argv names the member's dir gets a clean-stop signal, then SIGKILL after 15 s.
 */
export async function reapFleet(members: FleetMember[]): Promise<number> {
  const victims: number[] = [];
  for (const m of members) {
    for (const file of pidFilesOf(m)) {
      const pid = pidIn(file);
      if (pid === null || victims.includes(pid)) continue;
      const argv = await cmdline(pid);
      if (argv && argv.some((a) => a.includes(m.dir))) {
        victims.push(pid);
        // mariadbd shuts down cleanly on SIGTERM; SIGINT is postgres' fast shutdown.
        process.kill(pid, m.kind === 'mysql' ? 'SIGTERM' : 'SIGINT');
      }
    }
  }
  const deadline = Date.now() + 15_000;
  for (const pid of victims) {
    while ((await processState(pid)) === 'running' && Date.now() < deadline) await sleep(50);
    if ((await processState(pid)) === 'running') process.kill(pid, 'SIGKILL');
  }
  return victims.length;
}

const specs = new Map<string, NodeSpec>();

/** The NodeSpec node-mgr makes of an entry, with the given probe timeout (kept: polls call this often). */
function specOf(e: BenchEntry, timeoutMs: number): NodeSpec {
  const key = `${e.kind}:${e.port}:${e.dir}:${timeoutMs}`;
  let spec = specs.get(key);
  if (!spec) {
    const config = parseConfig({ runAs: TEST_RUN_AS, nodes: [{ ...e, policy: { ...e.policy, probe: { ...e.policy?.probe, timeoutMs } } }] });
    spec = resolveSpec(config, config.nodes[0]!, lookupRunAs(TEST_RUN_AS));
    specs.set(key, spec);
  }
  return spec;
}

/** One `SELECT 1` on a fresh connection, as node-mgr's own probe does it; throws when the server does not answer. */
export async function selectOne(e: BenchEntry, timeoutMs = 1000): Promise<void> {
  const spec = specOf(e, timeoutMs);
  await engineFor(spec.kind).probe(spec, AbortSignal.timeout(timeoutMs * 2));
}

/** Polls SELECT 1 every `everyMs` until it works; resolves Date.now() of the first success. */
export async function waitForSql(e: BenchEntry, timeoutMs = 120_000, everyMs = 10): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      await selectOne(e, 1000);
      return Date.now();
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${e.kind} on port ${e.port} did not answer SELECT 1 within ${timeoutMs} ms (last: ${last})`);
    await sleep(everyMs);
  }
}

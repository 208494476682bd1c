// Recovery figure, with the 20 real nodes of the fleet supervised:
//   - kill -9 of mariadbd / postgres → the server accepts SQL again (several rounds, median): with
//     the default policy, of a stable server (up longer than stableAfterMs: the chart restarts it
//     at once) and of a young one (crashed again within stableAfterMs: the 1 s backoff), and with a
//     1 ms backoff; baseline: the raw server respawned from the same data dir, with node-mgr's own
//     argv (engine.launchPlan), the moment it died;
//   - exit → `crashed` detection, for a child and for an adopted server (after a node-mgr restart);
//     baseline: a bare Node parent's 'exit' event for a killed child;
//   - start → ready (POST /v1/nodes/:port/start round trip) vs the raw server's spawn → SELECT 1;
//   - adoption of the 20 running servers at node-mgr start vs node-mgr starting with no node.
//
//   node --import tsx bench/recovery.ts        BENCH_ROUNDS=5
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../src/config/load.ts';
import { engineFor } from '../src/engines/index.ts';
import { processState, sendSignal } from '../src/host/process-info.ts';
import { spawnServer } from '../src/supervisor/spawn.ts';
import { lookupRunAs } from '../src/host/run-as.ts';
import { resolveSpec } from '../src/engines/node-spec.ts';
import type { NodeSpec } from '../src/engines/node-spec.ts';
import { TEST_RUN_AS } from '../test/support/nodes.ts';
import { benchConfig, ensureFleet, fleetEntries, fleetMembers, reapFleet, selectOne, waitForSql, type BenchEntry, type FleetMember } from './support/fleet.ts';
import { api, logRecords, onCleanup, runBench, startNodeMgrProcess, waitAllRunning, type NodeMgrProcess } from './support/node-mgr.ts';
import { cpuSample } from './support/proc.ts';
import { envInt, median, printFooter, printHeader, ratio, RUN_ID, saveResults, sleep, spread, table } from './support/report.ts';

const ROUNDS = envInt('BENCH_ROUNDS', 5);
const ADOPT_ROUNDS = envInt('BENCH_ADOPT_ROUNDS', Math.min(ROUNDS, 5));
/** A run this long resets the backoff exponent (stableAfterMs), so every round starts at attempt 0. */
const STABLE_MS = 1000;

const DEFAULT_BACKOFF = { maxRestarts: 1000, stableAfterMs: STABLE_MS };
const FAST_BACKOFF = { initialDelayMs: 1, jitter: 0, maxRestarts: 1000, stableAfterMs: STABLE_MS };

interface Transition {
  from: string | null;
  to: string;
  event: string;
  at: number;
}

interface NodeView {
  state: string;
  pid: number | null;
  since: string;
  adopted: boolean;
  restarts: number;
  lastError: string | null;
  lastExit: { at: number } | null;
  transitions: Transition[];
}

async function nodeView(url: string, port: number): Promise<NodeView> {
  const r = await api<NodeView>(url, 'GET', `/v1/nodes/${port}`);
  if (r.status !== 200) throw new Error(`GET /v1/nodes/${port} answered ${r.status}: ${r.text}`);
  return r.body;
}

async function waitView(url: string, port: number, pred: (n: NodeView) => boolean, timeoutMs = 120_000): Promise<NodeView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = await nodeView(url, port);
    if (pred(n)) return n;
    if (Date.now() > deadline) throw new Error(`node ${port} did not get there within ${timeoutMs} ms: ${n.state} ${n.lastError ?? ''}`);
    await sleep(20);
  }
}

async function waitGone(pid: number, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while ((await processState(pid)) === 'running') {
    if (Date.now() > deadline) throw new Error(`pid ${pid} still alive ${timeoutMs} ms after SIGKILL`);
    await sleep(1);
  }
  return Date.now();
}

/** Waits for a running node that has been up for longer than stableAfterMs (backoff exponent back to 0). */
async function waitStable(url: string, port: number): Promise<NodeView> {
  const n = await waitView(url, port, (x) => x.state === 'running' && x.pid !== null);
  const wait = Date.parse(n.since) + STABLE_MS + 250 - Date.now();
  if (wait > 0) await sleep(wait);
  return n;
}

interface KillRound {
  /** kill → SELECT 1 works again. */
  sqlMs: number;
  /** kill → the exit time node-mgr puts on PROCESS_EXITED (lastExit.at); null when the round crashed more than once. */
  exitSeenMs: number | null;
  /** kill → node-mgr's `crashed` transition. */
  crashedMs: number;
  /** kill → node-mgr's `running` transition. */
  runningMs: number;
  /** Crashes seen in the round (more than 1: the restarted server died again, e.g. postgres' old shared memory). */
  crashes: number;
  /** The node went through `backoff` before its restart (a stable server is restarted at once). */
  backedOff: boolean;
  timeline: string;
}

/**
 * kill -9 of the node's server, then the clock until SQL works and until node-mgr says running.
 * `young`: the kill comes as soon as the node runs (within stableAfterMs of its start, unless the
 * machine is very slow: the "restarted without a backoff" row then shows it), else once it has
 * run longer than that.
 */
async function killRound(url: string, e: BenchEntry, opts: { young?: boolean } = {}): Promise<KillRound> {
  const before = opts.young ? await waitView(url, e.port, (x) => x.state === 'running' && x.pid !== null) : await waitStable(url, e.port);
  const pid = before.pid!;
  const t0 = Date.now();
  process.kill(pid, 'SIGKILL');
  await waitGone(pid);
  const tSql = await waitForSql(e, 120_000, 10);
  const after = await waitView(url, e.port, (x) => x.state === 'running' && x.pid !== pid && x.pid !== null);
  const since = after.transitions.filter((t) => t.at >= t0).reverse();
  const crashed = since.find((t) => t.to === 'crashed');
  const running = [...since].reverse().find((t) => t.to === 'running');
  if (!crashed || !running) throw new Error(`node ${e.port}: no crashed/running transitions after the kill: ${JSON.stringify(since)}`);
  const crashes = since.filter((t) => t.to === 'crashed').length;
  return {
    sqlMs: tSql - t0,
    exitSeenMs: crashes === 1 && after.lastExit ? after.lastExit.at - t0 : null,
    crashedMs: crashed.at - t0,
    runningMs: running.at - t0,
    crashes,
    backedOff: since.some((t) => t.to === 'backoff'),
    timeline: since.map((t) => `${t.to}+${t.at - t0}`).join(' '),
  };
}

/** The raw server, spawned by node-mgr's own spawnServer (launchPlan, runAs, env, cwd, log fd), no actor around it. */
interface RawServer {
  pid: number;
  /** performance.now() of the exit: how fast a bare parent learns of the death. */
  exited: Promise<number>;
}

async function spawnRaw(spec: NodeSpec): Promise<RawServer> {
  const server = await spawnServer(spec, engineFor(spec.kind).launchPlan(spec));
  return { pid: server.pid, exited: server.exit.then(() => performance.now()) };
}

/**
 * Spawns the raw server and waits for SELECT 1; a server that dies before it answers (postgres
 * refuses to start while the killed postmaster's children still hold its shared memory) is
 * respawned at once — a zero-delay supervisor. Resolves when SQL works.
 */
async function rawUntilSql(spec: NodeSpec, e: BenchEntry): Promise<RawServer & { spawnedAt: number; sqlAt: number; respawns: number }> {
  let respawns = 0;
  for (;;) {
    const spawnedAt = Date.now();
    const raw = await spawnRaw(spec);
    let dead = false;
    void raw.exited.then(() => (dead = true));
    const deadline = Date.now() + 120_000;
    while (!dead) {
      try {
        await selectOne(e, 1000);
        return { ...raw, spawnedAt, sqlAt: Date.now(), respawns };
      } catch {
        if (Date.now() > deadline) throw new Error(`raw ${spec.id} did not answer SQL within 120 s`);
        await sleep(10);
      }
    }
    respawns++;
    if (respawns > 500) throw new Error(`raw ${spec.id} kept dying at start (${respawns} times)`);
  }
}

async function cleanStopRaw(spec: NodeSpec, raw: RawServer): Promise<void> {
  // mariadbd shuts down cleanly on SIGTERM; SIGINT is postgres' fast shutdown.
  process.kill(raw.pid, spec.kind === 'mysql' ? 'SIGTERM' : 'SIGINT');
  await raw.exited;
}

interface RawFigures {
  /** Clean data dir: spawn → SELECT 1. */
  cleanStartMs: number[];
  /** kill -9 → respawned at once → SELECT 1. */
  killToSqlMs: number[];
  /** Of which the last spawn → SELECT 1 (crash recovery included). */
  spawnToSqlMs: number[];
  respawns: number[];
  /** kill -9 → the bare parent's 'exit' event. */
  exitEventMs: number[];
}

/** The floor: the raw server on the same data dir, node-mgr out of the way (node stopped). */
async function rawBaseline(url: string, spec: NodeSpec, e: BenchEntry): Promise<RawFigures> {
  const stopped = await api(url, 'POST', `/v1/nodes/${e.port}/stop`);
  if (stopped.status !== 200) throw new Error(`stop of ${spec.id} for the raw baseline failed: ${stopped.text}`);
  const out: RawFigures = { cleanStartMs: [], killToSqlMs: [], spawnToSqlMs: [], respawns: [], exitEventMs: [] };
  let raw: Awaited<ReturnType<typeof rawUntilSql>> | null = null;
  onCleanup(() => {
    if (raw) sendSignal(raw.pid, 'SIGKILL');
  });
  try {
    for (let r = 0; r < ROUNDS; r++) {
      raw = await rawUntilSql(spec, e);
      out.cleanStartMs.push(raw.sqlAt - raw.spawnedAt);
      await cleanStopRaw(spec, raw);
    }
    raw = await rawUntilSql(spec, e);
    for (let r = 0; r < ROUNDS; r++) {
      // Same rhythm as node-mgr's rounds: the server has run for a while before it is killed.
      await sleep(Math.max(0, raw.sqlAt + STABLE_MS + 250 - Date.now()));
      const t0 = Date.now();
      const p0 = performance.now();
      process.kill(raw.pid, 'SIGKILL');
      out.exitEventMs.push((await raw.exited) - p0);
      raw = await rawUntilSql(spec, e);
      out.killToSqlMs.push(raw.sqlAt - t0);
      out.spawnToSqlMs.push(raw.sqlAt - raw.spawnedAt);
      out.respawns.push(raw.respawns);
    }
    await cleanStopRaw(spec, raw);
    raw = null;
  } finally {
    if (raw) sendSignal(raw.pid, 'SIGKILL');
  }
  const started = await api(url, 'POST', `/v1/nodes/${e.port}/start`);
  if (started.status !== 200) throw new Error(`node-mgr could not take ${spec.id} back after the raw baseline: ${started.text}`);
  return out;
}

/** POST start round trips from a cleanly stopped node. */
async function startRoundTrips(url: string, e: BenchEntry, timelines: string[]): Promise<number[]> {
  const out: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    await waitStable(url, e.port);
    const stopped = await api(url, 'POST', `/v1/nodes/${e.port}/stop`);
    if (stopped.body?.state !== 'stopped') throw new Error(`stop of node ${e.port} failed: ${stopped.text}`);
    const wall0 = Date.now();
    const t0 = performance.now();
    const started = await api(url, 'POST', `/v1/nodes/${e.port}/start`);
    const ms = performance.now() - t0;
    if (started.body?.state !== 'running') throw new Error(`start of node ${e.port} failed: ${started.text}`);
    // It said running: SQL must work now, or the figure would flatter us.
    await selectOne(e, 2000);
    out.push(ms);
    const view = await nodeView(url, e.port);
    timelines.push(view.transitions.filter((t) => t.at >= wall0).reverse().map((t) => `${t.to}+${t.at - wall0}`).join(' '));
  }
  return out;
}

interface AdoptRound {
  servingMs: number;
  /** node-mgr's CPU-seconds (user + system) from spawn to its 'serving' line: the machine's load stretches wall time, much less this. */
  servingCpuS: number;
  allRunningMs: number;
  firstAdoptMs: number;
  adopted: number;
}

/** Starts node-mgr on the same state dir and times the adoption of every running server from its log. */
async function adoptRound(mgrDir: string, config: Record<string, unknown>, count: number): Promise<{ mgr: NodeMgrProcess; round: AdoptRound }> {
  const t0 = Date.now();
  const mgr = await startNodeMgrProcess(mgrDir, config, 180_000);
  const servingMs = Date.now() - t0;
  const servingCpuS = cpuSample(mgr.pid).self;
  const adoptions = logRecords(mgr).filter((r) => r.msg === 'node transition' && r.from === 'adopting' && r.to === 'running');
  const times = adoptions.map((r) => r.time - t0);
  const round = { servingMs, servingCpuS, allRunningMs: Math.max(...times), firstAdoptMs: Math.min(...times), adopted: adoptions.length };
  if (adoptions.length !== count) {
    const others = logRecords(mgr).filter((r) => r.msg === 'node transition' && r.from === 'adopting' && r.to !== 'running');
    // This node-mgr is not the caller's `mgr` yet: its clean-up would not stop it.
    await mgr.stop('SIGTERM');
    throw new Error(`only ${adoptions.length} of ${count} nodes were adopted: ${others.map((r) => `${r.node} → ${r.to}`).join(', ')}`);
  }
  return { mgr, round };
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const machine = printHeader('recovery', `kill -9 → SQL, crash detection, start → ready, adoption of 20 nodes (${ROUNDS} rounds)`);
  const members = fleetMembers();
  const fleetInitS = await ensureFleet(members);
  onCleanup(async () => {
    await reapFleet(members);
  });

  const targets: Record<string, FleetMember> = {
    mysqlDefault: members.find((m) => m.name === 'mysql-02')!,
    mysqlFast: members.find((m) => m.name === 'mysql-03')!,
    pgDefault: members.find((m) => m.name === 'postgres-00')!,
    pgFast: members.find((m) => m.name === 'postgres-01')!,
  };
  const policyOf = (m: FleetMember) =>
    m === targets.mysqlFast || m === targets.pgFast ? { restart: FAST_BACKOFF } : m === targets.mysqlDefault || m === targets.pgDefault ? { restart: DEFAULT_BACKOFF } : undefined;
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'nm-bench-recovery-'));
  onCleanup(() => rm(stateDir, { recursive: true, force: true }));
  const entries = await fleetEntries(members, policyOf);
  const entryOf = (m: FleetMember) => entries.find((e) => e.dir === m.dir)!;
  const config = await benchConfig(path.join(stateDir, 'state'), entries, { stopNodesOnExit: true });
  const mgrDir = path.join(stateDir, 'mgr');
  let mgr = await startNodeMgrProcess(mgrDir, config, 180_000);
  onCleanup(() => mgr.stop('SIGTERM'));
  await waitAllRunning(mgr.url, entries.length);
  console.log(`    node-mgr pid ${mgr.pid} supervises ${entries.length} running nodes`);

  // 1. kill -9 → SQL, ours.
  // A default-policy node is killed twice a round: once stable, then again as soon as it runs (young).
  const kills: Record<string, KillRound[]> = { mysqlDefault: [], mysqlYoung: [], mysqlFast: [], pgDefault: [], pgYoung: [], pgFast: [] };
  const rounds: Array<[key: string, target: FleetMember, young: boolean, label: string]> = [
    ['mysqlDefault', targets.mysqlDefault!, false, 'default policy, stable'],
    ['mysqlYoung', targets.mysqlDefault!, true, 'default policy, young'],
    ['mysqlFast', targets.mysqlFast!, false, 'backoff 1 ms'],
    ['pgDefault', targets.pgDefault!, false, 'default policy, stable'],
    ['pgYoung', targets.pgDefault!, true, 'default policy, young'],
    ['pgFast', targets.pgFast!, false, 'backoff 1 ms'],
  ];
  for (let r = 0; r < ROUNDS; r++) {
    for (const [key, target, young, label] of rounds) {
      const k = await killRound(mgr.url, entryOf(target), { young });
      kills[key]!.push(k);
      console.log(`    kill -9 ${target.name} (${label}) round ${r + 1}: SQL after ${k.sqlMs} ms; ${k.timeline}`);
    }
  }

  // 2. The raw servers on the same data dirs.
  const runAs = lookupRunAs(TEST_RUN_AS);
  const parsed = parseConfig(config);
  const specOf = (m: FleetMember) => resolveSpec(parsed, parsed.nodes.find((n) => n.dir === m.dir)!, runAs);
  const raw: Record<'mysql' | 'postgres', RawFigures> = {
    mysql: await rawBaseline(mgr.url, specOf(targets.mysqlDefault!), entryOf(targets.mysqlDefault!)),
    postgres: await rawBaseline(mgr.url, specOf(targets.pgDefault!), entryOf(targets.pgDefault!)),
  };
  for (const k of ['mysql', 'postgres'] as const) {
    console.log(`    raw ${k}: clean start ${spread(raw[k].cleanStartMs, ' ms')}; kill → respawn → SQL ${spread(raw[k].killToSqlMs, ' ms')} (respawns ${raw[k].respawns.join(',')})`);
  }

  // 3. Start → ready through the API.
  const startTimelines: Record<'mysql' | 'postgres', string[]> = { mysql: [], postgres: [] };
  const startRtt = {
    mysql: await startRoundTrips(mgr.url, entryOf(targets.mysqlDefault!), startTimelines.mysql),
    postgres: await startRoundTrips(mgr.url, entryOf(targets.pgDefault!), startTimelines.postgres),
  };
  for (const k of ['mysql', 'postgres'] as const) {
    console.log(`    POST start ${k}: ${startRtt[k].map((x) => Math.round(x)).join(', ')} ms; transitions ${startTimelines[k].join(' | ')}`);
  }

  // 4. Adoption: node-mgr killed with -9 (the databases keep running) and started again; then
  //    adopted servers are killed to time the detection of a process that is not our child.
  await waitAllRunning(mgr.url, entries.length);
  const adoptRounds: AdoptRound[] = [];
  const adoptedKills: Record<'mysql' | 'postgres', KillRound[]> = { mysql: [], postgres: [] };
  for (let r = 0; r < ADOPT_ROUNDS; r++) {
    await waitAllRunning(mgr.url, entries.length);
    for (const m of [targets.mysqlDefault!, targets.pgDefault!]) await waitStable(mgr.url, entryOf(m).port);
    await mgr.stop('SIGKILL');
    const next = await adoptRound(mgrDir, config, entries.length);
    mgr = next.mgr;
    adoptRounds.push(next.round);
    for (const [k, m] of [['mysql', targets.mysqlDefault!], ['postgres', targets.pgDefault!]] as const) {
      const v = await nodeView(mgr.url, entryOf(m).port);
      if (!v.adopted) throw new Error(`${m.name} is not adopted after the node-mgr restart`);
      // The kill comes while the server is still adopted (not our child).
      adoptedKills[k].push(await killRound(mgr.url, entryOf(m)));
    }
    console.log(
      `    adoption round ${r + 1}: serving after ${next.round.servingMs} ms, all ${next.round.adopted} running after ${next.round.allRunningMs} ms; adopted kill → crashed ${adoptedKills.mysql.at(-1)!.crashedMs} / ${adoptedKills.postgres.at(-1)!.crashedMs} ms`,
    );
  }
  // Baseline of adoption: node-mgr with no node at all, spawn → serving, restarted on the same
  // state dir like ours (a fresh state dir costs more: the first start is not timed).
  const emptyStart: number[] = [];
  const emptyCpuS: number[] = [];
  const emptyDir = path.join(stateDir, 'empty');
  const emptyConfig = await benchConfig(path.join(emptyDir, 'state'), []);
  await (await startNodeMgrProcess(emptyDir, emptyConfig, 60_000)).stop('SIGKILL');
  for (let r = 0; r < ADOPT_ROUNDS; r++) {
    const t0 = Date.now();
    const empty = await startNodeMgrProcess(emptyDir, emptyConfig, 60_000);
    emptyStart.push(Date.now() - t0);
    emptyCpuS.push(cpuSample(empty.pid).self);
    await empty.stop('SIGKILL');
  }

  // Tables.
  const tables: string[] = [];
  const sql = (xs: KillRound[]) => xs.map((k) => k.sqlMs);
  const crashedOf = (xs: KillRound[]) => xs.map((k) => k.crashedMs);
  const seenOf = (xs: KillRound[]) => xs.map((k) => k.exitSeenMs).filter((x): x is number => x !== null);
  const ms = (xs: number[]) => spread(xs.map((x) => Math.round(x)), ' ms');
  // Sub-millisecond figures (the bare parent's 'exit' event) keep two decimals.
  const fineMs = (xs: number[]) => spread(xs.map((x) => Math.round(x * 100) / 100), ' ms');
  const atOnce = (xs: KillRound[]) => `${xs.filter((k) => !k.backedOff).length} of ${xs.length}`;
  for (const [engine, label, def, young, fast, rawF] of [
    ['MariaDB', 'mariadbd', kills.mysqlDefault!, kills.mysqlYoung!, kills.mysqlFast!, raw.mysql],
    ['PostgreSQL', 'postgres', kills.pgDefault!, kills.pgYoung!, kills.pgFast!, raw.postgres],
  ] as const) {
    tables.push(
      table(
        `Recovery ${engine}: kill -9 ${label} → SELECT 1 (median, min–max)`,
        ['ours', 'baseline', 'ratio'],
        [
          [`default policy, stable server (up > stableAfterMs): restarted at once`, ms(sql(def)), ms(rawF.killToSqlMs), ratio(median(sql(def)), median(rawF.killToSqlMs))],
          [`default policy, young server (again within stableAfterMs): backoff 1 s ±20 %`, ms(sql(young)), ms(rawF.killToSqlMs), ratio(median(sql(young)), median(rawF.killToSqlMs))],
          ['backoff 1 ms, stable server', ms(sql(fast)), ms(rawF.killToSqlMs), ratio(median(sql(fast)), median(rawF.killToSqlMs))],
          ['  restarted without a backoff: stable / young', `${atOnce(def)} / ${atOnce(young)}`, null, null],
          ['  of which kill → state crashed', ms(crashedOf([...def, ...young, ...fast])), fineMs(rawF.exitEventMs), null],
          ['  crashes per kill (1 = clean)', spread([...def, ...young, ...fast].map((k) => k.crashes)), spread(rawF.respawns.map((x) => x + 1)), null],
        ],
        [
          `baseline: raw ${label} with node-mgr's argv on the same data dir, respawned the moment its parent saw it die`,
          `(spawn → SQL alone: ${ms(rawF.spawnToSqlMs)}; kill → 'exit' event in the bare parent: ${fineMs(rawF.exitEventMs)}).`,
        ],
      ),
    );
  }
  const childKills = Object.values(kills).flat();
  const adopted = [...adoptedKills.mysql, ...adoptedKills.postgres];
  const floor = [...raw.mysql.exitEventMs, ...raw.postgres.exitEventMs];
  tables.push(
    table(
      'Exit detection after kill -9 (median, min–max)',
      ['ours', 'baseline', 'ratio'],
      [
        ['child: exit noticed (lastExit.at)', ms(seenOf(childKills)), fineMs(floor), ratio(median(seenOf(childKills)), median(floor))],
        ['child: state crashed (transition at)', ms(crashedOf(childKills)), fineMs(floor), ratio(median(crashedOf(childKills)), median(floor))],
        ['adopted: exit noticed (lastExit.at)', ms(seenOf(adopted)), fineMs(floor), ratio(median(seenOf(adopted)), median(floor))],
        ['adopted: state crashed (transition at)', ms(crashedOf(adopted)), fineMs(floor), ratio(median(crashedOf(adopted)), median(floor))],
        ['adopted: kill → SELECT 1 (default policy, stable server)', ms(sql(adopted)), null, null],
      ],
      [
        "ours: times node-mgr records minus the kill time (ms clock). lastExit.at is stamped when node-mgr learns of the exit; the `crashed`",
        'transition comes after the leftover scan (src/supervisor/leftovers.ts) that runs before PROCESS_EXITED is sent.',
        "baseline: a bare Node parent's 'exit' event for the same servers killed with -9 (raw baseline rounds).",
        'adopted servers are not node-mgr\'s children: the monitoring session\'s close makes it read /proc at once (2 s poll as the fallback).',
      ],
    ),
  );
  tables.push(
    table(
      'Start → ready, cleanly stopped node (median, min–max)',
      ['ours', 'baseline', 'ratio'],
      [
        ['MariaDB', ms(startRtt.mysql), ms(raw.mysql.cleanStartMs), ratio(median(startRtt.mysql), median(raw.mysql.cleanStartMs))],
        ['PostgreSQL', ms(startRtt.postgres), ms(raw.postgres.cleanStartMs), ratio(median(startRtt.postgres), median(raw.postgres.cleanStartMs))],
      ],
      ['ours: POST /v1/nodes/:port/start round trip (returns once the server answers SQL); baseline: raw server spawn → SELECT 1.'],
    ),
  );
  tables.push(
    table(
      `Adoption at node-mgr start, ${entries.length} running servers (median, min–max)`,
      ['ours', 'baseline', 'ratio'],
      [
        ['spawn → all nodes running', ms(adoptRounds.map((a) => a.allRunningMs)), ms(emptyStart), ratio(median(adoptRounds.map((a) => a.allRunningMs)), median(emptyStart))],
        ['spawn → serving (log line)', ms(adoptRounds.map((a) => a.servingMs)), ms(emptyStart), ratio(median(adoptRounds.map((a) => a.servingMs)), median(emptyStart))],
        [
          'spawn → serving, node-mgr CPU-seconds',
          spread(adoptRounds.map((a) => a.servingCpuS), ' s'),
          spread(emptyCpuS, ' s'),
          ratio(median(adoptRounds.map((a) => a.servingCpuS)), median(emptyCpuS)),
        ],
        ['first → last adoption', ms(adoptRounds.map((a) => a.allRunningMs - a.firstAdoptMs)), null, null],
      ],
      ['baseline: node-mgr with no node, spawn → serving (Node, loading node-mgr and its modules, SQLite, fastify start-up). node-mgr was killed with -9 before each round.'],
    ),
  );
  tables.push(
    `ours: node-mgr supervising ${entries.length} real nodes (10 MariaDB + 10 PostgreSQL), the measured ones with maxRestarts 1000 and stableAfterMs ${STABLE_MS}; ${ROUNDS} rounds (${ADOPT_ROUNDS} for adoption).`,
  );
  console.log('');
  for (const t of tables) console.log(`${t}\n`);
  const loadEnd = printFooter('recovery', startedAt);
  saveResults({
    bench: 'recovery',
    runId: RUN_ID,
    machine,
    loadavgAtEnd: loadEnd,
    durationS: (Date.now() - startedAt) / 1000,
    tables,
    raw: { rounds: ROUNDS, fleetInitS, kills, rawBaseline: raw, startRoundTripMs: startRtt, startTimelines, adoptRounds, adoptedKills, emptyNodeMgrStartMs: emptyStart, emptyNodeMgrStartCpuS: emptyCpuS },
  });
}

runBench(main);

// Footprint figure: node-mgr's own memory and CPU while idle, with the 20 real nodes of the fleet
// and with 200 light nodes of kind cluster_mgr (test/support/fake-cluster-mgr.mjs), each against
// node-mgr with no node at all (the baseline), to show how the cost grows with the node count.
//
//   node --import tsx bench/footprint.ts     BENCH_IDLE_SECONDS=60, BENCH_SETTLE_SECONDS=65, BENCH_LIGHT_NODES=200
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { lookupRunAs } from '../src/host/run-as.ts';
import { cmdline } from '../src/host/process-info.ts';
import { TEST_RUN_AS } from '../test/support/nodes.ts';
import { FAKE_CLUSTER_MGR, fakeClusterMgrEntry } from '../test/support/fake-cluster-mgr-nodes.ts';
import { benchConfig, benchPort, ensureFleet, fleetEntries, fleetMembers, reapFleet, type BenchEntry } from './support/fleet.ts';
import { listNodes, onCleanup, runBench, startNodeMgrProcess, waitAllRunning, type NodeMgrProcess } from './support/node-mgr.ts';
import { cpuPercent, cpuSample, memOf, memSample, type CpuSample, type MemSample } from './support/proc.ts';
import { envInt, envSeconds, max, mean, printFooter, quantile, printHeader, ratio, RUN_ID, saveResults, sleep, table, type Cell } from './support/report.ts';

const IDLE_SECONDS = envSeconds('BENCH_IDLE_SECONDS', 60);
/**
 * Let start-up work finish before measuring (first usage pass, first probes, JIT, the heap
 * shrinking after the start-up's garbage, and each node's one-off `stable` mark 60 s after it
 * began serving, stableAfterMs): a daemon is idle for weeks, not for its first minute.
 */
const SETTLE_SECONDS = envSeconds('BENCH_SETTLE_SECONDS', 65);
/** The separate window in which GET /healthz is polled (HEALTHZ_EVERY_MS apart). */
const HEALTHZ_SECONDS = Math.min(15, Math.max(2, IDLE_SECONDS / 4));
const LIGHT_NODES = envInt('BENCH_LIGHT_NODES', 200);
const HEALTHZ_EVERY_MS = 250;

interface Idle {
  label: string;
  nodes: number;
  settleS: number;
  idleS: number;
  rssMB: { mean: number; max: number; start: number; end: number };
  pssMB: number | null;
  /** polled: node-mgr itself while GET /healthz is polled, in the window after the idle one. */
  cpuPct: { self: number; withChildren: number; maxOneSecond: number; polled: number };
  /** `du` runs of node-mgr's usage passes in the idle window, and the data dirs they walked (its /metrics). */
  diskWalks: { runs: number; dirs: number } | null;
  /** GET /healthz round trips, polled after the idle window: how responsive the event loop stays. */
  healthzMs: { p50: number; p99: number; max: number; samples: number };
  threads: number;
  fds: number;
  /** Memory of the supervised processes themselves, for scale (not node-mgr's). */
  supervisedMB: { rss: number; pss: number } | null;
  startToAllRunningS: number;
}

/**
 * Samples node-mgr every second for IDLE_SECONDS with no request at all (idle is idle: the 4
 * requests a second of a poller cost it more than the rest of its idle work), after
 * SETTLE_SECONDS of settling; then polls GET /healthz for HEALTHZ_SECONDS, apart, to see the
 * event-loop stalls an operator's curl would hit.
 */
/** node-mgr's du counters from its /metrics; null when they cannot be read (an older node-mgr). */
async function diskWalks(url: string): Promise<{ runs: number; dirs: number } | null> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    const w = { runs: value('nodemgr_disk_usage_walks_total'), dirs: value('nodemgr_disk_usage_walked_dirs_total') };
    return Number.isFinite(w.runs) && Number.isFinite(w.dirs) ? w : null;
  } catch {
    return null;
  }
}

async function measureIdle(label: string, mgr: NodeMgrProcess, nodes: number, startToAllRunningS: number): Promise<Idle> {
  await sleep(SETTLE_SECONDS * 1000);
  // Read before the window's first sample and after its last: the scrapes are not in the figures.
  const walks0 = await diskWalks(mgr.url);
  const mems: MemSample[] = [memSample(mgr.pid)];
  const cpus: CpuSample[] = [cpuSample(mgr.pid)];
  const end = performance.now() + IDLE_SECONDS * 1000;
  while (performance.now() < end) {
    await sleep(Math.min(1000, end - performance.now()));
    cpus.push(cpuSample(mgr.pid));
    mems.push(memSample(mgr.pid));
  }
  const perSecond = cpus.slice(1).map((c, i) => cpuPercent(cpus[i]!, c).withChildren);
  const total = cpuPercent(cpus[0]!, cpus.at(-1)!);
  const last = mems.at(-1)!;
  const walks1 = await diskWalks(mgr.url);

  const healthz: number[] = [];
  const polledFrom = cpuSample(mgr.pid);
  const pollEnd = performance.now() + HEALTHZ_SECONDS * 1000;
  while (performance.now() < pollEnd) {
    const t = performance.now();
    try {
      const r = await fetch(`${mgr.url}/healthz`);
      await r.arrayBuffer();
      healthz.push(performance.now() - t);
    } catch {
      healthz.push(Infinity);
    }
    await sleep(HEALTHZ_EVERY_MS);
  }
  const polled = cpuPercent(polledFrom, cpuSample(mgr.pid));
  const supervised = nodes > 0 ? memOf((await listNodes(mgr.url)).map((n) => n.pid).filter((p): p is number => p !== null)) : null;
  return {
    label,
    nodes,
    settleS: SETTLE_SECONDS,
    idleS: IDLE_SECONDS,
    rssMB: { mean: mean(mems.map((m) => m.rssMB))!, max: max(mems.map((m) => m.rssMB))!, start: mems[0]!.rssMB, end: last.rssMB },
    pssMB: last.pssMB,
    cpuPct: { self: total.self, withChildren: total.withChildren, maxOneSecond: max(perSecond) ?? 0, polled: polled.self },
    diskWalks: walks0 && walks1 && { runs: walks1.runs - walks0.runs, dirs: walks1.dirs - walks0.dirs },
    healthzMs: { p50: quantile(healthz, 0.5) ?? NaN, p99: quantile(healthz, 0.99) ?? NaN, max: max(healthz) ?? NaN, samples: healthz.length },
    threads: last.threads,
    fds: last.fds,
    supervisedMB: supervised && { rss: supervised.rssMB, pss: supervised.pssMB },
    startToAllRunningS: startToAllRunningS,
  };
}

/** node-mgr on `nodes`, measured idle, then stopped (stopNodesOnExit stops the nodes too). */
async function idleRun(label: string, root: string, nodes: BenchEntry[], extra: Record<string, unknown> = {}): Promise<Idle> {
  const dir = path.join(root, label.replace(/\W+/g, '-'));
  const t0 = Date.now();
  const mgr = await startNodeMgrProcess(dir, await benchConfig(path.join(dir, 'state'), nodes, { stopNodesOnExit: true, ...extra }), 600_000);
  let stopped = false;
  onCleanup(async () => {
    if (!stopped) await mgr.stop('SIGTERM');
  });
  await waitAllRunning(mgr.url, nodes.length, 600_000);
  const startS = (Date.now() - t0) / 1000;
  console.log(`    ${label}: node-mgr pid ${mgr.pid}, ${nodes.length} nodes running after ${startS.toFixed(1)} s; idle for ${SETTLE_SECONDS} + ${IDLE_SECONDS} s…`);
  const idle = await measureIdle(label, mgr, nodes.length, startS);
  const t1 = Date.now();
  await mgr.stop('SIGTERM');
  stopped = true;
  console.log(`    ${label}: ${idle.rssMB.mean.toFixed(0)} MB RSS, ${idle.cpuPct.withChildren.toFixed(1)} % CPU; stopped with its nodes in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  return idle;
}

/** Entries for light cluster_mgr nodes, their dirs made ready (run/ and log/ owned by runAs). */
async function lightEntries(root: string, count: number): Promise<BenchEntry[]> {
  const runAs = lookupRunAs(TEST_RUN_AS);
  const entries: BenchEntry[] = [];
  for (let i = 0; i < count; i++) {
    const entry = fakeClusterMgrEntry(root, await benchPort()) as unknown as BenchEntry;
    for (const d of [entry.dir, path.join(entry.dir, 'run'), path.join(entry.dir, 'log')]) {
      await mkdir(d, { recursive: true });
      await chown(d, runAs.uid, runAs.gid);
    }
    // 200 Node processes starting at once on 2 cores need more than the default 60 s.
    entries.push({ ...entry, policy: { probe: { startTimeoutMs: 600_000 } } });
  }
  return entries;
}

/** Kills light nodes still running after their node-mgr went (an interrupted run). */
async function reapLight(entries: BenchEntry[]): Promise<void> {
  for (const e of entries) {
    for (const file of [e.pidFile!, path.join(e.dir, 'run', 'spawned.pid')]) {
      if (!existsSync(file)) continue;
      const pid = Number(readFileSync(file, 'utf8').trim());
      const argv = Number.isInteger(pid) && pid > 0 ? await cmdline(pid) : null;
      if (argv?.includes(FAKE_CLUSTER_MGR)) process.kill(pid, 'SIGKILL');
    }
  }
}

const walks = (x: Idle) => (x.diskWalks ? `${x.diskWalks.runs} / ${x.diskWalks.dirs}` : '?');
const hz = (x: Idle) => `${x.healthzMs.p50.toFixed(1)} / ${x.healthzMs.p99.toFixed(0)} / ${x.healthzMs.max.toFixed(0)}`;

function footprintTable(title: string, ours: Idle, base: Idle): string {
  const perNode = (o: number, b: number): Cell => (ours.nodes > 0 ? (o - b) / ours.nodes : null);
  const rows: Array<[string, ...Cell[]]> = [
    ['RSS MB, mean over the window', ours.rssMB.mean, base.rssMB.mean, ratio(ours.rssMB.mean, base.rssMB.mean), perNode(ours.rssMB.mean, base.rssMB.mean)],
    ['RSS MB, start → end of window', `${ours.rssMB.start.toFixed(0)} → ${ours.rssMB.end.toFixed(0)}`, `${base.rssMB.start.toFixed(0)} → ${base.rssMB.end.toFixed(0)}`, null, null],
    ['PSS MB (shared pages split)', ours.pssMB, base.pssMB, ratio(ours.pssMB, base.pssMB), ours.pssMB !== null && base.pssMB !== null ? perNode(ours.pssMB, base.pssMB) : null],
    ['CPU %, node-mgr itself', ours.cpuPct.self, base.cpuPct.self, ratio(ours.cpuPct.self, base.cpuPct.self), perNode(ours.cpuPct.self, base.cpuPct.self)],
    ['CPU %, with its children (du, df…)', ours.cpuPct.withChildren, base.cpuPct.withChildren, ratio(ours.cpuPct.withChildren, base.cpuPct.withChildren), perNode(ours.cpuPct.withChildren, base.cpuPct.withChildren)],
    ['du runs / data dirs walked in the window', walks(ours), walks(base), null, null],
    ['CPU %, busiest 1-s window', ours.cpuPct.maxOneSecond, base.cpuPct.maxOneSecond, null, null],
    [`CPU %, node-mgr, GET /healthz every ${HEALTHZ_EVERY_MS} ms`, ours.cpuPct.polled, base.cpuPct.polled, ratio(ours.cpuPct.polled, base.cpuPct.polled), perNode(ours.cpuPct.polled, base.cpuPct.polled)],
    ['GET /healthz ms, p50 / p99 / max', hz(ours), hz(base), null, null],
    ['threads / open fds', `${ours.threads} / ${ours.fds}`, `${base.threads} / ${base.fds}`, null, null],
    ['start → all nodes running, s', ours.startToAllRunningS, base.startToAllRunningS, null, null],
  ];
  const notes = [
    `CPU % is of one core, over ${ours.idleS} s of idle (no request) after ${ours.settleS} s of settling; then GET /healthz polled every ${HEALTHZ_EVERY_MS} ms for ${HEALTHZ_SECONDS} s.`,
  ];
  if (ours.supervisedMB) notes.push(`the ${ours.nodes} supervised processes themselves: ${ours.supervisedMB.rss.toFixed(0)} MB RSS, ${ours.supervisedMB.pss.toFixed(0)} MB PSS (not node-mgr's).`);
  return table(title, ['ours', 'baseline', 'ratio', 'per node'], rows, notes);
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const machine = printHeader('footprint', `node-mgr idle RSS / CPU: 0 nodes vs 20 real nodes vs ${LIGHT_NODES} light cluster_mgr nodes (${IDLE_SECONDS} s each)`);
  const members = fleetMembers();
  const fleetInitS = await ensureFleet(members);
  onCleanup(async () => {
    await reapFleet(members);
  });
  const root = await mkdtemp(path.join(os.tmpdir(), 'nm-bench-footprint-'));
  onCleanup(() => rm(root, { recursive: true, force: true }));

  const empty = await idleRun('0 nodes', root, []);
  const fleet = await idleRun('20 DB nodes', root, await fleetEntries(members));

  // Each light node is a Node process (~45 MB RSS, about half of it shared): make sure they fit.
  const freeMB = os.freemem() / 2 ** 20;
  let lightCount = LIGHT_NODES;
  const needMB = lightCount * 45 + 2048;
  if (freeMB < needMB) {
    lightCount = Math.max(10, Math.floor((freeMB - 2048) / 45));
    console.log(`    only ${freeMB.toFixed(0)} MB free: running ${lightCount} light nodes instead of ${LIGHT_NODES}`);
  }
  const lightRoot = path.join(root, 'light');
  await mkdir(lightRoot, { recursive: true });
  // mkdtemp makes root 0700: the runAs user must traverse it to reach the nodes' dirs.
  await chmod(root, 0o755);
  await chmod(lightRoot, 0o755);
  const light = await lightEntries(lightRoot, lightCount);
  onCleanup(() => reapLight(light));
  const many = await idleRun(`${lightCount} cluster_mgr nodes`, root, light);

  const tables = [
    footprintTable(`Footprint, 20 DB nodes (10 MariaDB + 10 PostgreSQL), idle ${IDLE_SECONDS} s`, fleet, empty),
    footprintTable(`Footprint, ${lightCount} light cluster_mgr nodes, idle ${IDLE_SECONDS} s`, many, empty),
    [
      'baseline: node-mgr with 0 nodes (same binary, default policies). ratio: ours / baseline; per node: (ours − baseline) / nodes.',
      'default policies: a health probe per node every 5 s (SELECT 1 on the node\'s monitoring session; HTTP GET /health for cluster_mgr),',
      'a usage pass every 10 s (one pidusage call, statfs, and one `du -sb` over the data dirs that are due), host CPU/memory every 5 s.',
    ].join('\n'),
  ];
  console.log('');
  for (const t of tables) console.log(`${t}\n`);
  const loadEnd = printFooter('footprint', startedAt);
  saveResults({
    bench: 'footprint',
    runId: RUN_ID,
    machine,
    loadavgAtEnd: loadEnd,
    durationS: (Date.now() - startedAt) / 1000,
    tables,
    raw: { idleSeconds: IDLE_SECONDS, settleSeconds: SETTLE_SECONDS, fleetInitS, runs: [empty, fleet, many] },
  });
}

runBench(main);

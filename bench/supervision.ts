// Supervision-cost figure, in figures that do not depend on the machine's load: CPU-seconds and
// logins per health probe (node-mgr's and the servers'), and how soon the exit of an adopted
// server (not node-mgr's child) is noticed. Each row runs ours and its baseline in this one run,
// against the same real MariaDB and PostgreSQL servers.
//
//   ours      one monitoring session per node (src/supervisor/health-monitor.ts)
//   baseline  the former probe: a new login per probe (the engine's probe(), which stays for that)
//   exit      ours: the node actor (session loss → /proc read at once, 2 s poll as fallback);
//             baseline: the former /proc poll alone, every 500 ms, watching the same kill;
//             split into the server's own dying (kill → its sockets close) and node-mgr's part
//             (session loss → `crashed`, which includes the leftover scan)
//   scan      ours: the leftover scan (src/supervisor/leftovers.ts, one synchronous pass);
//             baseline: the former scan, the same reads fanned out on the thread pool
//
//   node --import tsx bench/supervision.ts   BENCH_SUPERVISION_MYSQL=2 BENCH_SUPERVISION_POSTGRES=2
//                                            BENCH_SUPERVISION_SECONDS=20 BENCH_EXIT_ROUNDS=5
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { readFile, readlink, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { pino } from 'pino';
import { createActor } from 'xstate';
import { stateName } from '../machines/node.machine.ts';
import type { Engine } from '../src/engines/engine.ts';
import type { NodeSpec } from '../src/engines/node-spec.ts';
import { engineFor } from '../src/engines/index.ts';
import { isAlive, sendSignal } from '../src/host/process-info.ts';
import { monitorHealth } from '../src/supervisor/health-monitor.ts';
import { nodeMachineFor } from '../src/supervisor/node-actor.ts';
import { spawnServer, watchAdopted } from '../src/supervisor/spawn.ts';
import { findLeftovers } from '../src/supervisor/leftovers.ts';
import { spawnFromForeignParent } from '../test/support/foreign-parent.ts';
import { makeSpec, removeTempDirs, tempNodeDir } from '../test/support/nodes.ts';
import { onCleanup, runBench } from './support/node-mgr.ts';
import { envInt, envSeconds, max, median, printFooter, printHeader, ratio, RUN_ID, saveResults, sleep, table, type Cell } from './support/report.ts';

const MYSQL_NODES = envInt('BENCH_SUPERVISION_MYSQL', 2);
const POSTGRES_NODES = envInt('BENCH_SUPERVISION_POSTGRES', 2);
const WINDOW_S = envSeconds('BENCH_SUPERVISION_SECONDS', 20);
const EXIT_ROUNDS = envInt('BENCH_EXIT_ROUNDS', 5);
/** Probes 20× as often as the default 5 s, so that a window holds enough of them to count. */
const PROBE_MS = 250;
const DEFAULT_PROBE_MS = 5000;
const USER = 'bench';
const PASSWORD = 'bench_pwd';
const TICKS = 100;

/** utime + stime (+ reaped children: PostgreSQL backends are reaped by the postmaster) in seconds. */
function cpuSeconds(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICKS;
}

const ownCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Logins a server has accepted (MariaDB `Connections`, PostgreSQL `pg_stat_database.sessions`), observers' excluded. */
async function loginCount(spec: NodeSpec): Promise<number> {
  if (spec.kind === 'mysql') {
    const c = await mysql.createConnection({ host: '127.0.0.1', port: spec.port, user: USER, password: PASSWORD });
    try {
      const [rows] = await c.query("SHOW GLOBAL STATUS LIKE 'Connections'");
      return Number((rows as Array<{ Value: string }>)[0]!.Value);
    } finally {
      await c.end();
    }
  }
  const c = new pg.Client({ host: '127.0.0.1', port: spec.port, user: USER, password: PASSWORD, database: 'postgres' });
  c.on('error', () => undefined);
  await c.connect();
  try {
    const r = await c.query('SELECT sum(sessions)::bigint AS n FROM pg_stat_database');
    return Number(r.rows[0].n);
  } finally {
    await c.end();
  }
}

interface ProbeCost {
  variant: string;
  probes: number;
  failed: number;
  logins: number;
  nodeMgrCpuS: number;
  serverCpuS: number;
  windowS: number;
}

/** Health monitoring of every node for WINDOW_S, with the engine as given. */
async function probeWindow(variant: string, nodes: Array<{ spec: NodeSpec; engine: Engine; pid: number }>): Promise<ProbeCost> {
  // One observer login per node falls inside the counted span (MariaDB counts the reading session
  // itself; PostgreSQL the first reader once it has ended): subtracted below.
  const logins0 = await Promise.all(nodes.map((n) => loginCount(n.spec)));
  const server0 = nodes.map((n) => cpuSeconds(n.pid));
  const own0 = ownCpu();
  let probes = 0;
  let failed = 0;
  const stops = nodes.map((n) =>
    monitorHealth(n.spec, n.engine, { ok: () => probes++, failed: () => failed++, sessionLost: () => {}, debug: () => {} }),
  );
  await sleep(WINDOW_S * 1000);
  stops.forEach((stop) => stop());
  await sleep(300);
  const own1 = ownCpu();
  const server1 = nodes.map((n) => cpuSeconds(n.pid));
  // PostgreSQL publishes session counts with up to a second's delay.
  await sleep(1500);
  const logins1 = await Promise.all(nodes.map((n) => loginCount(n.spec)));
  const logins = logins1.reduce((a, b, i) => a + b - logins0[i]!, 0) - nodes.length;
  return {
    variant,
    probes,
    failed,
    logins,
    nodeMgrCpuS: own1 - own0,
    serverCpuS: server1.reduce((a, b, i) => a + b - server0[i]!, 0),
    windowS: WINDOW_S,
  };
}

interface ExitRound {
  kind: string;
  oursMs: number;
  baselineMs: number;
  /** kill → the monitoring session closed (the server's dying, the kernel, the event loop). */
  sessionLostMs: number | null;
}

/** One adopted server killed with -9: when the node actor said `crashed`, and when a 500 ms /proc poll saw it. */
async function exitRound(spec: NodeSpec): Promise<ExitRound> {
  const engine = engineFor(spec.kind);
  await engine.awaitPreviousServer?.(spec);
  const foreign = await spawnFromForeignParent(spec, { parentStays: false });
  if (foreign.parent.exitCode === null) await once(foreign.parent, 'exit');
  const pid = foreign.pid;
  onCleanup(async () => {
    if (await isAlive(pid)) sendSignal(pid, 'SIGKILL');
  });
  await engine.waitReady(spec, pid, AbortSignal.timeout(120_000));
  const machine = nodeMachineFor({ spec, engine, trashDir: await tempNodeDir('trash'), log: pino({ level: 'silent' }), serverLog: { maxBytes: 1e8, keep: 1 } });
  let lostAt = 0;
  const actor = createActor(machine, {
    input: { nodeId: spec.id, policy: spec.policy, wanted: 'stopped' },
    inspect: (ev) => {
      if (!lostAt && ev.type === '@xstate.event' && ev.event.type === 'MONITOR_SESSION_LOST') lostAt = performance.now();
    },
  });
  let crashedAt = 0;
  actor.subscribe((s) => {
    if (!crashedAt && stateName(s.value) === 'crashed') crashedAt = performance.now();
  });
  actor.start();
  try {
    while (stateName(actor.getSnapshot().value) !== 'running') await sleep(20);
    // The former poll, started well before the kill so that its phase is random, as in production.
    const poll = watchAdopted(pid, 500);
    let polledAt = 0;
    void poll.exit.then(() => (polledAt = performance.now()));
    // The session opens as the node enters running; give it the time a login takes on a busy machine.
    await sleep(1000 + Math.random() * 500);
    const killedAt = performance.now();
    sendSignal(pid, 'SIGKILL');
    const deadline = killedAt + 30_000;
    while ((!crashedAt || !polledAt) && performance.now() < deadline) await sleep(1);
    poll.cancel();
    return { kind: spec.kind, oursMs: crashedAt - killedAt, baselineMs: polledAt - killedAt, sessionLostMs: lostAt ? lostAt - killedAt : null };
  } finally {
    actor.stop();
  }
}

/** The former leftover scan, kept as the baseline: the same reads, each through the thread pool. */
async function formerFindLeftovers(pgid: number, dataDir: string, uid: number): Promise<number[]> {
  const root = path.resolve(dataDir);
  const pids = (await readdir('/proc')).filter((e) => /^\d+$/.test(e)).map(Number);
  const owners = await Promise.all(pids.map((pid) => stat(`/proc/${pid}`).then((s) => s.uid, () => null)));
  const found = await Promise.all(
    pids
      .filter((_, i) => owners[i] === uid)
      .map(async (pid) => {
        const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
        if (text === null) return null;
        const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
        if (rest[0] === 'Z' || rest[0] === 'X') return null;
        if (Number(rest[2]) === pgid) return pid;
        const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => null);
        return cwd && (cwd === root || cwd.startsWith(`${root}/`)) ? pid : null;
      }),
  );
  return found.filter((p): p is number => p !== null);
}

/** Wall time of each scan, ours and the former one alternating, for one (exited) server's group and data dir. */
async function scanRounds(spec: NodeSpec, rounds: number): Promise<{ ours: number[]; former: number[]; hostProcesses: number }> {
  const ours: number[] = [];
  const former: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let t = performance.now();
    findLeftovers(999_999_999, spec.dataDir, spec.runAs.uid);
    ours.push(performance.now() - t);
    // The former scan ran inside a promise chain, so its cost includes the wait for the loop.
    t = performance.now();
    await formerFindLeftovers(999_999_999, spec.dataDir, spec.runAs.uid);
    former.push(performance.now() - t);
    await sleep(20);
  }
  const hostProcesses = (await readdir('/proc')).filter((e) => /^\d+$/.test(e)).length;
  return { ours, former, hostProcesses };
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const machine = printHeader(
    'supervision',
    `health probes on a session vs a login per probe (${MYSQL_NODES} MariaDB + ${POSTGRES_NODES} PostgreSQL, ${WINDOW_S} s each); exit of an adopted server (${EXIT_ROUNDS} kills each)`,
  );
  onCleanup(() => removeTempDirs());
  const nodes: Array<{ spec: NodeSpec; engine: Engine; pid: number }> = [];
  for (const [kind, count] of [['mysql', MYSQL_NODES], ['postgres', POSTGRES_NODES]] as const) {
    for (let i = 0; i < count; i++) {
      const spec = await makeSpec(kind, { user: USER, password: PASSWORD, policy: { probe: { intervalMs: PROBE_MS, timeoutMs: 3000 } } });
      const engine = engineFor(kind);
      await engine.initDataDir(spec);
      await engine.writeServerConfig(spec);
      const server = await spawnServer(spec, engine.launchPlan(spec));
      onCleanup(async () => {
        if (await isAlive(server.pid)) sendSignal(server.pid, 'SIGKILL');
      });
      await engine.waitReady(spec, server.pid, AbortSignal.timeout(120_000));
      nodes.push({ spec, engine, pid: server.pid });
    }
  }
  console.log(`    ${nodes.length} servers ready after ${((Date.now() - startedAt) / 1000).toFixed(0)} s; probing every ${PROBE_MS} ms…`);

  // The baseline first: the servers' first minutes (caches warming) then weigh against it, not us.
  const perLogin = await probeWindow('baseline', nodes.map((n) => ({ ...n, engine: { ...n.engine, openMonitor: undefined } })));
  const session = await probeWindow('ours', nodes);

  for (const n of nodes) await n.engine.stop(n.spec, n.pid);
  const exits: ExitRound[] = [];
  for (const n of [nodes.find((x) => x.spec.kind === 'mysql'), nodes.find((x) => x.spec.kind === 'postgres')]) {
    if (!n) continue;
    for (let r = 0; r < EXIT_ROUNDS; r++) exits.push(await exitRound(n.spec));
  }
  const scans = await scanRounds(nodes[0]!.spec, 50);

  const perProbe = (x: ProbeCost, v: number) => (x.probes ? v / x.probes : null);
  const ms = (v: number | null) => (v === null ? null : v * 1000);
  const atDefault = (x: ProbeCost) => (x.probes ? (x.nodeMgrCpuS / x.probes) * (nodes.length * (60_000 / DEFAULT_PROBE_MS)) : null);
  const rows: Array<[string, ...Cell[]]> = [
    ['probes answered / failed', `${session.probes} / ${session.failed}`, `${perLogin.probes} / ${perLogin.failed}`, null],
    ['logins per probe', perProbe(session, session.logins), perProbe(perLogin, perLogin.logins), ratio(perProbe(session, session.logins), perProbe(perLogin, perLogin.logins))],
    ['node-mgr CPU ms per probe', ms(perProbe(session, session.nodeMgrCpuS)), ms(perProbe(perLogin, perLogin.nodeMgrCpuS)), ratio(session.nodeMgrCpuS / session.probes, perLogin.nodeMgrCpuS / perLogin.probes)],
    ['servers\' CPU ms per probe', ms(perProbe(session, session.serverCpuS)), ms(perProbe(perLogin, perLogin.serverCpuS)), ratio(session.serverCpuS / session.probes, perLogin.serverCpuS / perLogin.probes)],
    [`node-mgr CPU s per minute, ${nodes.length} nodes at the default 5 s`, atDefault(session), atDefault(perLogin), ratio(atDefault(session), atDefault(perLogin))],
  ];
  const exitRows: Array<[string, ...Cell[]]> = [];
  for (const kind of ['mysql', 'postgres']) {
    const xs = exits.filter((e) => e.kind === kind);
    if (!xs.length) continue;
    const o = xs.map((e) => e.oursMs);
    const b = xs.map((e) => e.baselineMs);
    exitRows.push([`${kind === 'mysql' ? 'mariadbd' : 'postgres'}: kill -9 → noticed, median ms`, median(o), median(b), ratio(median(o), median(b))]);
    exitRows.push([`${kind === 'mysql' ? 'mariadbd' : 'postgres'}: worst of ${xs.length}, ms`, max(o), max(b), ratio(max(o), max(b))]);
    const lost = xs.filter((e) => e.sessionLostMs !== null);
    exitRows.push([`  of which kill → session closed (the server dying), median ms`, median(lost.map((e) => e.sessionLostMs!)), null, null]);
    exitRows.push([`  of which session closed → crashed (node-mgr), median / worst ms`, `${fmt(median(lost.map((e) => e.oursMs - e.sessionLostMs!)))} / ${fmt(max(lost.map((e) => e.oursMs - e.sessionLostMs!)))}`, null, null]);
  }
  exitRows.push([`leftover scan, ${scans.ours.length} rounds: median ms`, median(scans.ours), median(scans.former), ratio(median(scans.ours), median(scans.former))]);
  exitRows.push([`leftover scan: worst ms`, max(scans.ours), max(scans.former), ratio(max(scans.ours), max(scans.former))]);
  const tables = [
    table(`Health probes, ${MYSQL_NODES} MariaDB + ${POSTGRES_NODES} PostgreSQL, ${WINDOW_S} s each at ${PROBE_MS} ms`, ['ours (session)', 'baseline (login per probe)', 'ratio'], rows, [
      'CPU in CPU-seconds from /proc and process.cpuUsage(): the count does not grow with the machine\'s load the way wall time does.',
      'servers\' CPU: mariadbd\'s threads, and the postmaster with its reaped backends. Logins: MariaDB Connections, PostgreSQL pg_stat_database.sessions.',
    ]),
    table(`Exit of an adopted server (not node-mgr's child), ${EXIT_ROUNDS} kill -9 each`, ['ours (session loss)', 'baseline (/proc poll, 500 ms)', 'ratio'], exitRows, [
      'ours: the node actor\'s `crashed` transition; baseline: the former mechanism, a 500 ms /proc poll, watching the same kill.',
      'ours includes reaping leftovers and the machine\'s event handling, on a shared machine: wall-clock, so noisy. The server\'s own',
      'dying (kill → its sockets close) is the floor: a killed process closes its files only after its memory is torn down.',
      `leftover scan: ours one synchronous pass (src/supervisor/leftovers.ts), baseline the former reads on the thread pool; ${scans.hostProcesses} processes on the host.`,
    ]),
  ];
  console.log('');
  for (const t of tables) console.log(`${t}\n`);
  const loadEnd = printFooter('supervision', startedAt);
  saveResults({ bench: 'supervision', runId: RUN_ID, machine, loadavgAtEnd: loadEnd, durationS: (Date.now() - startedAt) / 1000, tables, raw: { session, perLogin, exits, scans } });
}

function fmt(v: number | null): string {
  return v === null ? '–' : v.toFixed(1);
}

runBench(main);

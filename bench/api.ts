// API figure: get_node, get_status and get_info throughput and latency with 20 real nodes
// supervised (10 MariaDB + 10 PostgreSQL), against a bare fastify answering a static JSON of the
// same size (the floor of the stack). autocannon (keep-alive, 10 and 100 connections), then
// closeload (one connection per request, as the original C++ callers do), where two more
// baselines answer the same bytes: a bare node:http server (the floor of Node's HTTP) and a raw
// node:net server that reads the request and writes the prepared reply (the ceiling of Node itself
// for one connection per request: what any leaner HTTP front in Node could reach at best).
//
//   node --import tsx bench/api.ts        BENCH_SECONDS=10 (autocannon), BENCH_CLOSELOAD_SECONDS=5
//   BENCH_API_PARTS=closeload             only the closeload runs (autocannon skipped)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { buildCloseload, closeload, closeloadErrors, type CloseloadResult, type CloseloadVariant } from './support/closeload.ts';
import { benchConfig, benchPort, ensureFleet, fleetEntries, fleetMembers, reapFleet } from './support/fleet.ts';
import { api, listNodes, onCleanup, runBench, startNodeMgrProcess, waitAllRunning } from './support/node-mgr.ts';
import { cpuPercent, cpuSample } from './support/proc.ts';
import { BENCH_DIR, envSeconds, printFooter, printHeader, ratio, RUN_ID, saveResults, sleep, table } from './support/report.ts';

const SECONDS = envSeconds('BENCH_SECONDS', 10);
const CLOSELOAD_SECONDS = envSeconds('BENCH_CLOSELOAD_SECONDS', Math.min(5, SECONDS));
const WARMUP_SECONDS = Math.min(2, SECONDS);
const CONNECTIONS = [10, 100];
/** One connection per request at the issue's concurrencies (c10, c50). */
const CLOSE_CONCURRENCY = [10, 50];
const STATUS_JOB = 'bench_get_status_job';
const PARTS = (process.env.BENCH_API_PARTS ?? 'autocannon,closeload').split(',');
/** Long enough to hold two of the default 10 s usage passes. */
const IDLE_SAMPLE_SECONDS = 20;

type JobType = 'get_node' | 'get_status' | 'get_info';
const JOB_TYPES: JobType[] = ['get_node', 'get_status', 'get_info'];

const bodyOf: Record<JobType, string> = {
  get_node: JSON.stringify({ ver: '0.1', job_type: 'get_node' }),
  get_status: JSON.stringify({ ver: '0.1', job_type: 'get_status', job_id: STATUS_JOB }),
  get_info: JSON.stringify({ ver: '0.1', job_type: 'get_info' }),
};
/** A substring every good reply holds (closeload counts a reply without it as bad). */
const expectOf: Record<JobType, string> = { get_node: 'storage_node0', get_status: STATUS_JOB, get_info: 'cpu_used' };

/** 'baseline' is the bare fastify (every table); 'http' and 'net' run in the closeload tables only. */
type TargetName = 'ours' | 'baseline' | 'http' | 'net';
type BaselineKind = 'fastify' | 'http' | 'net';

interface Target {
  name: TargetName;
  port: number;
  pid: number;
}

interface LoadFigure {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  /** CPU of the server process during the run, % of one core. */
  serverCpuPct: number;
}

/** Requests served per second of the server's own CPU time: the cost of a request, less sensitive to the machine's load than req/s. */
function perCpuSecond(rps: number, cpuPct: number): number | null {
  return cpuPct > 0 ? rps / (cpuPct / 100) : null;
}

async function cannon(target: Target, jobType: JobType, connections: number, seconds: number): Promise<LoadFigure> {
  const before = cpuSample(target.pid);
  const r = await autocannon({
    url: `http://127.0.0.1:${target.port}/`,
    method: 'POST',
    // What curl -d and the original clients send; the body is JSON all the same (PROTOCOL §1).
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: bodyOf[jobType],
    connections,
    duration: seconds,
  });
  const after = cpuSample(target.pid);
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors,
    non2xx: r.non2xx,
    serverCpuPct: cpuPercent(before, after).self,
  };
}

async function startBaseline(replies: Record<JobType, string>, dir: string, kind: BaselineKind): Promise<{ child: ChildProcess; port: number }> {
  const file = path.join(dir, 'static-replies.json');
  await writeFile(file, JSON.stringify(replies));
  const port = await benchPort();
  const script = path.join(BENCH_DIR, 'support/static-server.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script, '--port', String(port), '--replies', file, '--kind', kind], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the static ${kind} baseline server did not start within 30 s`)), 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      if (c.toString().includes('static-server listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`the static ${kind} baseline server exited (${code})`)));
  });
  return { child, port };
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const machine = printHeader('api', `get_node / get_status / get_info with 20 real nodes, vs a bare fastify (autocannon ${SECONDS} s, closeload ${CLOSELOAD_SECONDS} s)`);
  const members = fleetMembers();
  const fleetInitS = await ensureFleet(members);
  onCleanup(async () => {
    await reapFleet(members);
  });
  await buildCloseload();

  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'nm-bench-api-'));
  onCleanup(() => rm(stateDir, { recursive: true, force: true }));
  const entries = await fleetEntries(members);
  // Default policies: probes every 5 s and the 10 s usage pass run during the load, as in production.
  const config = await benchConfig(path.join(stateDir, 'state'), entries, { stopNodesOnExit: true });
  const mgr = await startNodeMgrProcess(path.join(stateDir, 'mgr'), config, 180_000);
  onCleanup(() => mgr.stop('SIGTERM'));
  const nodes = await waitAllRunning(mgr.url, entries.length);
  const kinds = `${nodes.filter((n) => n.kind === 'mysql').length} MariaDB + ${nodes.filter((n) => n.kind === 'postgres').length} PostgreSQL`;
  console.log(`    node-mgr pid ${mgr.pid} supervises ${nodes.length} running nodes (${kinds})`);

  // A finished job for get_status to read: START of a running node succeeds at once.
  const storage = entries.find((e) => e.role === 'storage')!;
  const accepted = await api(mgr.url, 'POST', '/', { ver: '0.1', job_type: 'mysql_cmd', job_id: STATUS_JOB, cmd: `./startmysql.sh ${storage.port}` });
  if (accepted.body?.result !== 'succeed') throw new Error(`could not submit the get_status job: ${accepted.text}`);
  for (let i = 0; ; i++) {
    const s = await api(mgr.url, 'POST', '/', JSON.parse(bodyOf.get_status));
    if (s.body?.result === 'succeed') break;
    if (i > 300) throw new Error(`the get_status job did not finish: ${s.text}`);
    await sleep(100);
  }

  // get_info's first call may wait for the first host sample: ask once before measuring.
  const replies = {} as Record<JobType, string>;
  for (const t of JOB_TYPES) {
    const r = await api(mgr.url, 'POST', '/', JSON.parse(bodyOf[t]));
    if (r.status !== 200 || !r.text.includes(expectOf[t])) throw new Error(`${t} answered ${r.status}: ${r.text.slice(0, 300)}`);
    replies[t] = r.text;
  }
  const baselines = {} as Record<BaselineKind, { child: ChildProcess; port: number }>;
  for (const kind of ['fastify', 'http', 'net'] as const) {
    const b = (baselines[kind] = await startBaseline(replies, stateDir, kind));
    onCleanup(() => {
      b.child.kill('SIGTERM');
    });
  }
  const targetOf = (name: TargetName, b: { child: ChildProcess; port: number }): Target => ({ name, port: b.port, pid: b.child.pid! });
  const targets: Target[] = [{ name: 'ours', port: Number(new URL(mgr.url).port), pid: mgr.pid }, targetOf('baseline', baselines.fastify)];
  const closeTargets: Target[] = [...targets, targetOf('http', baselines.http), targetOf('net', baselines.net)];
  const sizes = Object.fromEntries(JOB_TYPES.map((t) => [t, Buffer.byteLength(replies[t])])) as Record<JobType, number>;
  console.log(`    reply sizes: ${JOB_TYPES.map((t) => `${t} ${sizes[t]} B`).join(', ')} (the baseline answers the same bytes)`);

  const cannonResults: Record<string, Record<string, LoadFigure>> = {};
  for (const t of PARTS.includes('autocannon') ? JOB_TYPES : []) {
    for (const target of targets) await cannon(target, t, 10, WARMUP_SECONDS);
    for (const c of CONNECTIONS) {
      const cell: Record<string, LoadFigure> = {};
      for (const target of targets) {
        cell[target.name] = await cannon(target, t, c, SECONDS);
        process.stdout.write(`    autocannon ${t} ${c} conn ${target.name}: ${cell[target.name]!.rps.toFixed(0)} req/s\n`);
      }
      cannonResults[`${t}/${c}`] = cell;
    }
  }

  // One connection per request. HTTP/1.0 (server closes) is what the original callers send; the
  // shared binary as built (HTTP/1.1, client closes) is run for get_node and get_status too.
  const closeRuns: Array<{ t: JobType; c: number; variant: CloseloadVariant }> = [];
  if (PARTS.includes('closeload')) {
    for (const t of JOB_TYPES) for (const c of CLOSE_CONCURRENCY) closeRuns.push({ t, c, variant: 'http10-eof' });
    for (const t of ['get_node', 'get_status'] as const) for (const c of CLOSE_CONCURRENCY) closeRuns.push({ t, c, variant: 'http11-cl' });
  }
  const closeResults: Record<string, Record<string, CloseloadResult & { serverCpuPct: number }>> = {};
  // What ours spends with no request at all (probes, usage passes, host samples) over two usage
  // passes: subtracted, the rest of its CPU is the requests' (the baselines spend nothing idle).
  let idleCpuPct: number | null = null;
  if (closeRuns.length > 0) {
    const before = cpuSample(mgr.pid);
    await sleep(IDLE_SAMPLE_SECONDS * 1000);
    idleCpuPct = cpuPercent(before, cpuSample(mgr.pid)).self;
    console.log(`    ours idle (no requests, ${IDLE_SAMPLE_SECONDS} s): ${idleCpuPct.toFixed(1)} % of one core`);
  }
  for (const run of closeRuns) {
    const cell: Record<string, CloseloadResult & { serverCpuPct: number }> = {};
    for (const target of closeTargets) {
      const before = cpuSample(target.pid);
      const r = await closeload(run.variant, target.port, run.c, CLOSELOAD_SECONDS, bodyOf[run.t], expectOf[run.t]);
      cell[target.name] = { ...r, serverCpuPct: cpuPercent(before, cpuSample(target.pid)).self };
      process.stdout.write(`    closeload ${run.variant} ${run.t} ${run.c} conc ${target.name}: ${r.rps.toFixed(0)} req/s, ${closeloadErrors(r)} errors\n`);
    }
    closeResults[`${run.variant}/${run.t}/${run.c}`] = cell;
  }
  const stillRunning = (await listNodes(mgr.url)).filter((n) => n.state === 'running').length;

  const tables: string[] = [];
  const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  for (const t of PARTS.includes('autocannon') ? JOB_TYPES : []) {
    for (const c of CONNECTIONS) {
      const cell = cannonResults[`${t}/${c}`]!;
      const [o, b] = [cell.ours!, cell.baseline!];
      tables.push(
        table(
          `API ${t}, ${c} connections (autocannon)`,
          ['ours', 'baseline', 'ratio'],
          [
            ['req/s', o.rps, b.rps, ratio(o.rps, b.rps)],
            ['p50 ms / p99 ms', `${ms(o.p50)} / ${ms(o.p99)}`, `${ms(b.p50)} / ${ms(b.p99)}`, null],
            ['server CPU, % of one core', o.serverCpuPct, b.serverCpuPct, null],
            ['requests per server CPU-second', perCpuSecond(o.rps, o.serverCpuPct), perCpuSecond(b.rps, b.serverCpuPct), ratio(perCpuSecond(o.rps, o.serverCpuPct), perCpuSecond(b.rps, b.serverCpuPct))],
            ['errors + non-2xx', o.errors + o.non2xx, b.errors + b.non2xx, null],
          ],
        ),
      );
    }
  }
  for (const run of closeRuns) {
    const cell = closeResults[`${run.variant}/${run.t}/${run.c}`]!;
    const [o, b, h, n] = [cell.ours!, cell.baseline!, cell.http!, cell.net!];
    const how = run.variant === 'http10-eof' ? 'HTTP/1.0, server closes' : 'HTTP/1.1 as built, client closes';
    const per = (x: CloseloadResult & { serverCpuPct: number }) => perCpuSecond(x.rps, x.serverCpuPct);
    const oursLessIdle = (x: CloseloadResult & { serverCpuPct: number }) => (idleCpuPct === null ? null : perCpuSecond(x.rps, x.serverCpuPct - idleCpuPct));
    const lat = (x: CloseloadResult) => `${ms(x.latencyMs.p50)} / ${ms(x.latencyMs.p99)}`;
    tables.push(
      table(
        `API ${run.t}, closeload ${run.c} conc (${how})`,
        ['ours', 'baseline', 'ratio', 'node:http', 'ours/http', 'raw net', 'net/http'],
        [
          ['req/s', o.rps, b.rps, ratio(o.rps, b.rps), h.rps, ratio(o.rps, h.rps), n.rps, ratio(n.rps, h.rps)],
          ['p50 ms / p99 ms', lat(o), lat(b), null, lat(h), null, lat(n), null],
          ['server CPU, % of one core', o.serverCpuPct, b.serverCpuPct, null, h.serverCpuPct, null, n.serverCpuPct, null],
          ['requests per server CPU-second', per(o), per(b), ratio(per(o), per(b)), per(h), ratio(per(o), per(h)), per(n), ratio(per(n), per(h))],
          ['  the same, ours less its idle CPU', oursLessIdle(o), null, ratio(oursLessIdle(o), per(b)), null, ratio(oursLessIdle(o), per(h)), null, null],
          ['failed requests', closeloadErrors(o), closeloadErrors(b), null, closeloadErrors(h), null, closeloadErrors(n), null],
        ],
      ),
    );
  }
  const notes = [
    `ours: node-mgr supervising ${nodes.length} real nodes (${kinds}; default policies: SELECT 1 probe every 5 s, usage pass every 10 s);`,
    ...(idleCpuPct === null ? [] : [`ours idle, no requests, over ${IDLE_SAMPLE_SECONDS} s before the closeload runs: ${idleCpuPct.toFixed(1)} % of one core ("less its idle CPU" subtracts it).`]),
    `baseline: bare fastify 5 in its own process answering the same reply bytes (${JOB_TYPES.map((t) => `${t} ${sizes[t]} B`).join(', ')}).`,
    'closeload only: node:http = bare node:http answering the same bytes in its request event; raw net = a node:net server that reads the request and writes the same bytes (the ceiling of Node per connection).',
    `ratio: ours / baseline (req/s, requests per CPU-second); ours/http, net/http likewise. Load client and servers share the same 2 cores. ${stillRunning}/${nodes.length} nodes still running after the load.`,
  ];
  tables.push(notes.join('\n'));
  console.log('');
  for (const t of tables) console.log(`${t}\n`);

  const loadEnd = printFooter('api', startedAt);
  saveResults({
    bench: 'api',
    runId: RUN_ID,
    machine,
    loadavgAtEnd: loadEnd,
    durationS: (Date.now() - startedAt) / 1000,
    tables,
    raw: {
      seconds: SECONDS,
      closeloadSeconds: CLOSELOAD_SECONDS,
      fleetInitS,
      nodes: nodes.map((n) => ({ id: n.id, kind: n.kind, state: n.state })),
      replySizes: sizes,
      autocannon: cannonResults,
      closeload: closeResults,
      oursIdleCpuPct: idleCpuPct,
      nodesRunningAfter: stillRunning,
    },
  });
}

runBench(main);

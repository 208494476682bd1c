// How the inspector behaves with 50 nodes: a real node-mgr supervising 50 light fake cluster_mgr
// processes, the page in headless chromium, and N extra /v1/events clients. Each round kills all
// 50 servers at once (5 transitions each: crashed, backoff, preflight, starting, running) and
// measures what the page and the event stream do with the burst.
//
//   node --import tsx bench/inspector-50.ts [--nodes 50] [--clients 1,10,50]
//
// Prints its tables and writes bench/results/inspector-50-<run id>.json (run-all prints them again).
// The baseline of the page is the event stream it draws from: how far behind the stream it ends.
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { freePort, tempNodeDir, removeTempDirs, TEST_RUN_AS } from '../test/support/nodes.ts';
import { api, killProcessGroups, startNodeMgrProcess } from '../test/support/node-mgr-process.ts';
import { fakeClusterMgrEntry } from '../test/support/fake-cluster-mgr-nodes.ts';
import { openEventStream, type SseClient } from '../test/support/sse.ts';
import { printFooter, printHeader, RUN_ID, saveResults, table, type Cell } from './support/report.ts';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '50' }, clients: { type: 'string', default: '1,10,50' } } });
const NODES = Number(values.nodes);
const CLIENT_COUNTS = values.clients.split(',').map(Number);
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const r1 = (x: number) => Math.round(x * 10) / 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function inBatches<T>(items: T[], size: number, fn: (t: T) => Promise<void>) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

interface PageStats {
  firstRenderMs: number | null;
  renders: number;
  renderMs: number[];
  events: { hello: number; transition: number; job: number };
}

async function main() {
  const startedAt = Date.now();
  const machine = printHeader('inspector-50', `the /inspect page and /v1/events with ${NODES} nodes, all killed at once, ${CLIENT_COUNTS.join(' / ')} extra SSE clients`);
  const root = path.dirname(await tempNodeDir());
  const ports: number[] = [];
  while (ports.length < NODES) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  const config = {
    listen: { host: '127.0.0.1', port: await freePort() },
    stateDir: path.join(root, 'state'),
    runAs: TEST_RUN_AS,
    policy: {
      restart: { initialDelayMs: 1000, maxDelayMs: 5000, jitter: 0.2, stableAfterMs: 600_000, maxRestarts: 20, windowMs: 600_000 },
      probe: { intervalMs: 2000, timeoutMs: 1000, failureThreshold: 3, startTimeoutMs: 30_000 },
      stop: { gracefulTimeoutMs: 5000, forcefulTimeoutMs: 5000 },
    },
    nodes: ports.map((p) => fakeClusterMgrEntry(root, p)),
  };
  const mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  const clients: SseClient[] = [];
  const results: Record<string, unknown> = { nodes: NODES, host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30) }, node: process.version, at: new Date().toISOString() };
  try {
    const t0 = Date.now();
    await inBatches(ports, 10, async (p) => {
      const r = await api(mgr.url, 'POST', `/v1/nodes/${p}/create`);
      if (r.status !== 200) throw new Error(`create ${p}: ${r.text}`);
    });
    results.createAllMs = Date.now() - t0;
    console.error(`created ${NODES} nodes in ${results.createAllMs} ms`);

    // --- first render -------------------------------------------------------------------------
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const g0 = Date.now();
    await page.goto(`${mgr.url}/inspect#node=${ports[0]}`);
    await page.waitForFunction(`document.querySelectorAll('#nodes .badge.st-running').length === ${NODES}`);
    const allRowsMs = Date.now() - g0;
    await page.locator('#chart svg g.state.active').waitFor();
    const chartMs = Date.now() - g0;
    const first = (await page.evaluate('window.__inspector')) as PageStats;
    const nav = (await page.evaluate(`JSON.stringify(performance.getEntriesByType('navigation')[0])`)) as string;
    results.firstRender = {
      scriptToFirstRenderMs: r1(first.firstRenderMs ?? NaN),
      navigationToAllRowsMs: allRowsMs,
      navigationToChartMs: chartMs,
      domContentLoadedMs: r1(JSON.parse(nav).domContentLoadedEventEnd),
      maxRenderMsDuringLoad: r1(Math.max(...first.renderMs)),
    };

    // A long-task observer: main-thread blocks over 50 ms during the bursts.
    await page.evaluate(`(() => {
      window.__longTasks = [];
      new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__longTasks.push(e.duration); }).observe({ type: 'longtask', buffered: false });
    })()`);

    // --- bursts -------------------------------------------------------------------------------
    const rounds: Array<Record<string, unknown>> = [];
    for (const n of CLIENT_COUNTS) {
      while (clients.length < n) {
        const c = await openEventStream(`${mgr.url}/v1/events`);
        await c.waitFor((e) => e.event === 'hello');
        clients.push(c);
      }
      while (clients.length > n) clients.pop()!.close();
      await sleep(1500); // let the figures of the previous round settle
      const nodes = (await api(mgr.url, 'GET', '/v1/nodes')).body as Array<{ port: number; pid: number; state: string }>;
      if (nodes.some((x) => x.state !== 'running')) throw new Error('not every node is running before the burst');
      const marks = clients.map((c) => c.events.length);
      await page.evaluate(`(() => { const s = window.__inspector; s.renderMs = []; s.renders = 0; s.events.transition = 0; window.__longTasks = []; })()`);
      const killedAt = Date.now();
      for (const x of nodes) process.kill(x.pid, 'SIGKILL');
      const expected = NODES * 5;
      // The burst is over when every client has every transition back to running.
      const deadline = Date.now() + 60_000;
      while (clients.some((c, i) => c.events.slice(marks[i]).filter((e) => e.event === 'transition').length < expected)) {
        if (Date.now() > deadline) throw new Error(`burst did not complete: ${clients.map((c, i) => c.events.slice(marks[i]).filter((e) => e.event === 'transition').length).join(',')} of ${expected}`);
        await sleep(20);
      }
      const streamDoneAt = Date.now();
      await page.waitForFunction(`document.querySelectorAll('#nodes .badge.st-running').length === ${NODES}`, undefined, { timeout: 30_000 });
      const pageDoneAt = Date.now();
      await sleep(300);
      const stats = (await page.evaluate('window.__inspector')) as PageStats;
      const longTasks = (await page.evaluate('window.__longTasks')) as number[];
      const latencies: number[] = [];
      const inOrder = clients.every((c, i) => {
        const t = c.events.slice(marks[i]).filter((e) => e.event === 'transition');
        for (const e of t) latencies.push(e.receivedAt - e.data.at);
        const ids = t.map((e) => Number(e.id));
        return ids.every((id, k) => k === 0 || id > ids[k - 1]!);
      });
      const allTransitions = clients[0]!.events.slice(marks[0]).filter((e) => e.event === 'transition');
      const spanMs = allTransitions.at(-1)!.data.at - allTransitions[0]!.data.at;
      rounds.push({
        sseClients: n,
        transitions: expected,
        burstSpanMs: spanMs,
        deliveredToAll: true,
        inOrder,
        latencyP50Ms: pct(latencies, 50),
        latencyP95Ms: pct(latencies, 95),
        latencyMaxMs: Math.max(...latencies),
        pageEvents: stats.events.transition,
        pageRenders: stats.renders,
        renderP50Ms: r1(pct(stats.renderMs, 50)),
        renderP95Ms: r1(pct(stats.renderMs, 95)),
        renderMaxMs: r1(Math.max(...stats.renderMs)),
        renderTotalMs: r1(stats.renderMs.reduce((a, b) => a + b, 0)),
        longTasks: longTasks.length,
        longTaskMaxMs: r1(Math.max(0, ...longTasks)),
        killToAllRunningOnPageMs: pageDoneAt - killedAt,
        pageBehindStreamMs: pageDoneAt - streamDoneAt,
      });
      console.error(`round with ${n} SSE clients done`);
    }
    results.rounds = rounds;
    results.pageErrors = errors;
    mkdirSync(path.resolve(import.meta.dirname, '../test-artifacts'), { recursive: true });
    await page.screenshot({ path: path.resolve(import.meta.dirname, '../test-artifacts/inspector-50.png') });

    const tables = tablesOf(results);
    console.log(`\n${tables.join('\n\n')}\n`);
    const loadAtEnd = printFooter('inspector-50', startedAt);
    saveResults({ bench: 'inspector-50', runId: RUN_ID, machine, loadavgAtEnd: loadAtEnd, durationS: Math.round((Date.now() - startedAt) / 1000), tables, raw: results });
  } finally {
    for (const c of clients) c.close();
    await browser.close();
    const nodes = await api(mgr.url, 'GET', '/v1/nodes').catch(() => null);
    await mgr.stop('SIGKILL');
    await killProcessGroups((nodes?.body ?? []).map((n: { pid: number | null }) => n.pid));
    await removeTempDirs();
  }
}

function tablesOf(r: Record<string, any>): string[] {
  const f = r.firstRender;
  const first = table(
    `inspector page, ${r.nodes} nodes: first load`,
    ['ms'],
    [
      ['page script start → first render', f.scriptToFirstRenderMs],
      [`navigation → all ${r.nodes} rows`, f.navigationToAllRowsMs],
      ['navigation → statechart highlighted', f.navigationToChartMs],
      ['largest single render during load', f.maxRenderMsDuringLoad],
      [`creating the ${r.nodes} nodes through the API (for scale)`, r.createAllMs],
    ],
    ['headless chromium (Debian package) on the same machine'],
  );
  const rounds: any[] = r.rounds;
  const row = (label: string, cell: (x: any) => Cell): [string, ...Cell[]] => [label, ...rounds.map(cell)];
  const burst = table(
    `a burst: all ${r.nodes} nodes killed (5 transitions each)`,
    rounds.map((x) => `${x.sseClients} SSE + page`),
    [
      row('transitions in the burst', (x) => x.transitions),
      row('burst span on the stream, ms', (x) => x.burstSpanMs),
      row('every client saw them in order', (x) => (x.inOrder ? 'yes' : 'NO')),
      row('stream latency p50 / p95 / max, ms', (x) => `${x.latencyP50Ms} / ${x.latencyP95Ms} / ${x.latencyMaxMs}`),
      row('page redraws (capped at 10/s)', (x) => x.pageRenders),
      row('redraw p50 / p95 / max, ms', (x) => `${x.renderP50Ms} / ${x.renderP95Ms} / ${x.renderMaxMs}`),
      row('redraw total, ms', (x) => x.renderTotalMs),
      row('long tasks (max ms)', (x) => `${x.longTasks} (${x.longTaskMaxMs})`),
      row('kill → last event on the stream, ms (baseline)', (x) => x.killToAllRunningOnPageMs - x.pageBehindStreamMs),
      row('kill → page shows all running, ms', (x) => x.killToAllRunningOnPageMs),
      row('page behind the stream, ms', (x) => x.pageBehindStreamMs),
    ],
    ['the burst takes as long as the restarts do (1 s backoff ±20 %, then start); the page is measured against the stream it draws from'],
  );
  return [first, burst];
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);

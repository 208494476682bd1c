// node-mgr as the benchmarks run it: a real separate process (test/support/node-mgr-process.ts),
// plus the waits and the clean-up every bench needs.
import { api, startNodeMgrProcess, type NodeMgrProcess } from '../../test/support/node-mgr-process.ts';
import { sleep } from './report.ts';
import { useBenchEntry } from './entry.ts';

export { api, startNodeMgrProcess, type NodeMgrProcess };

// Every bench's node-mgr is the build operators run (or the sources, NODE_MGR_BENCH_ENTRY=tsx).
useBenchEntry();

export interface NodeSummary {
  id: string;
  port: number;
  kind: string;
  state: string;
  pid: number | null;
  since: string;
  lastError: string | null;
}

export async function listNodes(url: string): Promise<NodeSummary[]> {
  const r = await api<NodeSummary[]>(url, 'GET', '/v1/nodes');
  if (r.status !== 200) throw new Error(`GET /v1/nodes answered ${r.status}: ${r.text}`);
  return r.body;
}

/** Waits until `count` nodes are running; throws with the laggards' state and last error. */
export async function waitAllRunning(url: string, count: number, timeoutMs = 180_000): Promise<NodeSummary[]> {
  const deadline = Date.now() + timeoutMs;
  let nodes: NodeSummary[] = [];
  for (;;) {
    nodes = await listNodes(url);
    if (nodes.length === count && nodes.every((n) => n.state === 'running')) return nodes;
    // A refused start (port taken, data dir in use…) or a node given up on will not fix itself.
    const stuck = nodes.filter((n) => n.state === 'failed' || (n.state === 'stopped' && n.lastError));
    if (stuck.length > 0) {
      throw new Error(`${stuck.length} node(s) will not run: ${stuck.slice(0, 5).map((n) => `${n.id} ${n.state} (${n.lastError})`).join('; ')}`);
    }
    if (Date.now() > deadline) {
      const bad = nodes.filter((n) => n.state !== 'running').slice(0, 5);
      throw new Error(
        `only ${nodes.filter((n) => n.state === 'running').length} of ${count} nodes running after ${timeoutMs} ms; e.g. ` +
          bad.map((n) => `${n.id} ${n.state}${n.lastError ? ` (${n.lastError})` : ''}`).join('; '),
      );
    }
    await sleep(200);
  }
}

/** A pino line of node-mgr's log. */
export interface LogRecord {
  time: number;
  msg: string;
  node?: string;
  from?: string;
  to?: string;
  [k: string]: unknown;
}

export function logRecords(mgr: NodeMgrProcess): LogRecord[] {
  const out: LogRecord[] = [];
  for (const line of mgr.lines) {
    try {
      const rec = JSON.parse(line) as LogRecord;
      if (typeof rec.time === 'number') out.push(rec);
    } catch {
      // not JSON
    }
  }
  return out;
}

/**
 * Things to undo if a bench dies half-way (node-mgr processes, servers): run on exit, Ctrl-C and
 * uncaught errors, so that an interrupted bench leaves no database running.
 */
const cleanups: Array<() => Promise<void> | void> = [];
let cleaning: Promise<void> | null = null;

export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export function runCleanups(): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error(`    clean-up step failed: ${(err as Error).message}`);
      }
    }
  })();
  return cleaning;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`\n    ${sig}: cleaning up…`);
    void runCleanups().finally(() => process.exit(130));
  });
}

/** Runs a bench's main, always cleaning up; exits non-zero on failure. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    async () => {
      await runCleanups();
    },
    async (err) => {
      console.error(`\n    bench failed: ${(err as Error).stack ?? err}`);
      await runCleanups();
      process.exitCode = 1;
    },
  );
}

// Runs node-mgr as a real separate process (so tests can kill -9 it) and talks to its API.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { processState } from '../../src/host/process-info.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The sources through tsx: tests exercise the code as it is, never a stale build. */
export const BIN = path.join(ROOT, 'bin/node-mgr-dev.js');

/**
 * The entry startNodeMgrProcess runs: BIN, unless NODE_MGR_BIN names another (the benches set it to
 * bin/node-mgr.js, the compiled build operators run: bench/support/entry.ts).
 */
export function nodeMgrEntry(): string {
  return process.env.NODE_MGR_BIN ? path.resolve(ROOT, process.env.NODE_MGR_BIN) : BIN;
}

/** The Node flags of the entry's `#!/usr/bin/env -S node …` line: started as an operator's shell or systemd would. */
export function shebangFlags(entry: string): string[] {
  const first = readFileSync(entry, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\S*env -S node((?: --\S+)*)\s*$/.exec(first);
  return m ? m[1]!.split(' ').filter(Boolean) : [];
}

export interface NodeMgrProcess {
  url: string;
  pid: number;
  child: ChildProcess;
  /** Every stdout/stderr line so far (pino JSON and anything else). */
  lines: string[];
  /** Sends a signal and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Writes the config to <dir>/node-mgr.json and starts `node-mgr start` on it; resolves once it serves. */
export async function startNodeMgrProcess(dir: string, config: Record<string, unknown>, timeoutMs = 120_000, extraArgs: string[] = []): Promise<NodeMgrProcess> {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'node-mgr.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  // NODE_MGR_CPU_PROF=<dir>: each node-mgr writes a V8 CPU profile there when it exits cleanly (benches).
  const profile = process.env.NODE_MGR_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.NODE_MGR_CPU_PROF)}`] : [];
  const entry = nodeMgrEntry();
  const child = spawn(process.execPath, [...shebangFlags(entry), ...profile, entry, 'start', '--config', file, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node-mgr did not start within ${timeoutMs} ms:\n${lines.slice(-20).join('\n')}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        lines.push(line);
        if (process.env.NODE_MGR_TEST_VERBOSE) console.error(`[node-mgr ${child.pid}] ${line}`);
        try {
          const rec = JSON.parse(line) as { msg?: string; url?: string };
          if (rec.msg === 'node-mgr is serving' && rec.url) {
            clearTimeout(timer);
            resolve(rec.url);
          }
        } catch {
          /* not JSON */
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`node-mgr exited (${code ?? signal}) before serving:\n${lines.slice(-20).join('\n')}`));
    });
  });
  return {
    url,
    pid: child.pid!,
    child,
    lines,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

export interface ApiReply<T = any> {
  status: number;
  body: T;
  text: string;
}

export async function api<T = any>(url: string, method: string, route: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiReply<T>> {
  const res = await fetch(`${url}${route}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed as T, text };
}

/** The legacy protocol: POST / with a JSON body. */
export const legacy = <T = any>(url: string, body: unknown) => api<T>(url, 'POST', '/', body);

/** CREATE of a configured node through REST; fails the test unless it answers 200, and returns the server's pid. */
export async function createNode(url: string, port: number, headers: Record<string, string> = {}): Promise<number> {
  const created = await api(url, 'POST', `/v1/nodes/${port}/create`, undefined, headers);
  assert.equal(created.status, 200, created.text);
  return created.body.pid;
}

/** Polls GET /v1/nodes/:port until pred holds; returns the node view. */
export async function waitForNode(url: string, port: number, pred: (n: any) => boolean, timeoutMs = 60_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let last: any;
  while (Date.now() < deadline) {
    const r = await api(url, 'GET', `/v1/nodes/${port}`).catch(() => null);
    if (r && r.status === 200) {
      last = r.body;
      if (pred(last)) return last;
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`node ${port} did not reach the expected state within ${timeoutMs} ms; last: ${JSON.stringify(last && { state: last.state, pid: last.pid, lastError: last.lastError })}`);
}

/**
 * Polls a job with get_status until it is no longer busy. A seed reply too long for the original
 * clients' read carries a summary and `detail` (PROTOCOL §1): then `output` is the whole result,
 * from the REST record `detail` names, and `detail` stays to say so.
 */
export async function waitForJob(url: string, jobId: string, timeoutMs = 120_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await legacy(url, { ver: '0.1', job_type: 'get_status', job_id: jobId });
    if (r.body.result !== 'busy') {
      if (r.body.detail === undefined) return r.body;
      const whole = await api(url, 'GET', r.body.detail);
      if (whole.status !== 200) throw new Error(`GET ${r.body.detail}: HTTP ${whole.status} ${whole.text}`);
      return { ...r.body, output: whole.body.result, info: whole.body.info ?? r.body.info };
    }
    if (Date.now() > deadline) throw new Error(`job ${jobId} still busy after ${timeoutMs} ms: ${r.text}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** Kills leftover database process groups at the end of a test file. */
export async function killProcessGroups(pids: Array<number | null | undefined>): Promise<void> {
  for (const pid of pids) {
    if (!pid) continue;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  for (const pid of pids) {
    if (!pid) continue;
    for (let i = 0; i < 50 && (await processState(pid)) === 'running'; i++) await new Promise((r) => setTimeout(r, 100));
  }
}

export async function isRunning(pid: number): Promise<boolean> {
  return (await processState(pid)) === 'running';
}

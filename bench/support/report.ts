// What every benchmark prints and keeps: a header naming the machine and its load (the machine is
// shared, so a figure means little without it), side-by-side tables, and the raw numbers as JSON.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { entryNote } from './entry.ts';

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = path.resolve(BENCH_DIR, '..');
export const RESULTS_DIR = path.join(BENCH_DIR, 'results');

/** One `npm run bench` shares one id, so run-all can find what each script wrote. */
export const RUN_ID = process.env.BENCH_RUN_ID ?? new Date().toISOString().replace(/[:.]/g, '-');

/** A duration from the environment (seconds), for shortening the runs while iterating. */
export function envSeconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${raw} is not a positive number of seconds`);
  return n;
}

export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}=${raw} is not a positive integer`);
  return n;
}

export interface MachineNote {
  at: string;
  hostname: string;
  cores: number;
  cpuModel: string;
  memTotalMB: number;
  memAvailableMB: number;
  node: string;
  loadavg: number[];
  /** The code measured: HEAD and how many paths differ from it (the tree is shared and in flux). */
  commit: string;
  uncommittedPaths: number;
  /** Which node-mgr ran: the build in dist/ or the sources through tsx (bench/support/entry.ts). */
  nodeMgr: string;
}

/** Read-only git queries; '?' when git is not there. */
function gitState(): { commit: string; uncommittedPaths: number } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const status = execFileSync('git', ['status', '--porcelain'], { cwd: ROOT, encoding: 'utf8' });
    return { commit, uncommittedPaths: status.split('\n').filter(Boolean).length };
  } catch {
    return { commit: '?', uncommittedPaths: -1 };
  }
}

export function machineNote(): MachineNote {
  return {
    at: new Date().toISOString(),
    hostname: os.hostname(),
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '?',
    memTotalMB: Math.round(os.totalmem() / 2 ** 20),
    memAvailableMB: Math.round(os.freemem() / 2 ** 20),
    node: process.version,
    loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
    ...gitState(),
    nodeMgr: entryNote(),
  };
}

const fmtLoad = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');

/** Prints the header every script starts with; returns what it printed about the machine. */
export function printHeader(name: string, what: string): MachineNote {
  const m = machineNote();
  console.log(`\n=== bench/${name}: ${what}`);
  console.log(`    ${m.at}  ${m.hostname}, ${m.cores} × ${m.cpuModel}, ${m.memAvailableMB} of ${m.memTotalMB} MB free, node ${m.node}`);
  console.log(`    loadavg at start (1/5/15 min): ${fmtLoad(m.loadavg)}  — the machine is shared with other engineers' tests`);
  console.log(`    code: ${m.commit} + ${m.uncommittedPaths} uncommitted path(s) in the working tree; node-mgr run as ${m.nodeMgr}`);
  return m;
}

export function printFooter(name: string, startedAt: number): number[] {
  const load = os.loadavg().map((l) => Math.round(l * 100) / 100);
  console.log(`    bench/${name} took ${((Date.now() - startedAt) / 1000).toFixed(0)} s; loadavg at end: ${fmtLoad(load)}`);
  return load;
}

/** A cell: numbers get a sensible precision; null is "–". */
export type Cell = string | number | null | undefined;

function cellText(c: Cell): string {
  if (c === null || c === undefined) return '–';
  if (typeof c === 'string') return c;
  if (!Number.isFinite(c)) return String(c);
  const a = Math.abs(c);
  if (a >= 1000) return Math.round(c).toLocaleString('en-US');
  if (a >= 100) return c.toFixed(0);
  if (a >= 10) return c.toFixed(1);
  return c.toFixed(2);
}

/**
 * A table in the shape the issue asks for: the title is the first column's header, then
 * `columns` (e.g. ours, baseline, ratio). Returns the text so that run-all can print it again.
 */
export function table(title: string, columns: string[], rows: Array<[string, ...Cell[]]>, notes: string[] = []): string {
  const cells = rows.map(([label, ...rest]) => [label, ...rest.map(cellText)]);
  const first = Math.max(title.length, ...cells.map((r) => r[0]!.length)) + 2;
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => (r[i + 1] ?? '').length)) + 2);
  const line = (r: string[]) => (r[0]!.padEnd(first) + r.slice(1).map((c, i) => c.padEnd(widths[i]!)).join('')).trimEnd();
  const out = [line([title, ...columns]), ...cells.map(line), ...notes.map((n) => `  ${n}`)].join('\n');
  return out;
}

/** ours / baseline, or null when it means nothing. */
export function ratio(ours: number | null | undefined, baseline: number | null | undefined): number | null {
  if (ours === null || ours === undefined || baseline === null || baseline === undefined || baseline === 0) return null;
  return ours / baseline;
}

export function median(xs: number[]): number | null {
  return quantile(xs, 0.5);
}

/** Linear-interpolated quantile; null for no samples. */
export function quantile(xs: number[], q: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export function max(xs: number[]): number | null {
  return xs.length ? Math.max(...xs) : null;
}

export function mean(xs: number[]): number | null {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

/** "median (min–max)" for a row of several rounds. */
export function spread(xs: number[], unit = ''): string {
  if (xs.length === 0) return '–';
  const f = (x: number) => cellText(x) + unit;
  return xs.length === 1 ? f(xs[0]!) : `${f(median(xs)!)} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
}

export interface ResultFile {
  bench: string;
  runId: string;
  machine: MachineNote;
  loadavgAtEnd: number[];
  durationS: number;
  tables: string[];
  raw: unknown;
}

/** Writes bench/results/<name>-<run id>.json (the directory is git-ignored). */
export function saveResults(result: ResultFile): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${result.bench}-${result.runId}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.log(`    raw numbers: ${path.relative(ROOT, file)}`);
  return file;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

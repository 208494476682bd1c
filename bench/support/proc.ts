// What /proc says about a process's cost: CPU ticks (its own and its reaped children's) and memory.
import { readFileSync, readdirSync } from 'node:fs';

/** USER_HZ: 100 on every Linux node-mgr runs on (see src/host/process-info.ts). */
const TICKS_PER_SECOND = 100;

export interface CpuSample {
  /** utime + stime of the process itself, in seconds. */
  self: number;
  /** cutime + cstime: children it has waited for (du, init tools…), in seconds. */
  children: number;
  at: number;
}

export function cpuSample(pid: number): CpuSample {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3; utime = 14, stime = 15, cutime = 16, cstime = 17.
  const n = (field: number) => Number(f[field - 3]);
  return { self: (n(14) + n(15)) / TICKS_PER_SECOND, children: (n(16) + n(17)) / TICKS_PER_SECOND, at: performance.now() };
}

/** CPU use between two samples as % of one core. */
export function cpuPercent(a: CpuSample, b: CpuSample): { self: number; withChildren: number } {
  const wall = (b.at - a.at) / 1000;
  return { self: ((b.self - a.self) / wall) * 100, withChildren: ((b.self - a.self + b.children - a.children) / wall) * 100 };
}

export interface MemSample {
  rssMB: number;
  /** Proportional set size: shared pages divided among the processes sharing them. */
  pssMB: number | null;
  threads: number;
  fds: number;
}

export function memSample(pid: number): MemSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  let pss: number | null = null;
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    pss = Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? NaN) / 1024;
  } catch {
    // smaps_rollup needs Linux 4.14; RSS alone then.
  }
  let fds = 0;
  try {
    fds = readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    fds = NaN;
  }
  return { rssMB: kb('VmRSS') / 1024, pssMB: pss, threads: kb('Threads'), fds };
}

/** Sum of RSS and PSS over pids (for the supervised processes' own memory, shown for scale). */
export function memOf(pids: number[]): { rssMB: number; pssMB: number } {
  let rss = 0;
  let pss = 0;
  for (const pid of pids) {
    try {
      const m = memSample(pid);
      rss += m.rssMB;
      pss += m.pssMB ?? m.rssMB;
    } catch {
      // gone
    }
  }
  return { rssMB: rss, pssMB: pss };
}

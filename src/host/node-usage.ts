// Per-node disk and process figures, refreshed in the background: get_node never waits for du.
import { existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { execa } from 'execa';
import pidusage from 'pidusage';

export interface NodeUsageSample {
  diskUsed: number | null;
  diskFree: number | null;
  cpuPct: number | null;
  memRss: number | null;
}

export interface UsageTarget {
  id: string;
  dataDir: string;
  pid: number | null;
}

export class NodeUsage {
  private readonly samples = new Map<string, NodeUsageSample>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(
    private readonly targets: () => UsageTarget[],
    private readonly intervalMs = 10_000,
  ) {}

  start(): void {
    if (this.timer) return;
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get(id: string): NodeUsageSample {
    return this.samples.get(id) ?? { diskUsed: null, diskFree: null, cpuPct: null, memRss: null };
  }

  /** One pass over all nodes; passes never overlap. */
  async refresh(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const targets = this.targets();
      const pids = targets.map((t) => t.pid).filter((p): p is number => p !== null);
      let procs: Record<string, { cpu: number; memory: number }> = {};
      if (pids.length) procs = await pidusage(pids).catch(() => ({}));
      const used = await diskUsage(targets.map((t) => t.dataDir));
      for (const t of targets) {
        const free = await freeSpace(t.dataDir);
        const p = t.pid !== null ? procs[t.pid] : undefined;
        this.samples.set(t.id, { diskUsed: used.get(t.dataDir) ?? null, diskFree: free, cpuPct: p ? p.cpu : null, memRss: p ? p.memory : null });
      }
    } finally {
      this.running = false;
    }
  }
}

/**
 * Bytes used under each dir, from ONE `du -sb` over all of them: a spawn per node blocked the
 * event loop long enough to show in request latency with 200 nodes. Missing dirs are skipped.
 */
async function diskUsage(dirs: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const present = [...new Set(dirs)].filter((d) => existsSync(d));
  if (present.length === 0) return out;
  try {
    const { stdout } = await execa('du', ['-sb', '--', ...present], { reject: false, timeout: 120_000 });
    for (const line of stdout.split('\n')) {
      const tab = line.indexOf('\t');
      if (tab < 0) continue;
      const n = Number(line.slice(0, tab));
      if (Number.isFinite(n)) out.set(line.slice(tab + 1), n);
    }
  } catch {
    /* the next pass tries again */
  }
  return out;
}

async function freeSpace(dir: string): Promise<number | null> {
  try {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

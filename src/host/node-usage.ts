// Per-node disk and process figures, refreshed in the background: get_node never waits for du.
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
      for (const t of targets) {
        const [used, free] = await Promise.all([diskUsage(t.dataDir), freeSpace(t.dataDir)]);
        const p = t.pid !== null ? procs[t.pid] : undefined;
        this.samples.set(t.id, { diskUsed: used, diskFree: free, cpuPct: p ? p.cpu : null, memRss: p ? p.memory : null });
      }
    } finally {
      this.running = false;
    }
  }
}

async function diskUsage(dir: string): Promise<number | null> {
  try {
    const { stdout } = await execa('du', ['-sb', '--', dir], { reject: false, timeout: 60_000 });
    const n = Number(stdout.split(/\s/)[0]);
    return Number.isFinite(n) && stdout ? n : null;
  } catch {
    return null;
  }
}

async function freeSpace(dir: string): Promise<number | null> {
  try {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

// Per-node disk and process figures, refreshed in the background: get_node never waits for du.
import { existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { execFile } from 'node:child_process';
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

/** How long an unchanged data dir may go without a `du`: the backoff doubles up to this. */
export const MAX_DU_INTERVAL_MS = 10 * 60_000;

export interface NodeUsageOptions {
  /** The clock (tests). */
  now?: () => number;
  /** A data dir's filesystem whose used bytes moved by more than this since its last `du` makes it due at once. */
  fsChangeBytes?: number;
  /** Runs `du` (tests count the runs through it). */
  du?: (dirs: string[]) => Promise<Map<string, number>>;
  /** Free and used bytes of the filesystem holding a dir (tests move it at will). */
  filesystem?: (dir: string) => Promise<{ free: number; used: number } | null>;
}

/** How far the filesystem-movement threshold of an unchanged dir may grow: 16 × fsChangeBytes. */
const MAX_FS_SLACK_FACTOR = 16;

interface DirState {
  used: number | null;
  measuredAt: number;
  /** Wait before the next `du` of this dir: intervalMs, doubled each time it came back unchanged. */
  waitMs: number;
  /** Used bytes of its filesystem at that `du` (statfs), to notice a change cheaply. */
  fsUsedThen: number | null;
  /**
   * How far the filesystem's usage must move to make this dir due before its wait is over:
   * fsChangeBytes, doubled each time the dir came back unchanged. On a filesystem that other
   * writers keep moving (the other nodes, logs, anything else on the disk), an idle dir was
   * walked at every pass.
   */
  fsSlack: number;
}

export class NodeUsage {
  private readonly samples = new Map<string, NodeUsageSample>();
  private readonly dirs = new Map<string, DirState>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly now: () => number;
  private readonly fsChangeBytes: number;
  private readonly du: (dirs: string[]) => Promise<Map<string, number>>;
  private readonly filesystem: (dir: string) => Promise<{ free: number; used: number } | null>;
  /** `du` runs and the dirs they measured, since start (for the metrics and the bench). */
  readonly duStats = { runs: 0, dirs: 0 };
  /** Counts the passes that replaced the samples: a reply prepared from them is current while it has not moved. */
  changes = 0;

  constructor(
    private readonly targets: () => UsageTarget[],
    private readonly intervalMs = 10_000,
    opts: NodeUsageOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.fsChangeBytes = opts.fsChangeBytes ?? 64 * 2 ** 20;
    this.du = opts.du ?? diskUsage;
    this.filesystem = opts.filesystem ?? filesystemOf;
  }

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

  /**
   * One pass over all nodes; passes never overlap. Process figures for all pids come from one
   * pidusage call and free space from statfs; `du` walks only the data dirs that are due: never
   * measured, their backoff over (it doubles while the size stays the same), or their filesystem's
   * usage moved since by more than their slack (which doubles alongside, up to 16 × fsChangeBytes).
   */
  async refresh(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const targets = this.targets();
      const pids = targets.map((t) => t.pid).filter((p): p is number => p !== null);
      let procs: Record<string, { cpu: number; memory: number }> = {};
      if (pids.length) procs = await pidusage(pids).catch(() => ({}));
      const now = this.now();
      const fsOf = new Map<string, { free: number; used: number } | null>();
      for (const dir of new Set(targets.map((t) => t.dataDir))) fsOf.set(dir, await this.filesystem(dir));
      const due = [...fsOf.keys()].filter((dir) => this.isDue(dir, now, fsOf.get(dir)?.used ?? null));
      if (due.length) {
        const measured = await this.du(due);
        this.duStats.runs++;
        this.duStats.dirs += due.length;
        for (const dir of due) this.record(dir, measured.get(dir) ?? null, now, fsOf.get(dir)?.used ?? null);
      }
      const live = new Set(fsOf.keys());
      for (const dir of this.dirs.keys()) if (!live.has(dir)) this.dirs.delete(dir);
      for (const t of targets) {
        const p = t.pid !== null ? procs[t.pid] : undefined;
        this.samples.set(t.id, {
          diskUsed: this.dirs.get(t.dataDir)?.used ?? null,
          diskFree: fsOf.get(t.dataDir)?.free ?? null,
          cpuPct: p ? p.cpu : null,
          memRss: p ? p.memory : null,
        });
      }
      this.changes++;
    } finally {
      this.running = false;
    }
  }

  private isDue(dir: string, now: number, fsUsed: number | null): boolean {
    const st = this.dirs.get(dir);
    if (!st || st.used === null) return fsUsed !== null;
    if (now - st.measuredAt >= st.waitMs) return true;
    return fsUsed !== null && st.fsUsedThen !== null && Math.abs(fsUsed - st.fsUsedThen) > st.fsSlack;
  }

  private record(dir: string, used: number | null, now: number, fsUsed: number | null): void {
    const before = this.dirs.get(dir);
    const unchanged = before?.used !== null && before?.used !== undefined && used === before.used;
    this.dirs.set(dir, {
      used,
      measuredAt: now,
      waitMs: unchanged ? Math.min(before!.waitMs * 2, MAX_DU_INTERVAL_MS) : this.intervalMs,
      fsUsedThen: fsUsed,
      fsSlack: unchanged ? Math.min(before!.fsSlack * 2, this.fsChangeBytes * MAX_FS_SLACK_FACTOR) : this.fsChangeBytes,
    });
  }
}

/**
 * Bytes used under each dir, from ONE `du -sb` over all of them: a spawn per node blocked the
 * event loop long enough to show in request latency with 200 nodes. Missing dirs are skipped.
 * Started with execFile (an argv, no shell) rather than execa: execa's stdio set-up and its
 * exit-signal hooks cost node-mgr twice the CPU of the spawn itself at every pass, and a du
 * left behind by an exiting node-mgr harms nothing.
 */
export function diskUsage(dirs: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const present = [...new Set(dirs)].filter((d) => existsSync(d));
  if (present.length === 0) return Promise.resolve(out);
  return new Promise((resolve) => {
    // du exits 1 when a file under a dir could not be read: the sums it printed still count.
    execFile('du', ['-sb', '--', ...present], { timeout: 120_000, maxBuffer: 16 * 2 ** 20, encoding: 'utf8' }, (_err, stdout) => {
      for (const line of (stdout ?? '').split('\n')) {
        const tab = line.indexOf('\t');
        if (tab < 0) continue;
        const n = Number(line.slice(0, tab));
        if (Number.isFinite(n)) out.set(line.slice(tab + 1), n);
      }
      resolve(out);
    });
  });
}

/** Free bytes (for the node) and used bytes (the change signal) of the filesystem holding dir; null when dir is missing. */
async function filesystemOf(dir: string): Promise<{ free: number; used: number } | null> {
  try {
    const s = await statfs(dir);
    return { free: s.bavail * s.bsize, used: (s.blocks - s.bfree) * s.bsize };
  } catch {
    return null;
  }
}

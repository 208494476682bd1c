// Machine facts for get_info, sampled in the background so a request never waits for them.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { humanSize, megabytes } from './format.ts';

export interface HostSample {
  cpuPct: number;
  memUsed: number;
  memFree: number;
  disks: { mount: string; fs: string; size: number; used: number; available: number }[];
  sampledAt: number;
}

/** Nodes of this host by the seed's node types. */
export interface LegacyNodeCounts {
  meta_node: number;
  storage_node: number;
  computer_node: number;
}

export class HostInfo {
  private sample: HostSample | null = null;
  private first: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;

  /** Fixed for the life of the process; os.cpus() is costly enough to show in get_info latency. */
  private readonly cores = os.cpus().length;

  constructor(private readonly intervalMs = 5000) {}

  /** Starts background sampling; the first sample is taken at once. */
  start(): void {
    if (this.timer) return;
    this.first = this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private disks: { list: HostSample['disks']; at: number } | null = null;
  private disksRefresh: Promise<void> | null = null;

  /** /proc/stat's CPU ticks at the previous sample (boot at the first). */
  private ticks: CpuTicks = { busy: 0, total: 0 };

  // CPU and memory come from two /proc reads, kept current in the background (the CPU figure is a
  // difference between two reads). systeminformation's currentLoad ran `cat /proc/stat | grep cpu`
  // through execSync at every sample: the event loop stood still for it every 5 s. The filesystems
  // cost a `df` process: read only when asked.
  private async refresh(): Promise<void> {
    try {
      const [ticks, mem] = await Promise.all([readCpuTicks(), readMemory()]);
      const busy = ticks.busy - this.ticks.busy;
      const total = ticks.total - this.ticks.total;
      this.ticks = ticks;
      this.changes++;
      this.sample = {
        cpuPct: total > 0 ? (100 * busy) / total : (this.sample?.cpuPct ?? 0),
        memUsed: mem.total - mem.available,
        memFree: mem.available,
        disks: this.disks?.list ?? [],
        sampledAt: Date.now(),
      };
    } catch {
      // Keep the previous sample; the next tick tries again.
    }
  }

  /** Re-reads the filesystems when the last read is older than the interval; one read at a time. */
  private refreshDisks(): Promise<void> {
    if (!this.disksRefresh) this.diskReads++;
    // systeminformation is loaded at the first get_info, not at start-up (it is large).
    this.disksRefresh ??= import('systeminformation')
      .then(({ default: si }) => si.fsSize())
      .then(
        (fsSize) => {
          this.changes++;
          this.disks = { list: fsSize.map((d) => ({ mount: d.mount, fs: d.fs, size: d.size, used: d.used, available: d.available })), at: Date.now() };
          if (this.sample) this.sample = { ...this.sample, disks: this.disks.list };
        },
        () => undefined,
      )
      .finally(() => (this.disksRefresh = null));
    return this.disksRefresh;
  }

  /** Filesystem reads (`df` runs) so far. */
  diskReads = 0;

  /** Counts new samples (CPU and memory, filesystems): a get_info reply prepared from them is current while it has not moved and factsUntil() is ahead. */
  changes = 0;

  /**
   * The latest sample; the first call after start waits for it, never longer than 2 s. Filesystem
   * figures older than the interval are refreshed behind the reply (the first call waits for them).
   */
  async current(): Promise<HostSample | null> {
    const stale = !this.disks || Date.now() - this.disks.at >= this.intervalMs;
    const bound = () => new Promise((r) => setTimeout(r, 2000).unref());
    const disks = stale ? this.refreshDisks() : null;
    if (!this.disks && disks) await Promise.race([disks, bound()]);
    if (!this.sample && this.first) await Promise.race([this.first, bound()]);
    return this.sample;
  }

  private facts: { at: number; value: Record<string, unknown> } | null = null;

  /** Name, kernel, load and uptime, read at most once a second: under load these syscalls showed in the profile. */
  private hostFacts(): Record<string, unknown> {
    const now = Date.now();
    if (!this.facts || now - this.facts.at >= 1000) {
      this.facts = {
        at: now,
        value: {
          hostname: os.hostname(),
          os: `${os.type()} ${os.release()}`,
          kernel: os.release(),
          cores: this.cores,
          load: os.loadavg(),
          uptime_s: Math.round(os.uptime()),
        },
      };
    }
    return this.facts.value;
  }

  /** The filesystem (longest mount prefix) holding a path. */
  diskOf(p: string): HostSample['disks'][number] | undefined {
    const disks = this.sample?.disks ?? [];
    return disks
      .filter((d) => p === d.mount || p.startsWith(d.mount.endsWith('/') ? d.mount : `${d.mount}/`))
      .sort((a, b) => b.mount.length - a.mount.length)[0];
  }

  /**
   * Whether legacyInfoNow() can answer: the first samples are in. Like current(), starts a read
   * of the filesystems behind the reply when the last one is older than the interval.
   */
  ready(): boolean {
    if (!this.disks || Date.now() - this.disks.at >= this.intervalMs) void this.refreshDisks();
    return this.disks !== null && this.sample !== null;
  }

  /** Until when the host facts of the last reply (load, uptime) stay as they are. */
  factsUntil(): number {
    return this.facts ? this.facts.at + 1000 : 0;
  }

  /** The PROTOCOL §2 get_info reply (original fields first); waits for the first samples (at most 2 s each). */
  async legacyInfo(counts: LegacyNodeCounts, dataDirs: string[]) {
    await this.current();
    return this.legacyInfoNow(counts, dataDirs);
  }

  /** The get_info reply from the samples at hand. */
  legacyInfoNow(counts: LegacyNodeCounts, dataDirs: string[]) {
    const s = this.sample;
    const root = this.diskOf('/');
    const disks = [...new Set(dataDirs.map((d) => this.diskOf(d)).filter((d) => d !== undefined))];
    return {
      cpu_used: `${(s?.cpuPct ?? 0).toFixed(2)}%`,
      mem_used: megabytes(s?.memUsed ?? os.totalmem() - os.freemem()),
      mem_free: megabytes(s?.memFree ?? os.freemem()),
      disk_used: humanSize(root?.used ?? 0),
      disk_free: humanSize(root?.available ?? 0),
      ...counts,
      host: this.hostFacts(),
      disks: disks.map((d) => ({ mount: d.mount, fs: d.fs, size: humanSize(d.size), used: humanSize(d.used), free: humanSize(d.available) })),
    };
  }
}

interface CpuTicks {
  busy: number;
  total: number;
}

/**
 * All CPUs' ticks from /proc/stat's first line (user nice system idle iowait irq softirq steal …):
 * busy is everything but idle and iowait, as top counts it. Guest time is inside user already.
 */
export async function readCpuTicks(file = '/proc/stat'): Promise<CpuTicks> {
  const text = await readFile(file, 'utf8');
  const line = text.slice(0, text.indexOf('\n'));
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (!line.startsWith('cpu ') || f.length < 4 || f.some((n) => !Number.isFinite(n))) throw new Error(`${file}: no cpu line`);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/** Total and available memory in bytes from /proc/meminfo (MemAvailable: what can be had without swapping). */
export async function readMemory(file = '/proc/meminfo'): Promise<{ total: number; available: number }> {
  const text = await readFile(file, 'utf8');
  const kb = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : null;
  };
  const total = kb('MemTotal');
  const available = kb('MemAvailable') ?? kb('MemFree');
  if (total === null || available === null) throw new Error(`${file}: no MemTotal/MemAvailable`);
  return { total, available };
}

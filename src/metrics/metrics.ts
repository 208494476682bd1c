// What node-mgr tells Prometheus: node states and figures read from the actors at scrape time,
// job and backup outcomes observed as they happen, HTTP latency. One registry per node-mgr, so
// tests (and two node-mgrs in one process) never share counters. Names and the state numbers are
// a contract with dashboards and alerts: docs/metrics.md, never renumbered.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { NodeView } from '../supervisor/supervisor.ts';
import type { JobRecord, JobStatus } from '../state/store.ts';
import type { NodeUsageSample } from '../host/node-usage.ts';
import type { BinlogArchiveView } from '../backup/binlog-archive.ts';

/** `nodemgr_node_state` values. Append only: a number, once published, keeps its meaning. */
export const NODE_STATE_CODES = {
  adopting: 1,
  stopped: 2,
  initializing: 3,
  preflight: 4,
  starting: 5,
  running: 6,
  stopping: 7,
  crashed: 8,
  backoff: 9,
  held: 10,
  failed: 11,
  dropping: 12,
  dropped: 13,
  backing_up: 14,
  exporting: 15,
  importing: 16,
  restoring: 17,
} as const satisfies Record<string, number>;

/** 0 for a state this table does not know (a newer chart than the dashboard): never a guess. */
export function nodeStateCode(state: string): number {
  return (NODE_STATE_CODES as Record<string, number>)[state] ?? 0;
}

export type BackupResult = 'succeeded' | 'failed' | 'cancelled';

export interface BackupObservation {
  bytes: number;
  seconds: number;
  result: BackupResult;
  /** `cold`, `hot`, … as the backup job names its kind. */
  kind?: string;
}

/** What the metrics read at scrape time; narrow so tests can hand in plain objects. */
export interface MetricsSources {
  nodes(): NodeView[];
  /** The node serves and its last health probe passed (Supervisor.isReady). */
  ready(id: string): boolean;
  usage(id: string): NodeUsageSample;
  /** `du` runs of the usage passes and the data dirs they walked, since start. */
  diskWalks?(): { runs: number; dirs: number };
  jobCounts(): { running: number; queued: number };
  /** Subscribes to every job update; returns the unsubscribe function. */
  onJobUpdate(listener: (job: JobRecord) => void): () => void;
  /** Whether the node's kind has data to back up (a node that has none is no backup alert). */
  canBackUp?(node: NodeView): boolean;
  /** Succeeded backup jobs, newest first, read once at start: the last-backup times survive a node-mgr restart. */
  succeededBackups?(): JobRecord[];
  /** A MySQL node's binlog archive; null for a node that has none. */
  binlogArchive?(node: NodeView): BinlogArchiveView | null;
}

/** Job types that back a node up: their success sets the node's last-backup time. */
const BACKUP_JOB_TYPES: ReadonlySet<string> = new Set(['coldbackup']);

/**
 * prom-client's default gauges whose names end in `_total`, which Prometheus keeps for counters
 * (promtool rejects them). The same figures stay, by type, in `nodemgr_nodejs_active_handles`,
 * `_requests` and `_resources`.
 */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * How often prom-client's event-loop lag histogram samples, in ms. Its default, 10, is a libuv
 * timer waking node-mgr 100 times a second for as long as it runs: half a percent of a core on an
 * idle host, more than everything else node-mgr does there. At 100 a stall of 100 ms or more is
 * still always seen (its recorded lag short by at most 100 ms); shorter ones are sampled.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

const FINISHED: ReadonlySet<JobStatus> = new Set(['succeeded', 'failed', 'cancelled', 'interrupted']);

export class NodeMgrMetrics {
  readonly registry = new Registry();
  readonly contentType = this.registry.contentType;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  private readonly jobDuration: Histogram<'type' | 'result'>;
  private readonly backupSize: Histogram<'kind' | 'result'>;
  private readonly backupDuration: Histogram<'kind' | 'result'>;
  private readonly backupLastSuccess: Gauge<'kind'>;
  readonly eventStreamClients: Gauge;
  private readonly binlogArchivedFiles: Counter<'node'>;
  private readonly binlogArchivedBytes: Counter<'node'>;
  private readonly binlogArchiveErrors: Counter<'node'>;
  private readonly unsubscribe: () => void;
  /** When each live job was first seen running: its duration excludes the wait in the queue. */
  private readonly jobStarted = new Map<string, number>();
  /** When each node's last successful backup finished (ms since the epoch). */
  private readonly lastBackup = new Map<string, number>();
  /** Ids of jobs already counted, so a repeated update of a finished job is not counted twice. */
  private readonly jobCounted = new Set<string>();

  constructor(private readonly sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'nodemgr_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    for (const name of MISNAMED_DEFAULTS) this.registry.removeSingleMetric(`nodemgr_${name}`);
    for (const job of sources.succeededBackups?.() ?? []) {
      if (job.nodeId && !this.lastBackup.has(job.nodeId)) this.lastBackup.set(job.nodeId, job.finishedAt ?? job.updatedAt);
    }
    const lastBackup = this.lastBackup;

    const nodeLabels = ['node', 'kind', 'role', 'port', 'cluster', 'shard'] as const;
    new Gauge({
      name: 'nodemgr_node_state',
      help: 'State of the node actor as a number: see docs/metrics.md (1 adopting … 6 running … 8 crashed, 9 backoff … 17 restoring; 0 unknown)',
      labelNames: nodeLabels,
      registers,
      collect() {
        this.reset();
        for (const n of sources.nodes()) this.set(labelsOf(n), nodeStateCode(n.state));
      },
    });
    new Gauge({
      name: 'nodemgr_node_info',
      help: 'Always 1: the node with its kind, role, port, cluster and shard (join on node)',
      labelNames: nodeLabels,
      registers,
      collect() {
        this.reset();
        for (const n of sources.nodes()) this.set(labelsOf(n), 1);
      },
    });
    new Gauge({
      name: 'nodemgr_node_in_state',
      help: 'One series per node and state: 1 for the state the node is in now, 0 for the others',
      labelNames: ['node', 'cluster', 'shard', 'state'],
      registers,
      collect() {
        this.reset();
        for (const n of sources.nodes()) {
          const where = placeOf(n);
          for (const state of Object.keys(NODE_STATE_CODES)) this.set({ node: n.id, ...where, state }, state === n.state ? 1 : 0);
          if (nodeStateCode(n.state) === 0) this.set({ node: n.id, ...where, state: n.state }, 1);
        }
      },
    });
    new Counter({
      name: 'nodemgr_node_restarts_total',
      help: 'Automatic restarts of the node (kept across node-mgr restarts; reset when the node is re-registered or RESET)',
      labelNames: ['node', 'cluster', 'shard'],
      registers,
      collect() {
        this.reset();
        for (const n of sources.nodes()) this.inc({ node: n.id, ...placeOf(n) }, n.restarts);
      },
    });
    new Gauge({
      name: 'nodemgr_node_last_backup_success_timestamp_seconds',
      help: 'When the last successful backup of the node finished; 0 for a node that can be backed up and never was',
      labelNames: ['node', 'cluster', 'shard'],
      registers,
      collect() {
        this.reset();
        for (const n of sources.nodes()) {
          const at = lastBackup.get(n.id);
          if (at !== undefined) this.set({ node: n.id, ...placeOf(n) }, at / 1000);
          else if (sources.canBackUp?.(n)) this.set({ node: n.id, ...placeOf(n) }, 0);
        }
      },
    });
    new Gauge({
      name: 'nodemgr_node_ready',
      help: '1 when the node serves and its last health probe passed (what /v1/nodes/:port/health answers 200 for), else 0',
      labelNames: ['node'],
      registers,
      collect() {
        this.reset();
        for (const n of sources.nodes()) this.set({ node: n.id }, sources.ready(n.id) ? 1 : 0);
      },
    });
    new Gauge({
      name: 'nodemgr_node_restarts',
      help: 'Automatic restarts of the node since it was registered (kept across node-mgr restarts)',
      labelNames: ['node'],
      registers,
      collect() {
        this.reset();
        for (const n of sources.nodes()) this.set({ node: n.id }, n.restarts);
      },
    });
    new Gauge({
      name: 'nodemgr_node_last_exit_timestamp_seconds',
      help: 'When the server last exited on its own (crash), with its exit code, signal and diagnosed cause as labels',
      labelNames: ['node', 'code', 'signal', 'cause'],
      registers,
      collect() {
        this.reset();
        for (const n of sources.nodes()) {
          const e = n.lastExit;
          if (!e) continue;
          this.set({ node: n.id, code: e.code === null ? '' : String(e.code), signal: e.signal ?? '', cause: e.cause }, e.at / 1000);
        }
      },
    });
    new Gauge({
      name: 'nodemgr_node_backoff_remaining_seconds',
      help: 'Time left before a node in backoff is started again (0 when not in backoff)',
      labelNames: ['node'],
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const n of sources.nodes()) this.set({ node: n.id }, n.state === 'backoff' && n.backoffUntil ? Math.max(0, (n.backoffUntil - now) / 1000) : 0);
      },
    });
    const usageGauge = (name: string, help: string, pick: (u: NodeUsageSample) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: ['node'],
        registers,
        collect() {
          this.reset();
          for (const n of sources.nodes()) {
            const v = pick(sources.usage(n.id));
            if (v !== null) this.set({ node: n.id }, v);
          }
        },
      });
    usageGauge('nodemgr_node_cpu_percent', 'CPU use of the server process, percent of one core (sampled every 10 s)', (u) => u.cpuPct);
    usageGauge('nodemgr_node_memory_rss_bytes', 'Resident memory of the server process (sampled every 10 s)', (u) => u.memRss);
    usageGauge('nodemgr_node_disk_used_bytes', 'Size of the node data directory (du, when it may have changed: see docs/metrics.md)', (u) => u.diskUsed);
    const walkCounter = (name: string, help: string, pick: (w: { runs: number; dirs: number }) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          const w = sources.diskWalks?.();
          this.reset();
          if (w) this.inc(pick(w));
        },
      });
    walkCounter('nodemgr_disk_usage_walks_total', 'du runs of the usage passes (one run walks every data dir that is due)', (w) => w.runs);
    walkCounter('nodemgr_disk_usage_walked_dirs_total', 'Data dirs walked by du', (w) => w.dirs);

    new Gauge({
      name: 'nodemgr_jobs',
      help: 'Jobs running and waiting now',
      labelNames: ['status'],
      registers,
      collect() {
        const c = sources.jobCounts();
        this.set({ status: 'running' }, c.running);
        this.set({ status: 'queued' }, c.queued);
      },
    });
    this.jobDuration = new Histogram({
      name: 'nodemgr_job_duration_seconds',
      help: 'Run time of finished jobs (from start to end, without the wait in the queue), by job type and result',
      labelNames: ['type', 'result'],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600],
      registers,
    });
    this.backupSize = new Histogram({
      name: 'nodemgr_backup_size_bytes',
      help: 'Bytes written by each backup, by kind and result (the _sum is the total backed up)',
      labelNames: ['kind', 'result'],
      buckets: [1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13],
      registers,
    });
    this.backupDuration = new Histogram({
      name: 'nodemgr_backup_duration_seconds',
      help: 'Duration of each backup, by kind and result',
      labelNames: ['kind', 'result'],
      buckets: [1, 10, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600],
      registers,
    });
    this.backupLastSuccess = new Gauge({
      name: 'nodemgr_backup_last_success_timestamp_seconds',
      help: 'When the last successful backup of each kind finished',
      labelNames: ['kind'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'nodemgr_http_request_duration_seconds',
      help: 'HTTP request latency by route pattern and status code (the event stream is not counted)',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30, 120],
      registers,
    });
    this.eventStreamClients = new Gauge({ name: 'nodemgr_event_stream_clients', help: 'Clients connected to GET /v1/events', registers });

    const archiveGauge = (name: string, help: string, pick: (v: BinlogArchiveView) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: ['node', 'cluster', 'shard'],
        registers,
        collect() {
          this.reset();
          for (const n of sources.nodes()) {
            const v = sources.binlogArchive?.(n);
            if (!v?.enabled) continue;
            const value = pick(v);
            if (value !== null) this.set({ node: n.id, ...placeOf(n) }, value);
          }
        },
      });
    archiveGauge('nodemgr_binlog_archive_lag_seconds', 'Age of the oldest binlog transaction of the node not in the archive yet (0 when the archive has them all)', (v) => v.lag_seconds);
    archiveGauge('nodemgr_binlog_archive_lag_bytes', 'Bytes of the node\'s binlogs not in the archive yet: closed files pending and the current file\'s transactions', (v) => v.lag_bytes);
    archiveGauge('nodemgr_binlog_archive_pending_files', 'Closed binlog files of the node not archived yet', (v) => v.pending_files.length);
    archiveGauge('nodemgr_binlog_archive_pending_bytes', 'Bytes of the closed binlog files of the node not archived yet (lowered as a pass uploads them)', (v) => v.pending_bytes);
    archiveGauge('nodemgr_binlog_archive_ok', '1 when the last archiving pass of the node archived every closed binlog, 0 when it failed or has not run', (v) => (v.state === 'ok' ? 1 : 0));
    archiveGauge('nodemgr_binlog_archive_last_archived_timestamp_seconds', 'When the newest archived binlog of the node was committed to the archive (absent before the first)', (v) =>
      v.last_archived ? Date.parse(v.last_archived.archived_at) / 1000 : null,
    );
    this.binlogArchivedFiles = new Counter({ name: 'nodemgr_binlog_archived_files_total', help: 'Binlog files archived by this node-mgr since it started', labelNames: ['node'], registers });
    this.binlogArchivedBytes = new Counter({ name: 'nodemgr_binlog_archived_bytes_total', help: 'Binlog bytes archived by this node-mgr since it started', labelNames: ['node'], registers });
    this.binlogArchiveErrors = new Counter({ name: 'nodemgr_binlog_archive_errors_total', help: 'Archiving passes that left a closed binlog unarchived (the next pass retries)', labelNames: ['node'], registers });

    this.unsubscribe = sources.onJobUpdate((job) => this.onJob(job));
  }

  /** For the backup job: one call per finished backup, whatever its outcome. */
  observeBackup(o: BackupObservation): void {
    const labels = { kind: o.kind ?? 'cold', result: o.result };
    this.backupSize.observe(labels, Math.max(0, o.bytes));
    this.backupDuration.observe(labels, Math.max(0, o.seconds));
    if (o.result === 'succeeded') this.backupLastSuccess.set({ kind: labels.kind }, Date.now() / 1000);
  }

  /** For the binlog archiver: one call per file committed to the archive. */
  observeBinlogArchived(node: string, bytes: number): void {
    this.binlogArchivedFiles.inc({ node });
    this.binlogArchivedBytes.inc({ node }, bytes);
  }

  observeBinlogArchiveError(node: string): void {
    this.binlogArchiveErrors.inc({ node });
  }

  observeHttp(method: string, route: string, statusCode: number, seconds: number): void {
    this.httpDuration.observe({ method, route, status_code: String(statusCode) }, seconds);
  }

  /** observeHttp for one label set, bound once (a hot path records the same labels on every request). */
  httpObserver(method: string, route: string, statusCode: number): (seconds: number) => void {
    const child = this.httpDuration.labels({ method, route, status_code: String(statusCode) });
    return (seconds) => child.observe(seconds);
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  async render(): Promise<string> {
    return this.registry.metrics();
  }

  close(): void {
    this.unsubscribe();
  }

  private onJob(job: JobRecord): void {
    if (this.jobCounted.has(job.id)) return;
    if (job.status === 'running' && !this.jobStarted.has(job.id)) this.jobStarted.set(job.id, job.updatedAt);
    if (!FINISHED.has(job.status)) return;
    const started = this.jobStarted.get(job.id) ?? job.createdAt;
    this.jobStarted.delete(job.id);
    this.jobCounted.add(job.id);
    // Remember only recent ids: an update of a job finished long ago does not come any more.
    if (this.jobCounted.size > 10_000) this.jobCounted.delete(this.jobCounted.values().next().value!);
    this.jobDuration.observe({ type: job.type, result: job.status }, Math.max(0, ((job.finishedAt ?? job.updatedAt) - started) / 1000));
    if (job.status === 'succeeded' && job.nodeId && BACKUP_JOB_TYPES.has(job.type)) this.lastBackup.set(job.nodeId, job.finishedAt ?? job.updatedAt);
  }
}

/** Empty labels for a node outside a cluster or shard (cluster_mgr, a computing node's shard). */
function placeOf(n: NodeView): { cluster: string; shard: string } {
  return { cluster: n.cluster ?? '', shard: n.shard ?? '' };
}

function labelsOf(n: NodeView): { node: string; kind: string; role: string; port: string; cluster: string; shard: string } {
  return { node: n.id, kind: n.kind, role: n.role, port: String(n.port), ...placeOf(n) };
}

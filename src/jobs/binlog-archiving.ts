// Binlog archiving in the background: one pass per MySQL storage/meta node every
// `binlogArchive.delaySeconds`, each node on its own (a slow upload of one never delays another),
// none through the node's actor (archiving reads files and asks SQL; it changes nothing the chart
// knows about). What each node's archive lacks is kept here for get_node, /v1, metrics and the
// inspector. Nothing is remembered across restarts: the INDEX in the store is the truth, and the
// first pass after a start re-checks what it says against the server's files.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { archiveBinlogs, type ArchivePassResult } from './binlog-archiver.ts';
import { binlogArchiveDir, readBinlogArchive, type ArchivedBinlog, type BinlogArchiveView } from '../backup/binlog-archive.ts';
import { openStore } from '../backup/index.ts';
import type { BackupStore } from '../backup/store.ts';

/** A node as archiving needs it: its spec, its state (for messages) and whether its server serves (the chart's `serving` tag). */
export interface ArchivingNode {
  spec: NodeSpec;
  state: string;
  serving: boolean;
}

export interface BinlogArchivingOptions {
  config: Config;
  /** The nodes now, with what their charts say. */
  nodes: () => ArchivingNode[];
  log: Logger;
  /** The store archives go to; the configured one by default. */
  store?: () => BackupStore;
  /** Each committed file, for the metrics. */
  onArchived?: (nodeId: string, entry: ArchivedBinlog) => void;
  /** Each failed pass, for the metrics. */
  onError?: (nodeId: string) => void;
}

interface NodeArchiving {
  running: Promise<void> | null;
  last: ArchivePassResult | null;
  lastPassAt: number | null;
  /** When the last pass that could look at both the server and the archive started. */
  lastLookAt: number | null;
  /** The last pass could not look (no login, the store unreadable): the lag is not known past lastLookAt. */
  blind: boolean;
  error: string | null;
  archivedFiles: number;
  archivedBytes: number;
  /** Files found identical to their archived copy (see ArchivePassOptions.confirmed). */
  confirmed: Set<string>;
  /** The last entry the archive holds, read once before the first pass ends. */
  lastArchived: ArchivedBinlog | null;
  /** Bytes of closed files not archived: set when a pass knows what it has to copy, lowered as each file commits. */
  pendingBytes: number;
  /** The files behind pendingBytes, while a pass copies them. */
  pendingFiles: string[] | null;
}

/**
 * When the oldest transaction the archive lacks was written (ms), null when it lacks none. A pass
 * that could not look says nothing about what was written since the last one that could: the lag
 * then counts from that one (an RPO alert must not stay quiet while the store is unreachable).
 */
function behindSince(s: NodeArchiving): number | null {
  const known = s.last?.behindSinceMs ?? null;
  return s.blind && s.lastLookAt !== null ? Math.min(known ?? Infinity, s.lastLookAt) : known;
}

/** Why a node's binlogs are not archived, or null when they are. */
export function notArchived(config: Config, spec: NodeSpec): string | null {
  if (spec.kind !== 'mysql' || (spec.role !== 'storage' && spec.role !== 'meta')) return `a ${spec.kind} ${spec.role} node has no binlogs to archive`;
  if (!config.binlogArchive.enabled) return 'binlog archiving is off (config binlogArchive.enabled)';
  try {
    archiveDirOf(spec);
  } catch (err) {
    return (err as Error).message;
  }
  return null;
}

/** The node's archive directory in the store: the binlogs of this host's server on the node's port. */
export function archiveDirOf(spec: NodeSpec): string {
  return binlogArchiveDir({ ...spec, host: hostname() });
}

export class BinlogArchiving {
  readonly #nodes = new Map<string, NodeArchiving>();
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  /** Counts every change of what view() shows but the clock (lag_seconds): a reply prepared from the views is current while it has not moved. */
  changes = 0;
  readonly #listeners = new Set<(nodeId: string) => void>();

  constructor(private readonly opts: BinlogArchivingOptions) {}

  /** Calls `fn` with the node's id whenever what view() shows of it changes (the event stream's `archive` events); returns the unsubscribe. */
  onChange(fn: (nodeId: string) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #changed(nodeId: string): void {
    this.changes++;
    for (const fn of this.#listeners) fn(nodeId);
  }

  /** Starts the passes (the first one at once). */
  start(): void {
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.tick();
      this.#schedule(this.opts.config.binlogArchive.delaySeconds * 1000);
    }, ms);
    this.#timer.unref();
  }

  #store(): BackupStore {
    return this.opts.store?.() ?? openStore(this.opts.config);
  }

  #state(id: string): NodeArchiving {
    let s = this.#nodes.get(id);
    if (!s) {
      s = {
        running: null,
        last: null,
        lastPassAt: null,
        lastLookAt: null,
        blind: false,
        error: null,
        archivedFiles: 0,
        archivedBytes: 0,
        confirmed: new Set(),
        lastArchived: null,
        pendingBytes: 0,
        pendingFiles: null,
      };
      this.#nodes.set(id, s);
    }
    return s;
  }

  /** Starts a pass on every node that is due and has none running. Returns the passes started. */
  tick(): Promise<void>[] {
    const started: Promise<void>[] = [];
    const present = new Set<string>();
    for (const { spec, serving } of this.opts.nodes()) {
      present.add(spec.id);
      if (notArchived(this.opts.config, spec) !== null || !serving) continue;
      const s = this.#state(spec.id);
      if (s.running) continue;
      s.running = this.#pass(spec, s).finally(() => {
        s.running = null;
        this.#changed(spec.id);
      });
      started.push(s.running);
    }
    for (const id of this.#nodes.keys()) {
      if (!present.has(id) && !this.#nodes.get(id)!.running) {
        this.#nodes.delete(id);
        this.#changed(id);
      }
    }
    return started;
  }

  /** Runs a pass on one node now (or waits for the one running) and returns its view. */
  async runNow(spec: NodeSpec): Promise<BinlogArchiveView> {
    const s = this.#state(spec.id);
    if (s.running) await s.running;
    else {
      s.running = this.#pass(spec, s).finally(() => {
        s.running = null;
        this.#changed(spec.id);
      });
      await s.running;
    }
    return this.view({ spec, state: 'running', serving: true });
  }

  async #pass(spec: NodeSpec, s: NodeArchiving): Promise<void> {
    this.#changed(spec.id);
    const config = this.opts.config.binlogArchive;
    const store = this.#store();
    const startedAt = Date.now();
    try {
      const result = await archiveBinlogs(spec, {
        store,
        dir: archiveDirOf(spec),
        rotateEverySeconds: config.rotateEverySeconds,
        confirmed: s.confirmed,
        signal: this.#abort.signal,
        log: this.opts.log,
        onPending: (files) => {
          s.pendingFiles = files.map((f) => f.name);
          s.pendingBytes = files.reduce((sum, f) => sum + f.size, 0);
          this.#changed(spec.id);
        },
        onArchived: (entry) => {
          s.archivedFiles++;
          s.archivedBytes += entry.size;
          s.pendingBytes = Math.max(0, s.pendingBytes - entry.size);
          s.pendingFiles = s.pendingFiles?.filter((f) => f !== entry.file) ?? null;
          s.lastArchived = entry;
          this.opts.onArchived?.(spec.id, entry);
          this.#changed(spec.id);
        },
      });
      s.pendingBytes = result.pendingBytes;
      s.last = result;
      s.lastArchived = result.lastArchived;
      s.error = result.error;
      s.lastLookAt = startedAt;
      s.blind = false;
    } catch (err) {
      if (this.#abort.signal.aborted) return;
      s.blind = true;
      s.lastLookAt ??= startedAt;
      s.error = `archiving the binlogs of ${spec.id}: ${(err as Error).message}`;
      // The view still shows the newest archived file when the server could not be asked.
      if (s.lastArchived === null) s.lastArchived = (await readBinlogArchive(store, archiveDirOf(spec)).catch(() => null))?.entries.at(-1) ?? null;
    } finally {
      s.pendingFiles = null;
      s.lastPassAt = Date.now();
      this.#changed(spec.id);
    }
    if (s.error) {
      this.opts.onError?.(spec.id);
      this.opts.log.warn({ node: spec.id, err: s.error }, 'binlog archiving failed; the next pass retries');
    }
  }

  /** The node's archive as get_node and the others show it. */
  view(node: ArchivingNode, now = Date.now()): BinlogArchiveView {
    const { spec, state: nodeState } = node;
    const off = notArchived(this.opts.config, spec);
    const s = this.#nodes.get(spec.id);
    let archive: string | null = null;
    try {
      archive = `${this.opts.config.backup.store}:${archiveDirOf(spec)}`;
    } catch {
      // A node without a place in the store: `off` says why.
    }
    const last = s?.lastArchived ?? null;
    const pass = s?.last ?? null;
    const behind = s ? behindSince(s) : null;
    const state: BinlogArchiveView['state'] =
      off !== null ? 'off' : s?.running && !pass ? 'archiving' : !node.serving ? 'waiting' : s?.error ? 'error' : pass ? 'ok' : 'archiving';
    return {
      enabled: off === null,
      state,
      detail: off ?? (state === 'waiting' ? `the node is ${nodeState}: archiving resumes when it runs` : (s?.error ?? null)),
      archive,
      last_archived: last ? { file: last.file, archived_at: last.archived_at, last_event_time: last.last_event_time, size: last.size } : null,
      current_file: pass?.current ?? null,
      // Files and bytes from the same source: the pass under way, else the last finished one (a
      // pass that threw had counted its own files into pendingBytes, not the last one's).
      pending_files: s?.pendingFiles ?? pass?.pending ?? [],
      pending_bytes: s?.pendingFiles ? s.pendingBytes : (pass?.pendingBytes ?? s?.pendingBytes ?? 0),
      lag_seconds: behind === null ? 0 : Math.max(0, Math.round((now - behind) / 1000)),
      lag_bytes: pass?.lagBytes ?? 0,
      archived_files: s?.archivedFiles ?? 0,
      archived_bytes: s?.archivedBytes ?? 0,
      last_pass_at: s?.lastPassAt ? new Date(s.lastPassAt).toISOString() : null,
    };
  }

  /** The first ms after `now` at which a node's rounded lag_seconds reads differently; Infinity when none lags. */
  nextLagChange(now: number): number {
    let next = Infinity;
    for (const s of this.#nodes.values()) {
      const behind = behindSince(s);
      if (behind !== null) next = Math.min(next, behind + Math.round((now - behind) / 1000) * 1000 + 500);
    }
    return next;
  }

  /** Whether archiving is on for the node (the binlog purge then keeps what is not archived). */
  enabledFor(spec: NodeSpec): boolean {
    return notArchived(this.opts.config, spec) === null;
  }

  /** Stops the passes: running uploads are aborted (their `._COPYING_` is replaced by the next start's). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#abort.abort(new Error('node-mgr is stopping'));
    await Promise.allSettled([...this.#nodes.values()].map((s) => s.running));
  }
}

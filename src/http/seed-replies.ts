// The read-only seed replies (get_node, get_status, get_info) as the JSON text to send, prepared
// when what they show changes rather than at every request: callers such as cluster_mgr poll them
// thousands of times between two changes, and building them (a view of every node, its usage,
// JSON.stringify) was most of a request's cost. A prepared text is exactly what a fresh build would
// give at that moment: it is rebuilt when the supervisor, the usage pass, the host sampler or the
// binlog archiver says something moved, when a reload changes exposeSecrets or binlogArchive, and
// when the clock reaches the next second at which a running node's rounded `uptime_s`, an archive's
// `lag_seconds` (or the host's load and uptime) would read differently.
import type { JobRecord } from '../state/store.ts';
import type { NodeView } from '../supervisor/supervisor.ts';
import type { HttpDeps } from './deps.ts';
import { getNodeReply, getNodeText, legacyInfo } from './legacy-nodes.ts';
import type { NODE_TYPES } from './legacy-requests.ts';
import { noSuchJobStatus, toLegacyStatus } from './legacy-status.ts';

type NodeType = (typeof NODE_TYPES)[number];

interface Prepared {
  text: string;
  supervisor: number;
  usage: number;
  host: number;
  archive: number;
  exposeSecrets: boolean;
  archiveConfig: unknown;
  /** The text holds for now in [from, until): a clock set back is a change too. */
  from: number;
  until: number;
}

export class SeedReplies {
  /** get_node by node_type ('' for all types). */
  private readonly nodeReplies = new Map<string, Prepared>();
  private infoReply: Prepared | null = null;
  /**
   * get_status texts by job record: a job's record is replaced, never changed, at every update
   * (the store's reads are cached and frozen), so a text is current while its record is.
   */
  private readonly statusTexts = new WeakMap<JobRecord, string>();

  constructor(private readonly deps: HttpDeps) {}

  getNode(nodeType?: NodeType): string {
    const now = Date.now();
    const key = nodeType ?? '';
    const held = this.nodeReplies.get(key);
    if (held && this.current(held, now)) return held.text;
    const nodes = this.deps.supervisor.list();
    // Fitted to the original clients' read once here, not per request. A trimmed text has no
    // uptime_s or lag_seconds, and the whole text only grows with the clock (longer uptimes and
    // lags), so a trimmed text holds until something counted changes.
    const { text, trimmed } = getNodeText(getNodeReply(this.deps, nodeType, nodes, now));
    const until = trimmed ? Infinity : Math.min(nextUptimeChange(nodes, now), this.deps.binlogArchive?.nextLagChange(now) ?? Infinity);
    const prepared = this.prepare(text, now, until);
    this.nodeReplies.set(key, prepared);
    return prepared.text;
  }

  /** The get_info text, or undefined until the host's first samples are in (the caller waits for them). */
  getInfo(): string | undefined {
    if (!this.deps.host.ready()) return undefined;
    const now = Date.now();
    const held = this.infoReply;
    if (held && this.current(held, now)) return held.text;
    const text = JSON.stringify(legacyInfo(this.deps, this.deps.supervisor.list()));
    this.infoReply = this.prepare(text, now, this.deps.host.factsUntil());
    return text;
  }

  getStatus(jobId: string): string {
    const job = this.deps.jobs.get(jobId);
    if (!job) return JSON.stringify(noSuchJobStatus(jobId));
    let text = this.statusTexts.get(job);
    if (text === undefined) this.statusTexts.set(job, (text = JSON.stringify(toLegacyStatus(job))));
    return text;
  }

  private prepare(text: string, now: number, until: number): Prepared {
    const { supervisor, usage, host, binlogArchive, config } = this.deps;
    return {
      text,
      supervisor: supervisor.changes,
      usage: usage.changes,
      host: host.changes,
      archive: binlogArchive?.changes ?? 0,
      exposeSecrets: config.security.exposeSecrets,
      archiveConfig: config.binlogArchive,
      from: now,
      until,
    };
  }

  private current(p: Prepared, now: number): boolean {
    const { supervisor, usage, host, binlogArchive, config } = this.deps;
    return (
      p.supervisor === supervisor.changes &&
      p.usage === usage.changes &&
      p.host === host.changes &&
      p.archive === (binlogArchive?.changes ?? 0) &&
      p.exposeSecrets === config.security.exposeSecrets &&
      p.archiveConfig === config.binlogArchive &&
      now >= p.from &&
      now < p.until
    );
  }
}

/**
 * The first ms at which a running node's `uptime_s` = round((now − since) / 1000) moves on: when
 * now − since reaches the next half second. Infinity when no node is running.
 */
export function nextUptimeChange(nodes: readonly NodeView[], now: number): number {
  let next = Infinity;
  for (const n of nodes) {
    if (n.state !== 'running') continue;
    const since = Date.parse(n.since);
    const shown = Math.round((now - since) / 1000);
    next = Math.min(next, since + shown * 1000 + 500);
  }
  return next;
}

const byDeps = new WeakMap<HttpDeps, SeedReplies>();

/** The one SeedReplies of an HTTP face (its routes and the seed fast path share it). */
export function seedRepliesFor(deps: HttpDeps): SeedReplies {
  let replies = byDeps.get(deps);
  if (!replies) byDeps.set(deps, (replies = new SeedReplies(deps)));
  return replies;
}

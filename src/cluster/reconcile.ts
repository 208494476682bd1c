// What update_node changes: the supervised nodes compared with what a discovery source reports.
// Pure: it decides, the supervisor acts. Nodes are matched by port, their identity on a host.
import path from 'node:path';
import type { NodeEntry, NodeKind, NodeRole } from '../config/schema.ts';
import { DiscoveryError, type DiscoveredNode, type DiscoveredRole } from './discovery.ts';

export type NodeSource = 'static' | 'created' | 'discovered';

/** A node node-mgr supervises now. `role` and `entry` are optional; with them reconcile can do more (below). */
export interface CurrentNode {
  id: string;
  port: number;
  source: NodeSource;
  /** Needed when `roles` narrows the reconciliation (else taken from `entry`). */
  role?: NodeRole;
  /** With it, changed credentials or cluster/shard of a discovered node become an `update`. */
  entry?: NodeEntry;
}

export interface Conflict {
  port: number;
  /** One sentence for the operator; never contains a password. */
  reason: string;
}

export interface Reconciliation {
  /** New nodes to register with source `discovered`. */
  add: NodeEntry[];
  /** Ids of `discovered` nodes the source no longer reports: stop supervising them (never kill). */
  remove: string[];
  /** Ids of every current node that stays (all current nodes minus `remove`). */
  keep: string[];
  /** Kept `discovered` nodes whose entry changed (same port and kind); only when `entry` was given. */
  update: NodeEntry[];
  /** Discovered nodes that were not added, and why. */
  conflicts: Conflict[];
}

export interface ReconcileOptions {
  /** update_node with a `node_type`: only current nodes of these roles may be removed. */
  roles?: readonly DiscoveredRole[];
}

/**
 * Compares current and discovered nodes. Nodes of source `static` (the config) or `created`
 * (CREATE on this host) are never removed: a source that forgets them is not a reason to drop a
 * database. When a port changes kind, its old id is in `remove` and the new entry in `add`:
 * apply removes before adds.
 */
export function reconcile(
  current: readonly CurrentNode[],
  discovered: readonly DiscoveredNode[],
  toEntry: (d: DiscoveredNode) => NodeEntry,
  opts: ReconcileOptions = {},
): Reconciliation {
  const result: Reconciliation = { add: [], remove: [], keep: [], update: [], conflicts: [] };
  const inScope = (node: CurrentNode): boolean => {
    const role = node.role ?? node.entry?.role;
    return !opts.roles || (role !== undefined && (opts.roles as readonly string[]).includes(role));
  };
  const byPort = new Map<number, CurrentNode>();
  for (const node of current) byPort.set(node.port, node);

  const seen = new Map<number, DiscoveredNode>();
  const matched = new Set<string>();
  for (const d of discovered) {
    const earlier = seen.get(d.port);
    if (earlier) {
      result.conflicts.push({
        port: d.port,
        reason: `port ${d.port} is reported twice (${describe(earlier)} and ${describe(d)}); the first is used`,
      });
      continue;
    }
    seen.set(d.port, d);

    const entry = toEntry(d);
    const holder = byPort.get(d.port);
    if (!holder) {
      result.add.push(entry);
      continue;
    }
    const holderKind = holder.entry?.kind ?? kindOfId(holder.id);
    const holderRole = holder.role ?? holder.entry?.role;
    if (holder.source !== 'discovered') {
      matched.add(holder.id);
      if ((holderKind && holderKind !== entry.kind) || (holderRole && holderRole !== entry.role)) {
        result.conflicts.push({
          port: d.port,
          reason: `${describe(d)} is reported on port ${d.port}, which belongs to ${holder.source} node ${holder.id}${holderRole ? ` (${holderRole})` : ''}; the ${holder.source} node stays`,
        });
      }
      continue;
    }
    if (holderKind && holderKind !== entry.kind) {
      // The port now holds another kind of server: a different node, not an update.
      if (inScope(holder)) {
        result.add.push(entry);
      } else {
        matched.add(holder.id);
        result.conflicts.push({
          port: d.port,
          reason: `${describe(d)} is reported on port ${d.port}, which belongs to node ${holder.id}, outside the node types being updated; ${holder.id} stays`,
        });
      }
      continue;
    }
    matched.add(holder.id);
    if (holder.entry && changed(holder.entry, entry)) result.update.push(withIdentityOf(holder.entry, entry));
  }

  for (const node of current) {
    if (node.source === 'discovered' && !matched.has(node.id) && inScope(node)) result.remove.push(node.id);
    else result.keep.push(node.id);
  }
  return result;
}

/** The kind of server each discovered role runs: Kunlun's meta and storage nodes are MySQL, computer nodes PostgreSQL. */
export const KIND_OF_ROLE: Record<DiscoveredRole, NodeKind> = { meta: 'mysql', storage: 'mysql', computer: 'postgres' };

/** The node-mgr entry of a discovered node; its directory is `<baseDir>/<port>`. */
export function discoveredNodeToEntry(d: DiscoveredNode, baseDir: string): NodeEntry {
  const entry: NodeEntry = {
    kind: KIND_OF_ROLE[d.role],
    role: d.role,
    port: d.port,
    ip: d.ip,
    dir: path.resolve(baseDir, String(d.port)),
    user: d.user,
    password: d.password,
    serverOptions: {},
  };
  if (d.cluster !== undefined) entry.cluster = d.cluster;
  if (d.shard !== undefined) entry.shard = d.shard;
  return entry;
}

/** The `toEntry` for reconcile from the config's `discovery` section; fails at once without `baseDir`. */
export function entryMapperFor(discovery: { source?: string; baseDir?: string }): (d: DiscoveredNode) => NodeEntry {
  const baseDir = discovery.baseDir;
  if (!baseDir) {
    throw new DiscoveryError(
      `discovery.baseDir is not set: node-mgr needs it to place the nodes it learns from ${discovery.source ?? 'a discovery source'} (their directories are <baseDir>/<port>)`,
    );
  }
  return (d) => discoveredNodeToEntry(d, baseDir);
}

/** The kept entry (its dir, options, policy) with what the source now says about the node. */
function withIdentityOf(before: NodeEntry, now: NodeEntry): NodeEntry {
  const { cluster: _cluster, shard: _shard, ...rest } = before;
  const entry: NodeEntry = { ...rest, role: now.role, ip: now.ip, user: now.user, password: now.password };
  if (now.cluster !== undefined) entry.cluster = now.cluster;
  if (now.shard !== undefined) entry.shard = now.shard;
  return entry;
}

function changed(before: NodeEntry, after: NodeEntry): boolean {
  return (
    before.role !== after.role ||
    before.ip !== after.ip ||
    before.user !== after.user ||
    before.password !== after.password ||
    before.cluster !== after.cluster ||
    before.shard !== after.shard
  );
}

/** Ids are `<kind>-<port>` (StateStore's NodeRecord). */
function kindOfId(id: string): NodeKind | undefined {
  const kind = /^([a-z_]+)-\d+$/.exec(id)?.[1];
  return kind === 'mysql' || kind === 'postgres' || kind === 'cluster_mgr' ? kind : undefined;
}

function describe(d: DiscoveredNode): string {
  const where = [d.cluster, d.shard].filter(Boolean).join('/');
  return `${d.role} node ${d.ip}:${d.port}${where ? ` (${where})` : ''}`;
}

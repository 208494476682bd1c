// update_node (PROTOCOL §3): refresh the node list from the discovery source and reconcile the
// actors. Vanished discovered nodes stop being supervised; their processes are left running.
import { z } from 'zod';
import type { Config } from '../config/schema.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import type { JobContext } from '../jobs/job.ts';
import type { JobRunner } from '../jobs/runner.ts';
import { discoverLocalNodes, DISCOVERED_ROLES, type DiscoveredRole } from './discovery.ts';
import { entryMapperFor, reconcile } from './reconcile.ts';

/** The seed's names for the node roles (its get_node and update_node, cluster_mgr's get_node). */
export const NODE_TYPES = ['meta_node', 'storage_node', 'computer_node'] as const;

const ROLE_OF_TYPE: Record<(typeof NODE_TYPES)[number], DiscoveredRole> = { meta_node: 'meta', storage_node: 'storage', computer_node: 'computer' };

/** Which roles to refresh: all when node_type is absent. */
export const updateNodeParams = z.object({ node_type: z.enum(NODE_TYPES).optional() });
export type UpdateNodeParams = z.infer<typeof updateNodeParams>;

export async function updateNodes(config: Config, supervisor: Supervisor, opts: { nodeType?: (typeof NODE_TYPES)[number]; signal?: AbortSignal; progress?: JobContext['progress'] } = {}) {
  const { discovery } = config;
  if (discovery.source === 'static') {
    return { source: 'static', added: [], removed: [], updated: [], conflicts: [], info: 'discovery source is static: the node list is node-mgr\'s own config' };
  }
  const roles = opts.nodeType ? [ROLE_OF_TYPE[opts.nodeType]] : [...DISCOVERED_ROLES];
  // Fails at once on a missing baseDir, before any network request.
  const toEntry = entryMapperFor(discovery);
  opts.progress?.({ phase: `asking ${discovery.source}` });
  const found = await discoverLocalNodes(discovery.source, {
    clusterMgrUrl: discovery.clusterMgrUrl,
    metadataDb: discovery.metadataDb,
    roles,
    signal: opts.signal,
  });
  const current = supervisor.list().map((n) => ({ id: n.id, port: n.port, source: n.source, role: n.role, entry: supervisor.entryOf(n.id) }));
  const plan = reconcile(current, found, toEntry, { roles });
  opts.progress?.({ phase: 'reconciling' });
  for (const id of plan.remove) supervisor.forget(id);
  // A changed entry (credentials, cluster/shard) re-registers the node; its actor adopts the running server.
  for (const entry of plan.update) {
    const n = supervisor.byPort(entry.port);
    if (n) supervisor.forget(n.id);
    supervisor.register(entry, 'discovered');
  }
  for (const entry of plan.add) supervisor.register(entry, 'discovered');
  return {
    source: discovery.source,
    added: plan.add.map((e) => e.port),
    removed: plan.remove,
    updated: plan.update.map((e) => e.port),
    conflicts: plan.conflicts,
  };
}

export function registerUpdateNodeJob(jobs: JobRunner, config: Config, supervisor: Supervisor): void {
  jobs.register('update_node', async (ctx: JobContext<UpdateNodeParams>) => {
    const params = ctx.params;
    return updateNodes(config, supervisor, { nodeType: params.node_type, signal: ctx.signal, progress: (p) => ctx.progress(p) });
  });
}

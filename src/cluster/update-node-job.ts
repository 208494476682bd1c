// update_node (PROTOCOL §3): refresh the node list from the discovery source and reconcile the
// actors. Vanished discovered nodes stop being supervised; their processes are left running.
import type { Config } from '../config/schema.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import type { JobContext } from '../jobs/job.ts';
import type { JobRunner } from '../jobs/runner.ts';
import { discoverLocalNodes, DISCOVERED_ROLES, type DiscoveredRole } from './discovery.ts';
import { entryMapperFor, reconcile } from './reconcile.ts';

const ROLE_OF_TYPE: Record<string, DiscoveredRole> = { meta_node: 'meta', storage_node: 'storage', computer_node: 'computer' };

export async function updateNodes(config: Config, supervisor: Supervisor, opts: { nodeType?: string; signal?: AbortSignal; progress?: JobContext['progress'] } = {}) {
  const { discovery } = config;
  if (discovery.source === 'static') {
    return { source: 'static', added: [], removed: [], updated: [], conflicts: [], info: 'discovery source is static: the node list is node-mgr\'s own config' };
  }
  const roles = opts.nodeType ? [ROLE_OF_TYPE[opts.nodeType]!] : [...DISCOVERED_ROLES];
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
  jobs.register('update_node', async (ctx) => {
    const params = ctx.params as { node_type?: string };
    return updateNodes(config, supervisor, { nodeType: params.node_type, signal: ctx.signal, progress: (p) => ctx.progress(p) });
  });
}

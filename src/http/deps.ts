// The services route plugins use, decorated once on the root app (app.ts) as `app.services`.
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import type { JobRunner } from '../jobs/runner.ts';
import type { HostInfo } from '../host/info.ts';
import type { NodeUsage } from '../host/node-usage.ts';
import type { StateStore } from '../state/store.ts';
import type { NodeMgrMetrics } from '../metrics/metrics.ts';
import type { BinlogArchiveView } from '../backup/binlog-archive.ts';
import type { BinlogArchiving } from '../jobs/binlog-archiving.ts';
import type { NodeView } from '../supervisor/supervisor.ts';

export interface HttpDeps {
  config: Config;
  supervisor: Supervisor;
  jobs: JobRunner;
  store: StateStore;
  host: HostInfo;
  usage: NodeUsage;
  /** node-mgr's own logger; `app.log` is the HTTP layer's child of it (warnings only). */
  log: Logger;
  metrics: NodeMgrMetrics;
  /** Absent in tests that build the app without it: the binlog archive then shows nothing. */
  binlogArchive?: BinlogArchiving;
}

/** A MySQL storage or meta node's binlog archive as the replies show it; null for other nodes. */
export function binlogArchiveOf(deps: HttpDeps, n: NodeView): BinlogArchiveView | null {
  if (n.kind !== 'mysql' || (n.role !== 'storage' && n.role !== 'meta') || !deps.binlogArchive) return null;
  const spec = deps.supervisor.spec(n.id);
  return spec ? deps.binlogArchive.view({ spec, state: n.state, serving: deps.supervisor.is(n.id, 'serving') }) : null;
}

declare module 'fastify' {
  interface FastifyInstance {
    services: HttpDeps;
  }
}

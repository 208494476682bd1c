// The services route plugins use, decorated once on the root app (app.ts) as `app.services`.
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import type { JobRunner } from '../jobs/runner.ts';
import type { HostInfo } from '../host/info.ts';
import type { NodeUsage } from '../host/node-usage.ts';
import type { StateStore } from '../state/store.ts';
import type { NodeMgrMetrics } from '../metrics/metrics.ts';

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
}

declare module 'fastify' {
  interface FastifyInstance {
    services: HttpDeps;
  }
}

// One running node-mgr: state store, job runner, supervisor, background samplers and HTTP.
import path from 'node:path';
import pino, { type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config/schema.ts';
import { openStateStore, type StateStore } from './state/store.ts';
import { lockStateDir, type StateDirLock } from './state/lock.ts';
import { JobRunner } from './jobs/runner.ts';
import { Supervisor, type ConfigChange, type Transition } from './supervisor/supervisor.ts';
import { HostInfo } from './host/info.ts';
import { NodeUsage } from './host/node-usage.ts';
import { buildHttpServer } from './http/app.ts';
import { engineFor } from './engines/index.ts';
import { checkBindAllowed } from './http/security.ts';
import { registerCommandJobs } from './jobs/node-commands.ts';
import { registerUpdateNodeJob } from './cluster/update-node-job.ts';
import { startHousekeeping } from './supervisor/housekeeping.ts';
import { secureStateDir } from './state/permissions.ts';
import { registerTableJobs } from './jobs/table-jobs.ts';
import { registerBackupJobs } from './jobs/backup-jobs.ts';
import { recoverInterruptedBackupJobs } from './jobs/backup-recovery.ts';
import { NodeMgrMetrics } from './metrics/metrics.ts';
import { BinlogArchiving } from './jobs/binlog-archiving.ts';
import type { InspectionEvent, Observer } from 'xstate';

export interface NodeMgr {
  config: Config;
  log: Logger;
  store: StateStore;
  jobs: JobRunner;
  supervisor: Supervisor;
  /** Prometheus metrics; jobs report into it (e.g. metrics.observeBackup). */
  metrics: NodeMgrMetrics;
  /** Binlog archiving of the MySQL nodes (config binlogArchive). */
  binlogArchive: BinlogArchiving;
  http: FastifyInstance;
  /** The address the API listens on, e.g. http://127.0.0.1:9998. */
  url: string;
  /**
   * Applies a re-read config file (SIGHUP): policies, static nodes, the security settings that
   * are read per request, the command allow-list and create defaults. Throws, changing nothing,
   * when the new settings would leave a non-loopback API without authentication.
   */
  reload(next: Config): ReloadResult;
  /** Stops node-mgr. The databases keep running unless stopNodes (or config.stopNodesOnExit). */
  close(opts?: { stopNodes?: boolean }): Promise<void>;
}

export interface ReloadResult {
  nodes: ConfigChange;
  /** Settings that changed in the file but are read only at start (listen, stateDir…): they wait for a restart. */
  restartNeeded: string[];
}

/** Read at each use, so a reload can simply replace them in the shared config object. */
const LIVE_SECTIONS = ['policy', 'nodes', 'commandAllowList', 'createDefaults', 'peers', 'binlogArchive'] as const;
const LIVE_SECURITY = ['token', 'allowFrom', 'openReads', 'exposeSecrets', 'requestTimeoutMs', 'maxConnections', 'maxConnectionsPerSource', 'headersTimeoutMs'] as const;

/** node-mgr's log: every password field masked, whatever the output format. */
export const LOGGER_OPTIONS: pino.LoggerOptions = { name: 'node-mgr', redact: { paths: ['*.password', '*.pwd', '*.s_pwd', '*.d_pwd', 'password'], censor: '******' } };

export interface StartOptions {
  log?: Logger;
  adoptPollMs?: number;
  /** Receives the node actors' inspection events too (`start --inspect`: Stately's inspector). */
  inspect?: Observer<InspectionEvent>;
}

export async function startNodeMgr(config: Config, opts: StartOptions = {}): Promise<NodeMgr> {
  checkBindAllowed(config);
  const log = opts.log ?? pino(LOGGER_OPTIONS);
  for (const warning of secureStateDir(config.stateDir)) log.warn(warning);
  const lock = await lockStateDir(config.stateDir);
  try {
    return await startOnLockedState(config, opts, log, lock);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function startOnLockedState(config: Config, opts: StartOptions, log: Logger, lock: StateDirLock): Promise<NodeMgr> {
  const store = openStateStore(config.stateDir);
  const supervisor = new Supervisor({ config, store, log: log.child({ component: 'supervisor' }), adoptPollMs: opts.adoptPollMs, inspect: opts.inspect });
  const jobs = new JobRunner({
    store,
    log: log.child({ component: 'jobs' }),
    // A job that holds its node (a backup, a restore) is recorded in that node's chart.
    nodeHolds: supervisor,
    maxConcurrent: config.jobs.maxConcurrent,
    retention: { maxAgeMs: config.jobs.keepDays * 86_400_000, maxCount: config.jobs.keepCount },
  });
  registerCommandJobs(jobs, supervisor);
  registerUpdateNodeJob(jobs, config, supervisor);
  registerTableJobs(jobs, config, supervisor);

  const host = new HostInfo();
  host.start();
  const usage = new NodeUsage(() => supervisor.list().map((n) => ({ id: n.id, dataDir: n.dataDir, pid: n.pid })));
  const binlogArchive = new BinlogArchiving({
    config,
    log: log.child({ component: 'binlog-archive' }),
    nodes: () => supervisor.list().flatMap((n) => {
      const spec = supervisor.spec(n.id);
      return spec ? [{ spec, state: n.state, serving: supervisor.is(n.id, 'serving') }] : [];
    }),
    onArchived: (_id, entry) => metrics.observeBinlogArchived(_id, entry.size),
    onError: (id) => metrics.observeBinlogArchiveError(id),
  });
  const metrics = new NodeMgrMetrics({
    nodes: () => supervisor.list(),
    ready: (id) => supervisor.isReady(id),
    usage: (id) => usage.get(id),
    diskWalks: () => usage.duStats,
    jobCounts: () => jobs.counts(),
    onJobUpdate: (listener) => jobs.onUpdate(listener),
    canBackUp: (n) => Boolean(engineFor(n.kind).backup),
    succeededBackups: () => jobs.list({ type: 'coldbackup', status: 'succeeded', limit: 1000 }),
    binlogArchive: (n) => {
      const spec = supervisor.spec(n.id);
      return spec ? binlogArchive.view({ spec, state: n.state, serving: supervisor.is(n.id, 'serving') }) : null;
    },
  });
  registerBackupJobs(jobs, config, supervisor, { metrics });

  // Before any actor adopts a node: a restore a killed node-mgr left half done is put in order
  // first; a backup's upload and staging dir are removed meanwhile (the store may be slow).
  const backupRecovery = await recoverInterruptedBackupJobs(config, store, log);
  // The API answers while the actors adopt or start: get_node shows `adopting` meanwhile.
  const http = await buildHttpServer({ config, supervisor, jobs, store, host, usage, log, metrics, binlogArchive });
  const loading = supervisor.load();
  await http.listen({ host: config.listen.host, port: config.listen.port });
  const address = http.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const url = `${config.listen.tls ? 'https' : 'http'}://${config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host}:${port}`;
  await loading;
  void backupRecovery.finishLogPositions(supervisor);
  usage.start();
  binlogArchive.start();
  const stopHousekeeping = startHousekeeping({
    store,
    log,
    specs: () => supervisor.list().flatMap((n) => supervisor.spec(n.id) ?? []),
    trashDir: path.join(config.stateDir, 'trash'),
    trashGraceMs: config.trashGraceDays * 86_400_000,
    serverLog: config.serverLog,
  });
  // A node that just came up gets its disk and process figures without waiting for the next pass.
  supervisor.on('transition', (t: Transition) => {
    if (supervisor.is(t.nodeId, 'idle')) void usage.refresh();
  });
  // Nodes learnt from cluster_mgr or the metadata DB are refreshed at every start, as update_node would.
  if (config.discovery.source !== 'static') jobs.submit({ type: 'update_node', params: { job_type: 'update_node', reason: 'node-mgr start' } });
  log.info({ url, nodes: supervisor.list().length }, 'node-mgr is serving');

  const reload = (next: Config): ReloadResult => {
    checkBindAllowed({ ...next, listen: config.listen });
    const differs = (a: unknown, b: unknown) => JSON.stringify(a) !== JSON.stringify(b);
    const restartNeeded = [
      ...(Object.keys(next) as Array<keyof Config>).filter((k) => k !== 'security' && !(LIVE_SECTIONS as readonly string[]).includes(k) && differs(next[k], config[k])),
      ...(Object.keys(next.security) as Array<keyof Config['security']>)
        .filter((k) => !(LIVE_SECURITY as readonly string[]).includes(k) && differs(next.security[k], config.security[k]))
        .map((k) => `security.${k}`),
    ];
    for (const k of LIVE_SECTIONS) (config as Record<string, unknown>)[k] = next[k];
    for (const k of LIVE_SECURITY) (config.security as Record<string, unknown>)[k] = next.security[k];
    // The connection gate reads the limits at each connection; Node holds the header timeout.
    http.server.headersTimeout = config.security.headersTimeoutMs;
    const nodes = supervisor.applyConfig();
    log.info({ ...nodes, restartNeeded }, 'config reloaded');
    return { nodes, restartNeeded };
  };

  let closed = false;
  return {
    reload,
    config,
    log,
    store,
    jobs,
    supervisor,
    metrics,
    binlogArchive,
    http,
    url,
    async close(closeOpts = {}) {
      if (closed) return;
      closed = true;
      host.stop();
      usage.stop();
      stopHousekeeping();
      await binlogArchive.close();
      await http.close();
      await jobs.drain(5_000);
      await supervisor.shutdown(closeOpts.stopNodes ?? config.stopNodesOnExit);
      metrics.close();
      store.close();
      lock.release();
    },
  };
}

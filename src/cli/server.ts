// The commands that run node-mgr itself (serve, demo) or signal a running one (reload). Loaded
// only for them: the client commands must not pay for fastify, the engines and SQLite.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { loadConfig, parseConfig } from '../config/load.ts';
import type { Config, NodeEntry } from '../config/schema.ts';
import { startNodeMgr, type NodeMgr } from '../daemon.ts';
import { stateDirHolder } from '../state/lock.ts';
import { connectStatelyInspector, DEFAULT_STATELY_URL } from '../supervisor/stately-inspector.ts';
import { catchProcessSignals, type ProcessSignals } from '../lifecycle/signals.ts';
import { createLogger, type LogOptions } from './logging.ts';
import { nodesTable } from './format.ts';
import { becomeServiceAccount } from '../host/privileges.ts';

/** The account the demo's databases, and the demo itself when started as root, run as. */
const DEMO_ACCOUNT = 'nodemgr';

export interface ServeOptions extends LogOptions {
  config?: string;
  stopNodesOnExit?: boolean;
  inspect?: boolean;
  inspectUrl?: string;
}

export async function serve(opts: ServeOptions): Promise<number> {
  const signals = catchProcessSignals();
  const log = await createLogger(opts);
  const config = opts.config ? await loadConfig(opts.config) : parseConfig({});
  if (opts.stopNodesOnExit) config.stopNodesOnExit = true;
  const inspectUrl = opts.inspectUrl ?? DEFAULT_STATELY_URL;
  const stately = opts.inspect || opts.inspectUrl ? await connectStatelyInspector(inspectUrl) : null;
  const mgr = await startNodeMgr(config, { log, inspect: stately?.observer });
  if (stately) mgr.log.info({ url: inspectUrl }, 'forwarding actor inspection events to the Stately inspector');
  reloadOnHangup(signals, mgr, opts.config, Boolean(opts.stopNodesOnExit));
  await runUntilSignal(signals, mgr);
  stately?.stop();
  return 0;
}

/**
 * SIGHUP (`systemctl reload`, `kill -HUP`) re-reads the config file. A file that does not load
 * changes nothing: the error is logged and node-mgr goes on with what it has.
 */
function reloadOnHangup(signals: ProcessSignals, mgr: NodeMgr, file: string | undefined, stopNodesOnExit: boolean): void {
  signals.onHangup(async () => {
    if (!file) {
      mgr.log.warn('SIGHUP: node-mgr was started without --config; there is nothing to reload');
      return;
    }
    try {
      const next = await loadConfig(file);
      if (stopNodesOnExit) next.stopNodesOnExit = true;
      mgr.reload(next);
    } catch (err) {
      mgr.log.error({ file, err: (err as Error).message }, 'SIGHUP: config not reloaded; the previous settings stay');
    }
  });
}

/**
 * SIGTERM/SIGINT stop node-mgr only; the databases keep running (unless stopNodesOnExit). A
 * second stop signal does not cut the clean stop short (SIGKILL does).
 */
async function runUntilSignal(signals: ProcessSignals, mgr: NodeMgr): Promise<void> {
  const signal = await signals.stopRequested;
  signals.onRepeatedStop((again) => mgr.log.warn({ signal: again }, `${again}: node-mgr is already stopping; the clean stop goes on (SIGKILL ends it at once)`));
  mgr.log.info({ signal }, 'node-mgr stopping; databases keep running unless stopNodesOnExit');
  await mgr.close().catch((err: unknown) => mgr.log.error({ err }, 'shutdown failed'));
  mgr.log.info({ signal }, 'node-mgr stopped');
}

/** Finds the node-mgr of the config's state dir by its pid file and sends it SIGHUP. */
export async function reload(opts: { config?: string }): Promise<number> {
  if (!opts.config) {
    console.error('node-mgr reload: --config FILE is required (the file the running node-mgr was started with)');
    return 2;
  }
  const config = await loadConfig(opts.config);
  const pid = await stateDirHolder(config.stateDir);
  if (pid === null) {
    console.error(`node-mgr reload: no node-mgr is running on the state dir ${config.stateDir}; start it with \`node-mgr serve --config ${opts.config}\``);
    return 1;
  }
  process.kill(pid, 'SIGHUP');
  console.log(`sent SIGHUP to node-mgr pid ${pid}; its log says what changed ("config reloaded") or why nothing did ("config not reloaded")`);
  return 0;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A newcomer's first run: two real nodes under DIR, supervised and served on PORT. Again on the same DIR adopts them. */
export async function demo(opts: LogOptions & { dir?: string; port?: string }): Promise<number> {
  const signals = catchProcessSignals();
  const log = await createLogger(opts);
  const dir = path.resolve(opts.dir ?? './var/demo');
  // The demo needs no root: started as root, it runs as the databases' account (docs/security.md).
  await becomeServiceAccount(DEMO_ACCOUNT, dir);
  mkdirSync(dir, { recursive: true });
  const planFile = path.join(dir, 'demo.json');
  let plan: { mysqlPort: number; postgresPort: number };
  if (existsSync(planFile)) plan = JSON.parse(readFileSync(planFile, 'utf8')) as typeof plan;
  else {
    plan = { mysqlPort: await freePort(), postgresPort: await freePort() };
    writeFileSync(planFile, `${JSON.stringify(plan, null, 2)}\n`);
  }
  const config: Config = parseConfig(
    {
      listen: { host: '127.0.0.1', port: Number(opts.port ?? 9998) },
      runAs: DEMO_ACCOUNT,
      stateDir: path.join(dir, 'state'),
      nodesDir: path.join(dir, 'nodes'),
      backup: { localDir: path.join(dir, 'backups') },
    },
    dir,
    'demo config',
  );
  const mgr = await startNodeMgr(config, { log });
  const wanted: NodeEntry[] = [
    {
      kind: 'mysql',
      role: 'storage',
      port: plan.mysqlPort,
      ip: '127.0.0.1',
      dir: path.join(config.nodesDir, String(plan.mysqlPort)),
      cluster: 'demo_cluster',
      shard: 'shard1',
      ...config.createDefaults,
      serverOptions: {},
    },
    {
      kind: 'postgres',
      role: 'computer',
      port: plan.postgresPort,
      ip: '127.0.0.1',
      dir: path.join(config.nodesDir, String(plan.postgresPort)),
      cluster: 'demo_cluster',
      ...config.createDefaults,
      serverOptions: {},
    },
  ];
  for (const entry of wanted) {
    if (mgr.supervisor.byPort(entry.port)) continue;
    mgr.log.info({ port: entry.port, kind: entry.kind }, 'demo: creating node');
    await mgr.supervisor.create(entry);
  }
  console.log(`\nnode-mgr demo is serving on ${mgr.url}\n`);
  console.log(nodesTable(mgr.supervisor.list(), { colour: false }));
  console.log(`\ntry:  node-mgr nodes --url ${mgr.url}\n      curl -d '{"ver":"0.1","job_type":"get_node"}' ${mgr.url}/\n      (Ctrl-C stops node-mgr; the databases keep running and are adopted by the next run)\n`);
  await runUntilSignal(signals, mgr);
  return 0;
}

// CLI entry: node-mgr start | status | demo.
import { parseArgs } from 'node:util';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import path from 'node:path';
import { loadConfig, parseConfig, ConfigError } from './config/load.ts';
import type { Config, NodeEntry } from './config/schema.ts';
import { startNodeMgr, type NodeMgr } from './daemon.ts';
import { stateDirHolder } from './state/lock.ts';
import { connectStatelyInspector, DEFAULT_STATELY_URL } from './supervisor/stately-inspector.ts';
import { catchProcessSignals, type ProcessSignals } from './lifecycle/signals.ts';

const USAGE = `usage:
  node-mgr start --config FILE [--stop-nodes-on-exit]   run in the foreground
          [--inspect [--inspect-url ws://127.0.0.1:8080]] and send actor events to Stately's inspector
  node-mgr status [--config FILE | --url URL]           table of the nodes
  node-mgr reload --config FILE                         the running node-mgr of that config re-reads it (SIGHUP)
  node-mgr demo [--dir DIR] [--port PORT]               one MariaDB storage node and one PostgreSQL
                                                       computing node under DIR (default ./var/demo)`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return start(rest);
    case 'status':
      return status(rest);
    case 'reload':
      return reload(rest);
    case 'demo':
      return demo(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`node-mgr: unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

async function start(args: string[]): Promise<number> {
  const signals = catchProcessSignals();
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c' }, 'stop-nodes-on-exit': { type: 'boolean' }, inspect: { type: 'boolean' }, 'inspect-url': { type: 'string' } },
  });
  const config = values.config ? loadConfig(values.config) : parseConfig({});
  if (values['stop-nodes-on-exit']) config.stopNodesOnExit = true;
  const inspectUrl = values['inspect-url'] ?? DEFAULT_STATELY_URL;
  const stately = values.inspect || values['inspect-url'] ? await connectStatelyInspector(inspectUrl) : null;
  const mgr = await startNodeMgr(config, { inspect: stately?.observer });
  if (stately) mgr.log.info({ url: inspectUrl }, 'forwarding actor inspection events to the Stately inspector');
  reloadOnHangup(signals, mgr, values.config, Boolean(values['stop-nodes-on-exit']));
  await runUntilSignal(signals, mgr);
  stately?.stop();
  return 0;
}

/**
 * SIGHUP (`systemctl reload`, `kill -HUP`) re-reads the config file. A file that does not load
 * changes nothing: the error is logged and node-mgr goes on with what it has.
 */
function reloadOnHangup(signals: ProcessSignals, mgr: NodeMgr, file: string | undefined, stopNodesOnExit: boolean): void {
  signals.onHangup(() => {
    if (!file) {
      mgr.log.warn('SIGHUP: node-mgr was started without --config; there is nothing to reload');
      return;
    }
    try {
      const next = loadConfig(file);
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
async function reload(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  if (!values.config) {
    console.error('node-mgr reload: --config FILE is required (the file the running node-mgr was started with)');
    return 2;
  }
  const config = loadConfig(values.config);
  const pid = await stateDirHolder(config.stateDir);
  if (pid === null) {
    console.error(`node-mgr reload: no node-mgr is running on the state dir ${config.stateDir}`);
    return 1;
  }
  process.kill(pid, 'SIGHUP');
  console.log(`sent SIGHUP to node-mgr pid ${pid}; its log says what changed ("config reloaded") or why nothing did ("config not reloaded")`);
  return 0;
}

async function status(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, url: { type: 'string' } } });
  let url = values.url;
  let ca: Buffer | undefined;
  if (!url) {
    const config = values.config ? loadConfig(values.config) : parseConfig({});
    const tls = config.listen.tls;
    url = `${tls ? 'https' : 'http'}://${config.listen.host === '0.0.0.0' ? '127.0.0.1' : config.listen.host}:${config.listen.port}`;
    if (tls) ca = readFileSync(tls.ca ?? tls.cert);
  }
  const res = await getText(`${url}/v1/nodes`, ca).catch((err: Error) => {
    throw new Error(`node-mgr at ${url} is not answering: ${err.message}`);
  });
  if (res.status !== 200) throw new Error(`node-mgr at ${url} answered HTTP ${res.status}: ${res.text}`);
  const nodes = JSON.parse(res.text) as Array<{ id: string; role: string; port: number; state: string; wanted: string; pid: number | null; restarts: number; lastError: string | null }>;
  console.log(formatTable(nodes));
  return 0;
}

/** GET over http or https; with `ca`, the certificate must chain to it (a cluster's own CA). */
function getText(url: string, ca?: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.once('error', reject);
    };
    const req = url.startsWith('https:') ? httpsGet(url, ca ? { ca } : {}, onResponse) : httpGet(url, onResponse);
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.once('error', reject);
  });
}

export function formatTable(nodes: Array<{ id: string; role: string; port: number; state: string; wanted: string; pid: number | null; restarts: number; lastError: string | null }>): string {
  const rows = [['NODE', 'ROLE', 'PORT', 'STATE', 'WANTED', 'PID', 'RESTARTS', 'LAST ERROR']];
  for (const n of nodes) rows.push([n.id, n.role, String(n.port), n.state, n.wanted, n.pid === null ? '-' : String(n.pid), String(n.restarts), n.lastError ?? '']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
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
async function demo(args: string[]): Promise<number> {
  const signals = catchProcessSignals();
  const { values } = parseArgs({ args, options: { dir: { type: 'string' }, port: { type: 'string' } } });
  const dir = path.resolve(values.dir ?? './var/demo');
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
      listen: { host: '127.0.0.1', port: Number(values.port ?? 9998) },
      stateDir: path.join(dir, 'state'),
      nodesDir: path.join(dir, 'nodes'),
      backup: { localDir: path.join(dir, 'backups') },
    },
    dir,
    'demo config',
  );
  const mgr = await startNodeMgr(config);
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
  console.log(formatTable(mgr.supervisor.list()));
  console.log(`\ntry:  curl -d '{"ver":"0.1","job_type":"get_node"}' ${mgr.url}/\n      (Ctrl-C stops node-mgr; the databases keep running and are adopted by the next run)\n`);
  await runUntilSignal(signals, mgr);
  return 0;
}

main(process.argv.slice(2)).then(
  // Exit explicitly: background samplers and sockets must not keep a stopped node-mgr alive.
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`node-mgr: ${err instanceof ConfigError ? err.message : (err as Error).message}`);
    process.exit(1);
  },
);

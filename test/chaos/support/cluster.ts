// A node-mgr process over real MariaDB/PostgreSQL nodes in a temp dir, for the chaos files.
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../../support/nodes.ts';
import { killProcessesUnder, MYSQL_SERVERS, PG_SERVERS, serversOnDataDir } from './chaos.ts';
import { api, killProcessGroups, startNodeMgrProcess, type NodeMgrProcess } from '../../support/node-mgr-process.ts';

export const ADMIN = { user: 'admin', password: 'admin_pwd' };

export interface ChaosNode {
  name: string;
  kind: 'mysql' | 'postgres';
  port: number;
  dir: string;
  /** The server's data dir, symlinks resolved (what /proc/<pid>/cwd shows). */
  dataDir: string;
  entry: Record<string, unknown>;
}

export interface ChaosCluster {
  root: string;
  apiPort: number;
  config: Record<string, unknown>;
  mgr: NodeMgrProcess;
  nodes: Record<string, ChaosNode>;
  /** Every server pid seen, for the final clean-up. */
  pids: Set<number>;
  /** Starts node-mgr again on the same config and state (after a kill). */
  restart(): Promise<NodeMgrProcess>;
  teardown(): Promise<void>;
}

export interface NodeWish {
  name: string;
  kind: 'mysql' | 'postgres';
  policy?: Record<string, unknown>;
}

export const FAST_POLICY = {
  restart: { initialDelayMs: 100, maxDelayMs: 1000, jitter: 0, stableAfterMs: 60_000, maxRestarts: 10_000, windowMs: 60_000 },
  probe: { intervalMs: 1000, timeoutMs: 3000, failureThreshold: 5, startTimeoutMs: 60_000 },
  stop: { gracefulTimeoutMs: 15_000, forcefulTimeoutMs: 5_000 },
};

/**
 * Starts node-mgr (`extra` is merged into its config) and creates every wished node through
 * `POST /v1/nodes/:port/create`, so that each ends `running` as a real server.
 */
export async function startChaosCluster(wishes: NodeWish[], extra: Record<string, unknown> = {}): Promise<ChaosCluster> {
  const root = path.dirname(await tempNodeDir());
  const apiPort = await freePort();
  const nodes: Record<string, ChaosNode> = {};
  for (const w of wishes) {
    const port = await freePort();
    const dir = path.join(root, w.name);
    const entry = {
      kind: w.kind,
      role: w.kind === 'mysql' ? 'storage' : 'computer',
      port,
      dir,
      cluster: 'chaos',
      ...(w.kind === 'mysql' ? { shard: 'shard1' } : {}),
      ...ADMIN,
      ...(w.policy ? { policy: w.policy } : {}),
    };
    nodes[w.name] = { name: w.name, kind: w.kind, port, dir, dataDir: path.join(dir, 'data'), entry };
  }
  const config: Record<string, unknown> = {
    listen: { host: '127.0.0.1', port: apiPort },
    stateDir: path.join(root, 'state'),
    nodesDir: path.join(root, 'nodes'),
    runAs: TEST_RUN_AS,
    policy: FAST_POLICY,
    nodes: Object.values(nodes).map((n) => n.entry),
    ...extra,
  };
  const mgrDir = path.join(root, 'mgr');
  const pids = new Set<number>();
  const cluster: ChaosCluster = {
    root,
    apiPort,
    config,
    mgr: await startNodeMgrProcess(mgrDir, config),
    nodes,
    pids,
    async restart() {
      cluster.mgr = await startNodeMgrProcess(mgrDir, config);
      return cluster.mgr;
    },
    async teardown() {
      for (const n of Object.values(nodes)) {
        const r = await api(`http://127.0.0.1:${apiPort}`, 'GET', `/v1/nodes/${n.port}`, undefined, authHeaders(config)).catch(() => null);
        if (r?.body?.pid) pids.add(r.body.pid);
      }
      await cluster.mgr?.stop('SIGKILL');
      for (const n of Object.values(nodes)) {
        for (const pid of await serversOnDataDir(n.dataDir, n.kind === 'mysql' ? MYSQL_SERVERS : PG_SERVERS)) pids.add(pid);
      }
      await killProcessGroups([...pids]);
      // Whatever still works in the temp tree (a server a failed test could not name) goes too.
      await killProcessesUnder(root);
      await removeTempDirs();
    },
  };
  const headers = authHeaders(config);
  const created = await Promise.all(Object.values(nodes).map((n) => api(cluster.mgr.url, 'POST', `/v1/nodes/${n.port}/create`, undefined, headers)));
  created.forEach((r, i) => {
    if (r.status !== 200) throw new Error(`create of ${Object.values(nodes)[i]!.name} failed: ${r.text}`);
    pids.add(r.body.pid);
  });
  for (const n of Object.values(nodes)) n.dataDir = realpathSync(n.dataDir);
  return cluster;
}

/** The bearer header when the config has a token. */
export function authHeaders(config: Record<string, unknown>): Record<string, string> {
  const token = (config.security as { token?: string } | undefined)?.token;
  return token ? { authorization: `Bearer ${token}` } : {};
}

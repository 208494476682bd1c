// From a config entry to the NodeSpec engines work with, and where nodes may live.
import path from 'node:path';
import { effectivePolicy } from '../config/load.ts';
import type { Config, NodeEntry, NodeKind, Policy } from '../config/schema.ts';
import type { RunAs } from '../host/run-as.ts';

/** Everything an engine needs to know about one node, resolved from config. */
export interface NodeSpec {
  /** Stable id on this host: `<kind>-<port>`. */
  id: string;
  kind: NodeKind;
  role: NodeEntry['role'];
  port: number;
  ip: string;
  /** Node directory; everything of the node lives under it. */
  dir: string;
  dataDir: string;
  /** Directory for the server's own log files (error log, stdout/stderr capture). */
  logDir: string;
  /** Unix socket directory (MySQL socket file, PostgreSQL -k dir). */
  runDir: string;
  cluster?: string;
  shard?: string;
  user: string;
  password: string;
  serverOptions: Record<string, string | number | boolean>;
  /** cluster_mgr: program + args (no shell), its pidfile and health URL. */
  command?: string[];
  pidFile?: string;
  healthUrl?: string;
  policy: Policy;
  runAs: RunAs;
  binaries: Config['binaries'];
}

/** Resolves one node entry: id `<kind>-<port>`, dirs under the node dir unless given, policy overlaid. */
export function resolveSpec(config: Config, entry: NodeEntry, runAs: RunAs): NodeSpec {
  const dir = path.resolve(entry.dir);
  return {
    id: `${entry.kind}-${entry.port}`,
    kind: entry.kind,
    role: entry.role,
    port: entry.port,
    ip: entry.ip,
    dir,
    dataDir: entry.dataDir ? path.resolve(entry.dataDir) : path.join(dir, 'data'),
    logDir: path.join(dir, 'log'),
    runDir: path.join(dir, 'run'),
    cluster: entry.cluster,
    shard: entry.shard,
    user: entry.user,
    password: entry.password,
    serverOptions: { ...entry.serverOptions },
    command: entry.command ? [...entry.command] : undefined,
    pidFile: entry.pidFile ? path.resolve(dir, entry.pidFile) : undefined,
    healthUrl: entry.healthUrl,
    policy: effectivePolicy(config, entry),
    runAs,
    binaries: config.binaries,
  };
}

/**
 * Where nodes created over the API may live: nodesDir, discovery.baseDir, nodeRoots, and the
 * parent dirs of the nodes in the config file (the operator chose those places already).
 */
export function nodeRoots(config: Pick<Config, 'nodesDir' | 'nodeRoots' | 'discovery' | 'nodes'>): string[] {
  const roots = [config.nodesDir, ...(config.discovery.baseDir ? [config.discovery.baseDir] : []), ...config.nodeRoots];
  for (const n of config.nodes) roots.push(path.dirname(path.resolve(n.dir)));
  return [...new Set(roots.map((r) => path.resolve(r)))];
}

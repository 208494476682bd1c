// Where node-mgr learns its nodes when they are not listed in its own config (PROTOCOL §11):
// from cluster_mgr's `get_node` or straight from Kunlun's metadata database. Both answer the same
// question — which meta, storage and computer nodes live on this host — with the same list.
import os from 'node:os';
import type { Config } from '../config/schema.ts';
import { fetchNodesFromClusterMgr } from './cluster-mgr-client.ts';
import { queryLocalNodes, type MetadataDbConfig } from './metadata-db.ts';

export const DISCOVERED_ROLES = ['meta', 'storage', 'computer'] as const;
export type DiscoveredRole = (typeof DISCOVERED_ROLES)[number];

/** One node a remote source says lives on this host. `password` is a secret: never log it. */
export interface DiscoveredNode {
  role: DiscoveredRole;
  ip: string;
  port: number;
  user: string;
  password: string;
  /** Storage and computer nodes: the Kunlun cluster (`db_clusters.name`). */
  cluster?: string;
  /** Storage nodes: the shard (`shards.name`). */
  shard?: string;
}

/** The sources that are asked over the network; `static` is just node-mgr's own config. */
export type RemoteDiscoverySource = Exclude<Config['discovery']['source'], 'static'>;

export interface DiscoveryOptions {
  /** cluster_mgr's HTTP address, e.g. `http://10.0.0.5:57000` (source `cluster_mgr`). */
  clusterMgrUrl?: string;
  /** The metadata database (source `metadata_db`). */
  metadataDb?: MetadataDbConfig;
  /** This host's IPv4 addresses; default {@link localIPv4Addresses}. Injectable for tests. */
  localAddresses?: readonly string[];
  /** Only these roles (update_node's `node_type`); default all three. */
  roles?: readonly DiscoveredRole[];
  /** Per request / per query; default 5 s. */
  timeoutMs?: number;
  /** Cancels the cluster_mgr requests (a metadata DB query is bounded by timeoutMs alone). */
  signal?: AbortSignal;
}

/** A discovery source is misconfigured; the sources' own failures are ClusterMgrError / MetadataDbError. */
export class DiscoveryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DiscoveryError';
  }
}

/**
 * Every IPv4 address of this host, 127.0.0.1 first (as in the seed's `node_ip0`), without
 * duplicates. Kunlun registers nodes by the address they were installed with, which may be the
 * loopback or any interface's address, so all of them count as "local".
 */
export function localIPv4Addresses(interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces()): string[] {
  const addresses = new Set<string>(['127.0.0.1']);
  for (const infos of Object.values(interfaces)) {
    for (const info of infos ?? []) {
      // Node 18.0–18.3 reported `family` as the number 4.
      if (info.family === 'IPv4' || (info.family as unknown) === 4) addresses.add(info.address);
    }
  }
  return [...addresses];
}

/** Asks the configured source for the nodes on this host. Rejects with an operator-readable error. */
export async function discoverLocalNodes(source: RemoteDiscoverySource, opts: DiscoveryOptions): Promise<DiscoveredNode[]> {
  const addresses = opts.localAddresses ?? localIPv4Addresses();
  const roles = opts.roles ?? DISCOVERED_ROLES;
  const timeoutMs = opts.timeoutMs ?? 5000;
  switch (source) {
    case 'cluster_mgr': {
      if (!opts.clusterMgrUrl) {
        throw new DiscoveryError('discovery.source is cluster_mgr but discovery.clusterMgrUrl is not set');
      }
      const found: DiscoveredNode[] = [];
      // One call per type, as the original node_mgr did: cluster_mgr answers one type at a time.
      for (const role of roles) {
        found.push(...(await fetchNodesFromClusterMgr(opts.clusterMgrUrl, role, addresses, { timeoutMs, signal: opts.signal })));
      }
      return found;
    }
    case 'metadata_db': {
      if (!opts.metadataDb) {
        throw new DiscoveryError('discovery.source is metadata_db but discovery.metadataDb is not set');
      }
      return queryLocalNodes(opts.metadataDb, addresses, roles, { timeoutMs });
    }
    default: {
      const never: never = source;
      throw new DiscoveryError(`unknown discovery source ${String(never)}`);
    }
  }
}

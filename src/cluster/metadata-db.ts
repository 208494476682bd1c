// Kunlun's metadata database as a discovery source (PROTOCOL §11, orig v1.0). Table and column
// names are Kunlun's own (`meta_db_nodes`, `shard_nodes` → `shards`, `db_clusters`, `comp_nodes`).
import type mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import { connectMysql } from '../engines/mysql/driver.ts';
import type { DiscoveredNode, DiscoveredRole } from './discovery.ts';

/** Same shape as the config's `discovery.metadataDb`. */
export interface MetadataDbConfig {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Default `kunlun_metadata_db`. */
  database?: string;
}

export interface MetadataDbQueryOptions {
  /** Connect and each query; default 5 s. */
  timeoutMs?: number;
}

/** The metadata database could not be reached or queried. */
export class MetadataDbError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'MetadataDbError';
  }
}

interface NodeRow extends RowDataPacket {
  hostaddr: string;
  port: number;
  user_name: string;
  passwd: string;
  cluster: string | null;
  shard: string | null;
}

/** One query per role; `?` is replaced by the placeholders of the local addresses. */
const QUERIES: Record<DiscoveredRole, string> = {
  meta: `SELECT m.hostaddr, m.port, m.user_name, m.passwd, NULL AS cluster, NULL AS shard
           FROM meta_db_nodes m
          WHERE m.hostaddr IN (?)
          ORDER BY m.port, m.hostaddr`,
  storage: `SELECT sn.hostaddr, sn.port, sn.user_name, sn.passwd, c.name AS cluster, s.name AS shard
              FROM shard_nodes sn
              JOIN shards s ON s.id = sn.shard_id
              JOIN db_clusters c ON c.id = sn.db_cluster_id
             WHERE sn.hostaddr IN (?)
             ORDER BY sn.port, sn.hostaddr`,
  computer: `SELECT cn.hostaddr, cn.port, cn.user_name, cn.passwd, c.name AS cluster, NULL AS shard
               FROM comp_nodes cn
               JOIN db_clusters c ON c.id = cn.db_cluster_id
              WHERE cn.hostaddr IN (?)
              ORDER BY cn.port, cn.hostaddr`,
};

/** Reads the nodes of the given roles whose `hostaddr` is one of this host's addresses. */
export async function queryLocalNodes(
  db: MetadataDbConfig,
  addresses: readonly string[],
  roles: readonly DiscoveredRole[],
  opts: MetadataDbQueryOptions = {},
): Promise<DiscoveredNode[]> {
  if (addresses.length === 0 || roles.length === 0) return [];
  const timeoutMs = opts.timeoutMs ?? 5000;
  const database = db.database ?? 'kunlun_metadata_db';
  const where = `${db.host}:${db.port}`;

  let conn: mysql.Connection;
  try {
    conn = await connectMysql({
      host: db.host,
      port: db.port,
      user: db.user,
      password: db.password,
      database,
      connectTimeout: timeoutMs,
    });
  } catch (err) {
    throw connectError(err, where, db.user, database);
  }

  try {
    const nodes: DiscoveredNode[] = [];
    for (const role of roles) {
      let rows: NodeRow[];
      try {
        // `IN (?)` with an array: mysql2 expands and escapes each address.
        [rows] = await conn.query<NodeRow[]>({ sql: QUERIES[role], timeout: timeoutMs }, [[...addresses]]);
      } catch (err) {
        const e = err as { code?: string; message?: string };
        throw new MetadataDbError(
          `metadata DB ${database} at ${where}: reading the ${role} nodes failed: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`,
          e.code,
        );
      }
      for (const row of rows) nodes.push(nodeOf(role, row));
    }
    return nodes;
  } finally {
    await conn.end().catch(() => conn.destroy());
  }
}

function nodeOf(role: DiscoveredRole, row: NodeRow): DiscoveredNode {
  const node: DiscoveredNode = {
    role,
    ip: row.hostaddr,
    port: Number(row.port),
    user: row.user_name,
    password: row.passwd,
  };
  if (row.cluster !== null) node.cluster = row.cluster;
  if (row.shard !== null) node.shard = row.shard;
  return node;
}

function connectError(err: unknown, where: string, user: string, database: string): MetadataDbError {
  const e = err as { code?: string; message?: string };
  switch (e.code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'ETIMEDOUT':
      return new MetadataDbError(`metadata DB at ${where} is unreachable: ${e.code}`, e.code);
    case 'ER_ACCESS_DENIED_ERROR':
      return new MetadataDbError(`metadata DB at ${where} refused the login of user '${user}' (wrong user or password)`, e.code);
    case 'ER_BAD_DB_ERROR':
      return new MetadataDbError(`metadata DB at ${where} has no database ${database}`, e.code);
    default:
      return new MetadataDbError(`cannot connect to metadata DB at ${where}: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`, e.code);
  }
}

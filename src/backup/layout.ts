// Where things live in a backup store (PROTOCOL §4): a node's backup directory and the names
// of uploads not committed yet. The catalog (backups) and the binlog archive both build on it.
import type { NodeRole } from '../config/schema.ts';

export const BACKUP_ROOT = '/coldbackup';
export const COPYING_SUFFIX = '._COPYING_';
/** An upload this old that never became a backup was abandoned by a node-mgr that died. */
export const STALE_UPLOAD_MS = 24 * 3600_000;

/** What decides where a node's backups go. */
export interface BackupOwner {
  id?: string;
  role: NodeRole;
  port: number;
  cluster?: string;
  shard?: string;
}

export class CatalogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CatalogError';
  }
}

function segment(value: string | undefined, what: string, node: BackupOwner): string {
  if (!value) throw new CatalogError(`node ${node.id ?? node.port} has no ${what}: its backups' place in the store (/coldbackup/<cluster>/<shard>/) is unknown`);
  if (value.includes('/') || value === '.' || value === '..' || /[\x00-\x1f\x7f]/.test(value)) {
    throw new CatalogError(`node ${node.id ?? node.port}: ${what} ${JSON.stringify(value)} cannot be a directory name in the backup store`);
  }
  return value;
}

/**
 * The store directory of a node's backups: storage `/coldbackup/<cluster>/<shard>`, meta
 * `/coldbackup/meta`, computer `/coldbackup/<cluster>/comp_<port>`. A shard's replicas share
 * their directory: any of them can restore from any backup of the shard.
 */
export function backupDirFor(node: BackupOwner): string {
  switch (node.role) {
    case 'storage':
      return `${BACKUP_ROOT}/${segment(node.cluster, 'cluster', node)}/${segment(node.shard, 'shard', node)}`;
    case 'meta':
      return `${BACKUP_ROOT}/meta`;
    case 'computer':
      return `${BACKUP_ROOT}/${segment(node.cluster, 'cluster', node)}/comp_${node.port}`;
    default:
      throw new CatalogError(`node ${node.id ?? node.port} is a ${node.role} node: it has no data to back up`);
  }
}

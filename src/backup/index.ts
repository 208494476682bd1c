// The one place a backup store is made: the configured one (a local directory, the embedded
// default, or HDFS), or the one a request names.
import type { Config } from '../config/schema.ts';
import { LocalDirStore } from './local-dir.ts';
import { BackupStoreError, type BackupStore } from './store.ts';
import { WebHdfsStore } from './webhdfs.ts';

/** The names a request may give a store by (`hdfs` and `webhdfs` are the same store). */
export const STORE_NAMES = ['local', 'hdfs', 'webhdfs'] as const;

/** The configured store. */
export function openStore(config: Pick<Config, 'backup'>): BackupStore {
  const { backup } = config;
  switch (backup.store) {
    case 'local':
      return new LocalDirStore(backup.localDir);
    case 'webhdfs':
      return webHdfsStore(config, () => new BackupStoreError('invalid_argument', 'config backup.store is "webhdfs" but backup.webhdfs { url, user } is missing'));
  }
}

/** The store a request names (`local`, `hdfs`/`webhdfs`), or the configured one when it names none. */
export function storeNamed(config: Pick<Config, 'backup'>, name?: string): BackupStore {
  const configured = config.backup.store;
  if (!name || name === configured || (name === 'hdfs' && configured === 'webhdfs')) return openStore(config);
  if (name === 'local') return new LocalDirStore(config.backup.localDir);
  if (name === 'hdfs' || name === 'webhdfs') {
    return webHdfsStore(config, () => new Error(`store "${name}" was asked for, but node-mgr has no backup.webhdfs { url, user } configured`));
  }
  throw new Error(`unknown backup store ${JSON.stringify(name)}: use "local" or "hdfs"`);
}

function webHdfsStore(config: Pick<Config, 'backup'>, missing: () => Error): WebHdfsStore {
  if (!config.backup.webhdfs) throw missing();
  return new WebHdfsStore({ url: config.backup.webhdfs.url, user: config.backup.webhdfs.user });
}

export { BackupStoreError, checkStorePath } from './store.ts';
export type { BackupStore, BackupStoreErrorCode, ByteSource, StoreEntry, StoreStat } from './store.ts';
export { LocalDirStore } from './local-dir.ts';
export { WebHdfsStore, WebHdfsRemoteError } from './webhdfs.ts';

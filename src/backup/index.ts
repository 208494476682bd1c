// The backup store named by config: a local directory (the embedded default) or HDFS.
import type { Config } from '../config/schema.ts';
import { LocalDirStore } from './local-dir.ts';
import { BackupStoreError, type BackupStore } from './store.ts';
import { WebHdfsStore } from './webhdfs.ts';

export function openStore(config: Pick<Config, 'backup'>): BackupStore {
  const { backup } = config;
  switch (backup.store) {
    case 'local':
      return new LocalDirStore(backup.localDir);
    case 'webhdfs':
      if (!backup.webhdfs) {
        throw new BackupStoreError('invalid_argument', 'config backup.store is "webhdfs" but backup.webhdfs { url, user } is missing');
      }
      return new WebHdfsStore({ url: backup.webhdfs.url, user: backup.webhdfs.user });
  }
}

/** The store a request names (`local`, `hdfs`/`webhdfs`), or the configured one when it names none. */
export function storeNamed(config: Pick<Config, 'backup'>, name?: string): BackupStore {
  const configured = config.backup.store;
  if (!name || name === configured || (name === 'hdfs' && configured === 'webhdfs')) return openStore(config);
  if (name === 'local') return new LocalDirStore(config.backup.localDir);
  if (name === 'hdfs' || name === 'webhdfs') {
    if (!config.backup.webhdfs) throw new Error(`store "${name}" was asked for, but node-mgr has no backup.webhdfs { url, user } configured`);
    return new WebHdfsStore({ url: config.backup.webhdfs.url, user: config.backup.webhdfs.user });
  }
  throw new Error(`unknown backup store ${JSON.stringify(name)}: use "local" or "hdfs"`);
}

export { BackupStoreError, checkStorePath } from './store.ts';
export type { BackupStore, BackupStoreErrorCode, ByteSource, StoreEntry, StoreStat } from './store.ts';
export { LocalDirStore } from './local-dir.ts';
export { WebHdfsStore, WebHdfsRemoteError } from './webhdfs.ts';

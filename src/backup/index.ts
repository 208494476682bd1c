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

export { BackupStoreError, checkStorePath } from './store.ts';
export type { BackupStore, BackupStoreErrorCode, ByteSource, StoreEntry, StoreStat } from './store.ts';
export { LocalDirStore } from './local-dir.ts';
export { WebHdfsStore, WebHdfsRemoteError } from './webhdfs.ts';

// Where backups go, what they are called, and what retention keeps — against a local store.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { LocalDirStore } from '../../src/backup/local-dir.ts';
import {
  backupDirFor,
  backupFileName,
  backupTime,
  listBackups,
  newestVerifiedBackupBinlog,
  planRetention,
  pruneBackups,
  recordFileFor,
  sidecarPath,
  verifyRecordPath,
  writeVerifyRecord,
  type BackupListing,
  type VerifyRecord,
} from '../../src/backup/catalog.ts';

describe('backup layout and names', () => {
  it('puts storage, meta and computer backups where PROTOCOL §4 says', () => {
    assert.equal(backupDirFor({ role: 'storage', port: 6004, cluster: 'clust1', shard: 'shard1' }), '/coldbackup/clust1/shard1');
    assert.equal(backupDirFor({ role: 'meta', port: 6001 }), '/coldbackup/meta');
    assert.equal(backupDirFor({ role: 'computer', port: 5401, cluster: 'clust1' }), '/coldbackup/clust1/comp_5401');
    assert.equal(recordFileFor('storage'), '/coldbackup/storage.txt');
    assert.equal(recordFileFor('meta'), '/coldbackup/meta.txt');
    assert.equal(recordFileFor('computer'), '/coldbackup/computer.txt');
  });

  it('refuses a storage node without a shard and names that cannot be directories', () => {
    assert.throws(() => backupDirFor({ id: 'mysql-6004', role: 'storage', port: 6004, cluster: 'clust1' }), /no shard/);
    assert.throws(() => backupDirFor({ role: 'storage', port: 6004, cluster: '..', shard: 's' }), /cannot be a directory name/);
    assert.throws(() => backupDirFor({ role: 'cluster_mgr', port: 58000 }), /no data to back up/);
  });

  it('names backups by their UTC time and reads the time back', () => {
    const at = new Date('2021-11-22T23:43:03Z');
    assert.equal(backupFileName(at), 'coldback_20211122_234303.tgz');
    assert.deepEqual(backupTime('coldback_20211122_234303.tgz'), at);
    assert.equal(backupTime('coldback_20211122_234303.tgz._COPYING_'), null);
    assert.equal(backupTime('storage.txt'), null);
  });
});

const listing = (time: string, verify: VerifyRecord['result'] | null): BackupListing => {
  const name = backupFileName(new Date(time));
  return { path: `/coldbackup/c/s/${name}`, name, time: new Date(time).toISOString(), size: 1, verify: verify ? ({ result: verify } as VerifyRecord) : null };
};

describe('retention', () => {
  const now = new Date('2024-06-30T12:00:00Z');
  // Newest first, as listBackups returns them.
  const backups = [
    listing('2024-06-30T00:00:00Z', 'failed'),
    listing('2024-06-29T00:00:00Z', null),
    listing('2024-06-20T00:00:00Z', 'ok'),
    listing('2024-06-10T00:00:00Z', 'ok'),
    listing('2024-06-01T00:00:00Z', null),
  ];

  it('keeps the newest N and never the newest verified one beyond them', () => {
    const plan = planRetention(backups, { keep: 2 }, now);
    assert.deepEqual(plan.map((d) => d.action), ['keep', 'keep', 'keep', 'delete', 'delete']);
    assert.equal(plan[2]!.reason, 'the newest verified backup');
  });

  it('keeps everything younger than the window', () => {
    const plan = planRetention(backups, { keepDays: 15 }, now);
    assert.deepEqual(plan.map((d) => d.action), ['keep', 'keep', 'keep', 'delete', 'delete']);
  });

  it('with both rules, a backup either rule keeps stays', () => {
    const plan = planRetention(backups, { keep: 1, keepDays: 5 }, now);
    assert.deepEqual(plan.map((d) => d.action), ['keep', 'keep', 'keep', 'delete', 'delete']);
    assert.match(plan[3]!.reason, /beyond the newest 1 and older than 5 days/);
  });

  it('an upload check at commit does not make a backup verified', () => {
    const committed = [listing('2024-06-30T00:00:00Z', 'ok'), listing('2024-06-20T00:00:00Z', 'ok')];
    committed[0]!.verify!.how = 'commit';
    const plan = planRetention(committed, { keep: 1 }, now);
    assert.deepEqual(plan.map((d) => d.reason), ['one of the newest 1', 'the newest verified backup']);
  });

  it('keeps everything when no rule is configured', () => {
    assert.ok(planRetention(backups, {}, now).every((d) => d.action === 'keep'));
  });
});

describe('pruning and the binlog a verified backup needs, on a local store', () => {
  it('deletes pruned backups with their sidecars and records, and answers the newest verified binlog of this node only', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'catalog-test-'));
    try {
      const store = new LocalDirStore(root);
      const dir = '/coldbackup/clust1/shard1';
      const node = { role: 'storage' as const, port: 6004, cluster: 'clust1', shard: 'shard1' };
      const put = async (time: string, record: Partial<VerifyRecord> | null) => {
        const p = `${dir}/${backupFileName(new Date(time))}`;
        await store.write(p, [Buffer.from('archive')]);
        await store.write(sidecarPath(p), [Buffer.from(`${'0'.repeat(64)}  x\n`)]);
        if (record) await writeVerifyRecord(store, p, { result: 'ok', at: time, by: 'h', how: 'verify', ...record });
        return p;
      };
      const mine = { host: hostname(), node: 'mysql-6004', role: 'storage', port: 6004 };
      const oldest = await put('2024-06-01T00:00:00Z', { source: mine, position: { kind: 'binlog', file: 'binlog.000002', position: 4 } });
      const middle = await put('2024-06-10T00:00:00Z', { source: mine, position: { kind: 'binlog', file: 'binlog.000007', position: 4 } });
      // A replica's backup in the shard's directory: its binlog names are not this node's.
      await put('2024-06-20T00:00:00Z', { source: { ...mine, host: 'other-host' }, position: { kind: 'binlog', file: 'binlog.000099', position: 4 } });
      const newest = await put('2024-06-30T00:00:00Z', null);

      assert.equal(await newestVerifiedBackupBinlog({ backup: { store: 'local', localDir: root } }, store, node), 'binlog.000007');
      assert.equal((await listBackups(store, dir)).length, 4);

      const dry = await pruneBackups(store, dir, { keep: 1 }, { dryRun: true, now: new Date('2024-07-01T00:00:00Z') });
      assert.deepEqual(dry.backups.map((d) => d.action), ['keep', 'keep', 'delete', 'delete']);
      assert.equal((await listBackups(store, dir)).length, 4, 'a dry run deletes nothing');

      await pruneBackups(store, dir, { keep: 1 }, { now: new Date('2024-07-01T00:00:00Z') });
      const left = (await listBackups(store, dir)).map((b) => b.path);
      assert.equal(left[0], newest);
      assert.equal(left.length, 2);
      assert.ok(!left.includes(middle) && !left.includes(oldest));
      assert.equal(await store.stat(sidecarPath(oldest)), null);
      assert.equal(await store.stat(verifyRecordPath(oldest)), null);
      assert.equal(await newestVerifiedBackupBinlog({ backup: { store: 'local', localDir: root } }, store, node), null, 'the remaining verified backup is another host\'s');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

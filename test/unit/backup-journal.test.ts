// What a cold backup that did not end leaves, and who removes it: the backup journal names the
// staging dir and the `._COPYING_` upload; the clean-up removes both (not a committed backup), and
// prune_backups reports such an upload as a leftover however fresh it is.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalDirStore } from '../../src/backup/local-dir.ts';
import { COPYING_SUFFIX, pruneBackups, sidecarPath } from '../../src/backup/catalog.ts';
import { backupJournalDir, cleanUpAfterBackup, describeCleanUp, readBackupJournals, writeBackupJournal } from '../../src/backup/backup-journal.ts';

const DIR = '/coldbackup/c1/s1';

async function setting(opts: { committed?: boolean } = {}) {
  const root = await mkdtemp(path.join(tmpdir(), 'backup-journal-'));
  const stateDir = path.join(root, 'state');
  const store = new LocalDirStore(path.join(root, 'store'));
  const final = `${DIR}/coldback_20261203_210000.tgz`;
  const copying = `${final}${COPYING_SUFFIX}`;
  const staging = path.join(root, 'node', '.coldbackup-staging-abcd');
  await mkdir(staging, { recursive: true });
  await writeFile(path.join(staging, 'ibdata1'), 'x'.repeat(1000));
  await store.write(copying, [Buffer.from('half an archive')]);
  await store.write(sidecarPath(final), [Buffer.from('0'.repeat(64))]);
  if (opts.committed) await store.rename(copying, final);
  await writeBackupJournal(stateDir, { job: 'job-1', node: 'mysql-1', store: 'local', storeLocation: store.location, final, copying, staging });
  return { root, stateDir, store, final, copying, staging };
}

describe('the backup journal', () => {
  it('the clean-up removes the staging dir, the upload and its sidecar, then the journal, and says so', async () => {
    const s = await setting();
    const { journals } = await readBackupJournals(s.stateDir);
    assert.equal(journals.length, 1);
    const done = await cleanUpAfterBackup(s.stateDir, journals[0]!, s.store);
    assert.equal(done.committed, false);
    assert.deepEqual(done.left, []);
    assert.deepEqual(done.removed, [s.staging, `${s.copying} (local store)`, `${sidecarPath(s.final)} (local store)`]);
    assert.match(describeCleanUp(done), /removed .*\.coldbackup-staging-abcd and .*coldback_20261203_210000\.tgz\._COPYING_ \(local store\)/);
    assert.equal(existsSync(s.staging), false);
    assert.deepEqual(await s.store.list(DIR), []);
    assert.deepEqual(await readdir(backupJournalDir(s.stateDir)), []);
  });

  it('a backup that had committed keeps its archive and sidecar; only the staging dir goes', async () => {
    const s = await setting({ committed: true });
    const { journals } = await readBackupJournals(s.stateDir);
    const done = await cleanUpAfterBackup(s.stateDir, journals[0]!, s.store);
    assert.equal(done.committed, true);
    assert.deepEqual(done.removed, [s.staging]);
    assert.deepEqual((await s.store.list(DIR)).map((e) => e.name), ['coldback_20261203_210000.tgz', 'coldback_20261203_210000.tgz.sha256']);
  });

  it('prune reports and removes the upload of an interrupted backup however fresh it is', async () => {
    const s = await setting();
    // Without the journal's word, a fresh upload may be someone's backup under way: kept.
    const blind = await pruneBackups(s.store, DIR, {}, { dryRun: true });
    assert.deepEqual(blind.leftovers, []);
    const { journals } = await readBackupJournals(s.stateDir);
    const pruned = await pruneBackups(s.store, DIR, {}, { interrupted: journals });
    assert.deepEqual(
      pruned.leftovers.map((l) => l.path),
      [s.copying, sidecarPath(s.final)],
    );
    assert.match(pruned.leftovers[0]!.reason, /left by backup job job-1, which did not end/);
    assert.deepEqual(await s.store.list(DIR), []);
  });
});

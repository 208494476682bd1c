// The local store's temp files: a write in progress lives under a hidden `.<name>.<uuid>.tmp`; one
// left by a node-mgr killed mid-write is removed by the sweep at start, one a live write holds open
// never is, and nothing else is touched.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { access, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalDirStore } from '../../src/backup/local-dir.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempRoot(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'store-temps-'));
  dirs.push(d);
  return d;
}

describe('local store temp files', () => {
  it('removes the temp file of a write that will never finish, and keeps a live write\'s, other hidden files and links', async () => {
    const root = await tempRoot();
    const store = new LocalDirStore(root);
    const dir = path.join(root, 'coldbackup/c1/s1/binlogs/h_3306');
    await mkdir(dir, { recursive: true });
    const stale = path.join(dir, `.binlog.000007._COPYING_.${randomUUID()}.tmp`);
    await writeFile(stale, 'half an upload');
    await writeFile(path.join(dir, '.keep'), '');
    const outside = path.join(await tempRoot(), 'elsewhere');
    await writeFile(outside, 'not the store\'s');
    const link = path.join(dir, `.x.${randomUUID()}.tmp`);
    await symlink(outside, link);

    // A write in progress: its source waits until released.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    async function* slow() {
      yield Buffer.from('first half, ');
      await released;
      yield Buffer.from('second half');
    }
    const writing = store.write('/coldbackup/c1/s1/backup.tgz', slow());
    let live: string | undefined;
    for (let i = 0; i < 200 && !live; i++) {
      live = (await readdir(path.join(root, 'coldbackup/c1/s1'))).find((n) => n.endsWith('.tmp'));
      if (!live) await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(live, 'the live write has its temp file');

    const swept = await store.sweepTempFiles();
    assert.deepEqual(swept.removed, [`/coldbackup/c1/s1/binlogs/h_3306/${path.basename(stale)}`]);
    assert.deepEqual(swept.failed, []);
    assert.deepEqual((await readdir(dir)).sort(), ['.keep', path.basename(link)].sort());
    assert.equal(await readFile(outside, 'utf8'), 'not the store\'s');

    release();
    assert.deepEqual(await writing, { bytes: 23 });
    assert.equal(await readFile(path.join(root, 'coldbackup/c1/s1/backup.tgz'), 'utf8'), 'first half, second half');
    assert.deepEqual((await readdir(path.join(root, 'coldbackup/c1/s1'))).filter((n) => n.endsWith('.tmp')), []);
  });

  it('does not create a store directory that is not there', async () => {
    const root = path.join(await tempRoot(), 'never-used');
    assert.deepEqual(await new LocalDirStore(root).sweepTempFiles(), { removed: [], failed: [] });
    await assert.rejects(access(root));
  });
});

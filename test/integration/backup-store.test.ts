// The backup store contract, run against a local directory and against a real HDFS
// (MiniDFSCluster through WebHDFS): the cold backup and restore jobs rely on exactly this.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, symlink, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { BackupStoreError, type BackupStore, type BackupStoreErrorCode } from '../../src/backup/store.ts';
import { LocalDirStore } from '../../src/backup/local-dir.ts';
import { WebHdfsStore } from '../../src/backup/webhdfs.ts';
import { openStore } from '../../src/backup/index.ts';
import { startHdfs, type MiniHdfs } from '../support/hdfs.ts';

// HDFS takes seconds to start: boot it while the local-directory suite runs.
const hdfsStarting = startHdfs({ dataNodes: 1 });
hdfsStarting.catch(() => undefined); // reported by the WebHDFS suite's before()

const MB = 1024 * 1024;

/** `size` random bytes in 256 KiB chunks, and their sha256. */
function randomPayload(size: number): { chunks: Buffer[]; sha256: string } {
  const chunks: Buffer[] = [];
  const hash = createHash('sha256');
  for (let left = size; left > 0; left -= 256 * 1024) {
    const chunk = randomBytes(Math.min(left, 256 * 1024));
    hash.update(chunk);
    chunks.push(chunk);
  }
  return { chunks, sha256: hash.digest('hex') };
}

async function* slowly(chunks: Buffer[]): AsyncGenerator<Buffer> {
  for (const chunk of chunks) {
    await sleep(0);
    yield chunk;
  }
}

async function sha256Of(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).byteLength;
  }
  return { sha256: hash.digest('hex'), bytes };
}

async function readText(store: BackupStore, p: string, offset?: number): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.read(p, { offset })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function storeError(code: BackupStoreErrorCode, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof BackupStoreError, `expected a BackupStoreError, got ${String(err)}`);
    assert.equal(err.code, code, `code of: ${err.message}`);
    if (message) assert.match(err.message, message);
    return true;
  };
}

/** The contract every BackupStore keeps. `root` isolates this run's files in the store. */
function backupStoreContract(store: () => BackupStore, root: string) {
  const dir = `${root}/coldbackup/clust1/shard1`;

  it('streams a 20 MB archive in and reads back the same bytes', async () => {
    const payload = randomPayload(20 * MB);
    const name = `${dir}/coldback_20211122_234303.tgz._COPYING_`;
    const { bytes } = await store().write(name, slowly(payload.chunks));
    assert.equal(bytes, 20 * MB);
    assert.equal((await store().stat(name))?.size, 20 * MB);
    const back = await sha256Of(await store().read(name));
    assert.deepEqual(back, { sha256: payload.sha256, bytes: 20 * MB });
  });

  it('reads a file from an offset', async () => {
    const name = `${dir}/offset.bin`;
    const head = randomBytes(MB + 17);
    await store().write(name, [head, Buffer.from('0123456789')]);
    assert.equal(await readText(store(), name, head.length + 4), '456789');
    assert.equal(await readText(store(), name, head.length + 10), '', 'offset at the end reads nothing');
    await assert.rejects(store().read(name, { offset: head.length + 11 }), storeError('invalid_argument', /beyond the end/));
    await assert.rejects(store().read(name, { offset: -1 }), storeError('invalid_argument'));
  });

  it('renames a file, creating the new parent and never replacing an existing file', async () => {
    const from = `${dir}/rename.tgz._COPYING_`;
    const to = `${root}/renamed/deeper/rename.tgz`;
    await store().write(from, [Buffer.from('complete backup')]);
    await store().rename(from, to);
    assert.equal(await store().stat(from), null);
    assert.equal(await readText(store(), to), 'complete backup');

    await store().write(from, [Buffer.from('second')]);
    await assert.rejects(store().rename(from, to), storeError('already_exists', /already exists/));
    assert.equal(await readText(store(), to), 'complete backup', 'the committed file is untouched');
    await assert.rejects(store().rename(`${dir}/never-written`, `${dir}/x`), storeError('not_found'));
  });

  it('appends record lines, creating the file with the first one', async () => {
    const record = `${root}/coldbackup/storage.txt`;
    await store().appendLine(record, `${dir}/coldback_20211122_234303.tgz`);
    await store().appendLine(record, `${dir}/coldback_20211123_010000.tgz`);
    assert.equal(await readText(store(), record), `${dir}/coldback_20211122_234303.tgz\n${dir}/coldback_20211123_010000.tgz\n`);
    await assert.rejects(store().appendLine(record, 'two\nlines'), storeError('invalid_argument'));
  });

  it('lists a directory: files and subdirectories by name, with sizes and times', async () => {
    const listed = `${root}/listed`;
    await store().mkdirs(`${listed}/sub/dir`);
    await store().write(`${listed}/b.tgz`, [Buffer.alloc(3)]);
    await store().write(`${listed}/a.tgz`, [Buffer.alloc(5)]);
    const entries = await store().list(listed);
    assert.deepEqual(
      entries.map(({ name, size, type }) => ({ name, size, type })),
      [
        { name: 'a.tgz', size: 5, type: 'file' },
        { name: 'b.tgz', size: 3, type: 'file' },
        { name: 'sub', size: 0, type: 'dir' },
      ],
    );
    for (const e of entries) assert.ok(e.mtime instanceof Date && Math.abs(Date.now() - e.mtime.getTime()) < 600_000);
    await assert.rejects(store().list(`${root}/no-such-dir`), storeError('not_found'));
    await assert.rejects(store().list(`${listed}/a.tgz`), storeError('not_a_directory'));
  });

  it('deletes files and directory trees; deleting nothing is fine', async () => {
    const doomed = `${root}/doomed`;
    await store().write(`${doomed}/x/file.tgz`, [Buffer.from('x')]);
    await store().write(`${doomed}/top.tgz`, [Buffer.from('y')]);
    await store().delete(`${doomed}/top.tgz`);
    assert.equal(await store().stat(`${doomed}/top.tgz`), null);
    await store().delete(doomed);
    assert.equal(await store().stat(`${doomed}/x/file.tgz`), null);
    assert.equal(await store().stat(doomed), null);
    await store().delete(`${root}/never-existed`);
    await assert.rejects(store().delete('/'), storeError('invalid_path'));
  });

  it('answers null for the stat of a missing path', async () => {
    assert.equal(await store().stat(`${root}/missing/backup.tgz`), null);
    const st = await store().stat(dir);
    assert.equal(st?.type, 'dir');
  });

  it('rejects paths that could leave the store, in every operation', async () => {
    const bad = ['relative/backup.tgz', `${root}/../escape.tgz`, `${root}/./x`, '/..', `${root}/a\0b`, `${root}/a\nb`, ''];
    for (const p of bad) {
      const invalid = storeError('invalid_path');
      await assert.rejects(store().write(p, [Buffer.from('x')]), invalid, `write ${JSON.stringify(p)}`);
      await assert.rejects(store().read(p), invalid);
      await assert.rejects(store().stat(p), invalid);
      await assert.rejects(store().list(p), invalid);
      await assert.rejects(store().rename(p, `${root}/ok`), invalid);
      await assert.rejects(store().rename(`${root}/ok`, p), invalid);
      await assert.rejects(store().appendLine(p, 'x'), invalid);
      await assert.rejects(store().delete(p), invalid);
      await assert.rejects(store().mkdirs(p), invalid);
    }
  });

  it('leaves no file behind when the upload is aborted or its source fails', async () => {
    const name = `${dir}/aborted.tgz._COPYING_`;
    const controller = new AbortController();
    async function* abortMidway() {
      for (let i = 0; i < 64; i++) {
        if (i === 8) controller.abort(new Error('job cancelled'));
        await sleep(1);
        yield randomBytes(64 * 1024);
      }
    }
    await assert.rejects(store().write(name, abortMidway(), { signal: controller.signal }), storeError('aborted'));
    assert.equal(await store().stat(name), null);

    async function* failMidway() {
      yield randomBytes(MB);
      throw new Error('mariabackup exited with code 1');
    }
    await assert.rejects(store().write(name, failMidway()), storeError('failed', /mariabackup exited with code 1/));
    assert.equal(await store().stat(name), null);
  });
}

describe('local directory backup store', () => {
  let tmp: string;
  let store: LocalDirStore;
  before(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), 'node-mgr-store-'));
    store = new LocalDirStore(path.join(tmp, 'backups'));
  });
  after(() => rm(tmp, { recursive: true, force: true }));

  backupStoreContract(() => store, '/t');

  it('keeps no temporary files after writes', async () => {
    assert.deepEqual((await readdir(path.join(tmp, 'backups/t/coldbackup/clust1/shard1'))).filter((n) => n.endsWith('.tmp')), []);
  });

  it('never follows a symlink out of its directory', async () => {
    const outside = path.join(tmp, 'outside');
    await mkdir(outside);
    await writeFile(path.join(outside, 'secret'), 'do not read');
    await mkdir(path.join(tmp, 'backups/t'), { recursive: true });
    await symlink(outside, path.join(tmp, 'backups/t/link'));
    await symlink(path.join(outside, 'planted'), path.join(tmp, 'backups/t/dangling'));
    const escapes = storeError('invalid_path', /outside the local backup store/);
    await assert.rejects(store.read('/t/link/secret'), escapes);
    await assert.rejects(store.write('/t/link/new.tgz', [Buffer.from('x')]), escapes);
    await assert.rejects(store.appendLine('/t/link/records.txt', 'x'), escapes);
    await assert.rejects(store.mkdirs('/t/link/sub'), escapes);
    await assert.rejects(store.list('/t/link'), escapes);
    await assert.rejects(store.appendLine('/t/dangling', 'x'), storeError('invalid_path'));
    assert.deepEqual(await readdir(outside), ['secret']);
  });

  it('is what openStore gives for the default config', () => {
    const s = openStore({ backup: { store: 'local', localDir: tmp } });
    assert.equal(s.name, 'local');
    assert.equal(s.location, tmp);
  });
});

describe('WebHDFS backup store (MiniDFSCluster)', () => {
  let hdfs: MiniHdfs;
  let store: WebHdfsStore;
  before(async () => {
    hdfs = await hdfsStarting;
    store = openStore({ backup: { store: 'webhdfs', localDir: '/unused', webhdfs: { url: hdfs.namenodeUrl, user: 'root' } } }) as WebHdfsStore;
  });
  after(() => hdfs?.stop());

  backupStoreContract(() => store, '/t');

  it('says which NameNode it cannot reach', async () => {
    const nowhere = new WebHdfsStore({ url: 'http://127.0.0.1:1', user: 'root', requestTimeoutMs: 5000 });
    await assert.rejects(nowhere.stat('/x'), storeError('failed', /cannot talk to the NameNode at 127\.0\.0\.1:1 .*ECONNREFUSED/));
  });

  // Must stay last: it leaves the cluster without a DataNode.
  it('rejects an upload whose DataNode dies mid-stream with a clear error, leaving no file', async () => {
    const name = '/t/coldbackup/clust1/shard1/coldback_20211124_000000.tgz._COPYING_';
    let sent = 0;
    let stopped: Promise<void> | undefined;
    async function* backupThatOutlivesTheDataNode() {
      for (let i = 0; i < 400; i++) {
        if (sent >= 8 * MB) stopped ??= hdfs.stopDataNode(0);
        const chunk = randomBytes(256 * 1024);
        sent += chunk.byteLength;
        await sleep(sent >= 8 * MB ? 5 : 0);
        yield chunk;
      }
    }
    const started = Date.now();
    await assert.rejects(
      store.write(name, backupThatOutlivesTheDataNode()),
      storeError('failed', /CREATE \/t\/coldbackup\/clust1\/shard1\/coldback_20211124_000000\.tgz\._COPYING_.*DataNode 127\.0\.0\.1:\d+.*after \d+ bytes/),
    );
    assert.ok(stopped, 'the DataNode was stopped during the upload');
    await stopped;
    assert.ok(Date.now() - started < 60_000, 'the failure is noticed promptly');
    assert.equal(await store.stat(name), null, 'no partial file is left');
    assert.equal(await store.stat(name.replace(/\._COPYING_$/, '')), null);
  });
});

// sha256 of files in a worker thread (src/jobs/file-digest.ts): the digests a table send records.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FollowingDigest, sha256Files } from '../../src/jobs/file-digest.ts';

describe('file digests in a worker', () => {
  it('gives the sha256 of each file, in order, across the worker\'s read buffer boundaries', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nm-digest-'));
    try {
      const files = { empty: Buffer.alloc(0), small: Buffer.from('table.cfg'), big: randomBytes(9 * 1024 * 1024 + 7) };
      for (const [name, data] of Object.entries(files)) writeFileSync(path.join(dir, name), data);
      const got = await sha256Files(Object.keys(files).map((n) => path.join(dir, n)));
      assert.deepEqual(got, Object.values(files).map((d) => createHash('sha256').update(d).digest('hex')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects for a missing file, and when its signal is aborted', async () => {
    await assert.rejects(sha256Files(['/nonexistent/nm-digest']), /ENOENT/);
    const ac = new AbortController();
    ac.abort(new Error('job cancelled'));
    await assert.rejects(sha256Files(['/dev/zero'], ac.signal), /job cancelled/);
    const later = new AbortController();
    const reading = sha256Files(['/dev/zero'], later.signal);
    setTimeout(() => later.abort(new Error('cancelled while hashing')), 50);
    await assert.rejects(reading, /cancelled while hashing/);
  });

  it('follows files while they are written: the digest of each, whatever the pieces', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nm-digest-'));
    const digest = new FollowingDigest();
    try {
      const pieces = [[Buffer.from('cfg')], [randomBytes(5 * 1024 * 1024), Buffer.alloc(0), randomBytes(9 * 1024 * 1024 + 3), randomBytes(1)]];
      const digests: Promise<string>[] = [];
      for (const [i, file] of pieces.entries()) {
        const name = path.join(dir, `f${i}`);
        writeFileSync(name, '');
        digest.open(name);
        let size = 0;
        for (const p of file) {
          appendFileSync(name, p);
          digest.written((size += p.length));
        }
        digests.push(digest.close());
      }
      assert.deepEqual(await Promise.all(digests), pieces.map((file) => createHash('sha256').update(Buffer.concat(file)).digest('hex')));
    } finally {
      await digest.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a follower told of bytes the file does not have rejects, and a stopped one too', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nm-digest-'));
    const digest = new FollowingDigest();
    try {
      const name = path.join(dir, 'short');
      writeFileSync(name, 'abc');
      digest.open(name);
      digest.written(10);
      await assert.rejects(digest.close(), /ends at byte 3, 10 were written/);
      const other = new FollowingDigest();
      other.open(name);
      await other.stop();
      await assert.rejects(other.close(), /stopped/);
    } finally {
      await digest.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

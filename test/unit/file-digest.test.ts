// sha256 of files in a worker thread (src/jobs/file-digest.ts): the digests a table send records.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sha256Files } from '../../src/jobs/file-digest.ts';

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
});

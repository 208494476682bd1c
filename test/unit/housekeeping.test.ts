// Trash purge: dropped nodes stay recoverable for the grace period, then go.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, utimesSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { purgeTrash } from '../../src/supervisor/housekeeping.ts';

describe('trash purge', () => {
  it('deletes dropped nodes older than the grace period and keeps younger ones', async () => {
    const trash = mkdtempSync(path.join(os.tmpdir(), 'nm-trash-'));
    const old = path.join(trash, 'mysql-6001-20260101T000000000Z');
    const young = path.join(trash, 'postgres-5401-20261128T000000000Z');
    for (const d of [old, young]) {
      mkdirSync(path.join(d, 'data'), { recursive: true });
      writeFileSync(path.join(d, 'data', 'f'), 'x');
    }
    const now = Date.now();
    const eightDaysAgo = (now - 8 * 86_400_000) / 1000;
    utimesSync(old, eightDaysAgo, eightDaysAgo);
    const deleted = await purgeTrash(trash, 7 * 86_400_000, now);
    assert.deepEqual(deleted, [path.basename(old)]);
    assert.equal(existsSync(old), false);
    assert.equal(existsSync(young), true);
    rmSync(trash, { recursive: true, force: true });
  });

  it('is quiet when there is no trash yet', async () => {
    assert.deepEqual(await purgeTrash('/nonexistent/node-mgr-trash', 1), []);
  });
});

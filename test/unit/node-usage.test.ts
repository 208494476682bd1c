// Per-node disk and process figures come from one background pass; a missing dir is no error.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeUsage } from '../../src/host/node-usage.ts';

describe('node usage sampler', () => {
  it('measures each data dir and the process of each node in one pass', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'nm-usage-'));
    mkdirSync(path.join(root, 'a'));
    mkdirSync(path.join(root, 'b'));
    writeFileSync(path.join(root, 'a', 'f'), Buffer.alloc(200_000, 1));
    const usage = new NodeUsage(() => [
      { id: 'a', dataDir: path.join(root, 'a'), pid: process.pid },
      { id: 'b', dataDir: path.join(root, 'b'), pid: null },
      { id: 'gone', dataDir: path.join(root, 'missing'), pid: null },
    ]);
    await usage.refresh();
    const a = usage.get('a');
    const b = usage.get('b');
    assert.ok(a.diskUsed! >= 200_000, `a uses ${a.diskUsed}`);
    assert.ok(b.diskUsed! < 200_000);
    assert.ok(a.diskFree! > 0);
    assert.ok(a.memRss! > 0);
    assert.equal(b.cpuPct, null);
    assert.deepEqual(usage.get('gone'), { diskUsed: null, diskFree: null, cpuPct: null, memRss: null });
    rmSync(root, { recursive: true, force: true });
  });
});

// Per-node disk and process figures come from one background pass; a missing dir is no error.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { diskUsage, MAX_DU_INTERVAL_MS, NodeUsage } from '../../src/host/node-usage.ts';

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

  it('walks a data dir again only when its size may have changed: the wait doubles while it stays the same', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'nm-usage-'));
    mkdirSync(path.join(root, 'a'));
    writeFileSync(path.join(root, 'a', 'f'), Buffer.alloc(10_000, 1));
    let now = 0;
    const walked: string[][] = [];
    const usage = new NodeUsage(() => [{ id: 'a', dataDir: path.join(root, 'a'), pid: null }], 10_000, {
      now: () => now,
      // Other tests write to the same filesystem: its usage is no signal here.
      fsChangeBytes: Infinity,
      du: (dirs) => {
        walked.push(dirs);
        return diskUsage(dirs);
      },
    });
    const passesAt = async (times: number[]) => {
      const before = walked.length;
      for (const t of times) {
        now = t;
        await usage.refresh();
      }
      return walked.length - before;
    };
    assert.equal(await passesAt([0]), 1, 'measured at once');
    assert.equal(await passesAt([5_000]), 0, 'not again within the interval');
    assert.equal(await passesAt([10_000]), 1, 'again after the interval: the same size');
    assert.equal(await passesAt([20_000]), 0, 'the wait is now 20 s');
    assert.equal(await passesAt([30_000]), 1);
    assert.equal(await passesAt([40_000, 50_000, 60_000]), 0, 'then 40 s');
    assert.equal(await passesAt([70_000]), 1);
    writeFileSync(path.join(root, 'a', 'g'), Buffer.alloc(50_000, 1));
    assert.equal(await passesAt([150_000]), 1, 'after 80 s it finds the new file');
    assert.ok(usage.get('a').diskUsed! >= 60_000);
    assert.equal(await passesAt([155_000]), 0);
    assert.equal(await passesAt([160_000]), 1, 'a change brings the wait back to the interval');
    for (let t = 170_000, runs = 0; runs < 12; t += 10_000) runs += await passesAt([t]);
    const idle = await passesAt(Array.from({ length: 60 }, (_, i) => 10_000_000 + i * 10_000));
    assert.equal(idle, 1, `an unchanged dir is walked at most every ${MAX_DU_INTERVAL_MS / 60_000} min (${idle} walks in 10 min)`);
    rmSync(root, { recursive: true, force: true });
  });

  it('walks at once a dir whose filesystem usage moved by more than the threshold', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'nm-usage-'));
    mkdirSync(path.join(root, 'a'));
    let now = 0;
    let walks = 0;
    const usage = new NodeUsage(() => [{ id: 'a', dataDir: path.join(root, 'a'), pid: null }], 10_000, {
      now: () => now,
      fsChangeBytes: 0,
      du: (dirs) => {
        walks++;
        return diskUsage(dirs);
      },
    });
    await usage.refresh();
    writeFileSync(path.join(root, 'a', 'f'), Buffer.alloc(1_000_000, 1));
    now = 1000;
    await usage.refresh();
    assert.equal(walks, 2, 'the write moved the filesystem usage: walked before the interval');
    assert.ok(usage.get('a').diskUsed! >= 1_000_000);
    rmSync(root, { recursive: true, force: true });
  });

  it('walks an unchanged dir less and less often while other writers keep moving its filesystem', async () => {
    let now = 0;
    let fsUsed = 0;
    let size = 1000;
    let walks = 0;
    const MB = 2 ** 20;
    const usage = new NodeUsage(() => [{ id: 'a', dataDir: '/srv/a', pid: null }], 10_000, {
      now: () => now,
      fsChangeBytes: 64 * MB,
      filesystem: async () => ({ free: 1e12, used: fsUsed }),
      du: async (dirs) => {
        walks++;
        return new Map(dirs.map((d) => [d, size]));
      },
    });
    // Someone else writes 100 MB every 10 s on the same disk; the dir itself does not change.
    const passes = async (n: number) => {
      const before = walks;
      for (let i = 0; i < n; i++) {
        now += 10_000;
        fsUsed += 100 * MB;
        await usage.refresh();
      }
      return walks - before;
    };
    await usage.refresh();
    const first = await passes(30);
    assert.ok(first <= 8, `${first} walks in 5 min of someone else's writes (one per pass would be 30)`);
    // The dir grows: a later walk sees it, and from then on it is watched closely again.
    size = 2000;
    for (let i = 0; i < 40 && usage.get('a').diskUsed !== 2000; i++) await passes(1);
    assert.equal(usage.get('a').diskUsed, 2000);
    size = 3000;
    assert.equal(await passes(1), 1, 'walked again at the next pass after a change');
    assert.equal(usage.get('a').diskUsed, 3000);
  });
});

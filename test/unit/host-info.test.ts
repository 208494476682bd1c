// Host facts for get_info: CPU and memory kept current from /proc, filesystems read only when asked.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HostInfo, readCpuTicks, readMemory } from '../../src/host/info.ts';

describe('host info sampler', () => {
  it('reads the filesystems only when get_info asks, at most once per interval', async () => {
    const host = new HostInfo(60_000);
    host.start();
    try {
      await sleep(300);
      assert.equal(host.diskReads, 0, 'nobody asked: no df');
      const first = await host.current();
      assert.equal(host.diskReads, 1);
      assert.ok(first!.disks.some((d) => d.mount === '/'), 'the root filesystem is listed');
      assert.ok(first!.memFree > 0);
      await host.current();
      await host.current();
      assert.equal(host.diskReads, 1, 'fresh figures are reused');
      const info = await host.legacyInfo({ meta_node: 0, storage_node: 0, computer_node: 0 }, ['/tmp']);
      assert.notEqual(info.disk_free, '0', 'root figures are there');
    } finally {
      host.stop();
    }
  });
});

describe('host figures from /proc', () => {
  it('counts busy CPU ticks as all but idle and iowait, from the first line of /proc/stat', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nm-proc-'));
    try {
      const stat = path.join(dir, 'stat');
      writeFileSync(stat, 'cpu  100 5 50 800 20 3 2 1 7 0\ncpu0 50 2 25 400 10 1 1 0 3 0\nintr 1 2\n');
      assert.deepEqual(await readCpuTicks(stat), { busy: 161, total: 981 });
      writeFileSync(stat, 'intr 1 2\n');
      await assert.rejects(readCpuTicks(stat), /no cpu line/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads total and available memory in bytes from /proc/meminfo', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nm-proc-'));
    try {
      const meminfo = path.join(dir, 'meminfo');
      writeFileSync(meminfo, 'MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n');
      assert.deepEqual(await readMemory(meminfo), { total: 1000 * 1024, available: 400 * 1024 });
      // A kernel older than 3.14 has no MemAvailable: MemFree it is.
      writeFileSync(meminfo, 'MemTotal:       1000 kB\nMemFree:         100 kB\n');
      assert.deepEqual(await readMemory(meminfo), { total: 1000 * 1024, available: 100 * 1024 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes the CPU figure of the sampler from the ticks between two samples', async () => {
    const host = new HostInfo(100);
    host.start();
    try {
      await sleep(350);
      const s = await host.current();
      assert.ok(s!.cpuPct >= 0 && s!.cpuPct <= 100, String(s!.cpuPct));
      assert.ok(s!.memUsed > 0 && s!.memFree > 0);
    } finally {
      host.stop();
    }
  });
});

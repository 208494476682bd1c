// Host facts for get_info: CPU and memory kept current from /proc, filesystems read only when asked.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { HostInfo } from '../../src/host/info.ts';

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

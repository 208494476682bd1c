// The probe clock shared by the nodes probed at the same interval: their probes start in the same
// wake-up of the process, each still once per interval, and no timer is left once all have stopped.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { onProbeTick, runningProbeClocks } from '../../src/supervisor/probe-clock.ts';
import { watchAdopted } from '../../src/supervisor/spawn.ts';

describe('probe clock', () => {
  it('ticks the members of one interval in the same wake-up, once per interval each', async () => {
    const before = runningProbeClocks();
    let aRunning = false;
    let a = 0;
    let b = 0;
    let bApart = 0;
    const stopA = onProbeTick(15, () => {
      a++;
      aRunning = true;
      // Cleared before the next macrotask: B sees it set only when it runs in A's wake-up.
      queueMicrotask(() => (aRunning = false));
    });
    const stopB = onProbeTick(15, () => {
      b++;
      if (!aRunning) bApart++;
    });
    assert.equal(runningProbeClocks(), before + 1, 'one timer for both');
    const deadline = Date.now() + 20_000;
    while (b < 10 && Date.now() < deadline) await sleep(5);
    stopA();
    assert.ok(b >= 10, `${b} ticks`);
    assert.equal(bApart, 0, 'B always ran in the same wake-up as A');
    assert.ok(Math.abs(a - b) <= 1, `a ${a}, b ${b}`);
    // B goes on alone after A stopped.
    const bThen = b;
    while (b < bThen + 3 && Date.now() < deadline) await sleep(5);
    assert.ok(b >= bThen + 3);
    stopB();
    assert.equal(runningProbeClocks(), before, 'no timer left once all stopped');
  });

  it('keeps intervals apart: a member of another interval has its own clock', async () => {
    const before = runningProbeClocks();
    let fast = 0;
    let slow = 0;
    const stopFast = onProbeTick(10, () => fast++);
    const stopSlow = onProbeTick(200, () => slow++);
    assert.equal(runningProbeClocks(), before + 2);
    const deadline = Date.now() + 20_000;
    while (slow < 2 && Date.now() < deadline) await sleep(5);
    stopFast();
    stopSlow();
    assert.ok(slow >= 2, `slow ticked ${slow} times`);
    assert.ok(fast > slow, `fast ${fast}, slow ${slow}`);
    assert.equal(runningProbeClocks(), before);
  });

  it('counts the same function registered twice as two members', async () => {
    let n = 0;
    const tick = () => n++;
    const stop1 = onProbeTick(12, tick);
    const stop2 = onProbeTick(12, tick);
    const deadline = Date.now() + 20_000;
    while (n < 6 && Date.now() < deadline) await sleep(3);
    stop1();
    stop2();
    assert.equal(n % 2, 0, 'both ran at every tick');
  });

  it('spreads the members of a long interval over slots: 20 nodes at 500 ms, two per wake-up, each once per interval', async () => {
    let inWake = false;
    let wake = 0;
    const perWake = new Map<number, number>();
    const perMember = new Array<number>(20).fill(0);
    const stops = perMember.map((_, i) =>
      onProbeTick(500, () => {
        if (!inWake) {
          inWake = true;
          wake++;
          queueMicrotask(() => (inWake = false));
        }
        perWake.set(wake, (perWake.get(wake) ?? 0) + 1);
        perMember[i]!++;
      }),
    );
    const deadline = Date.now() + 30_000;
    while (perMember.some((n) => n < 2) && Date.now() < deadline) await sleep(10);
    for (const stop of stops) stop();
    assert.ok(perMember.every((n) => n >= 2), `ticks per member: ${perMember.join(' ')}`);
    assert.ok(Math.max(...perMember) - Math.min(...perMember) <= 1, `ticks per member: ${perMember.join(' ')}`);
    assert.ok([...perWake.values()].every((n) => n === 2), `members per wake-up: ${[...perWake.values()].join(' ')}`);
  });

  it('polls every adopted server from one clock, and a cancelled or ended watch leaves it', async () => {
    const before = runningProbeClocks();
    // This test process stands in for adopted servers that keep running.
    const watches = Array.from({ length: 5 }, () => watchAdopted(process.pid, 12_345));
    assert.equal(runningProbeClocks(), before + 1, 'five adopted servers, one timer');
    watches[0]!.checkNow();
    for (const w of watches) w.cancel();
    assert.equal(runningProbeClocks(), before);
    // A pid that is gone resolves at once and starts no clock at all.
    const gone = watchAdopted(2 ** 22 + 12_345, 12_345);
    await gone.exit;
    assert.equal(runningProbeClocks(), before);
  });
});

// One timer per interval for all the nodes probed at that interval (health probes, and the /proc
// poll of adopted servers), instead of one per node. Each wake-up of an idle process costs more
// than the probe it runs (cold caches, two context switches): 200 nodes probed on timers of their
// own cost about 240–450 µs of CPU per probe, the same probes started together about 45–70 µs
// (issue 16). All 200 at once, though, wake 200 servers at the same instant and hold node-mgr's
// event loop for the burst (GET /healthz p99 went from ~15 to ~70 ms on a loaded machine): the
// interval is cut into slots, each node in the least-filled slot, and one slot is ticked per wake-up.

/** Up to this many slots per interval; a slot is never shorter than MIN_SLOT_MS. */
const MAX_SLOTS = 10;
const MIN_SLOT_MS = 50;

interface Clock {
  timer: NodeJS.Timeout;
  slots: Array<Set<() => void>>;
  next: number;
}

const clocks = new Map<number, Clock>();

function slotCount(intervalMs: number): number {
  return Math.max(1, Math.min(MAX_SLOTS, Math.floor(intervalMs / MIN_SLOT_MS)));
}

/**
 * Calls tick once every intervalMs, from the clock shared by every caller of that interval (in the
 * wake-up of its slot); returns the stop function.
 */
export function onProbeTick(intervalMs: number, tick: () => void): () => void {
  let clock = clocks.get(intervalMs);
  if (!clock) {
    const count = slotCount(intervalMs);
    const slots = Array.from({ length: count }, () => new Set<() => void>());
    const created: Clock = {
      slots,
      next: 0,
      timer: setInterval(() => {
        const slot = slots[created.next];
        created.next = (created.next + 1) % count;
        for (const member of slot!) member();
      }, intervalMs / count),
    };
    clock = created;
    clocks.set(intervalMs, clock);
  }
  // A closure of its own: the same function registered twice is two members.
  const member = () => tick();
  const slot = clock.slots.reduce((least, s) => (s.size < least.size ? s : least));
  slot.add(member);
  const owner = clock;
  return () => {
    slot.delete(member);
    if (owner.slots.every((s) => s.size === 0) && clocks.get(intervalMs) === owner) {
      clearInterval(owner.timer);
      clocks.delete(intervalMs);
    }
  };
}

/** How many intervals have a clock running (tests: a stopped monitor leaves no timer behind). */
export function runningProbeClocks(): number {
  return clocks.size;
}

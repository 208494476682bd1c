// One timer per interval for all the nodes probed at that interval (health probes, and the /proc
// poll of adopted servers), instead of one per node.
// Each wake-up of an idle process costs more than the probe it runs (cold caches, two context
// switches): 200 nodes probed on their own timers cost about 250–450 µs of CPU per probe, the same
// probes started together about 50–70 µs (bench/footprint.ts, issue 16). The probes still run
// once per interval each, concurrently, as before; only their phase is shared.

interface Clock {
  timer: NodeJS.Timeout;
  members: Set<() => void>;
}

const clocks = new Map<number, Clock>();

/** Calls tick once every intervalMs, on the clock shared by every caller of that interval; returns the stop function. */
export function onProbeTick(intervalMs: number, tick: () => void): () => void {
  let clock = clocks.get(intervalMs);
  if (!clock) {
    const members = new Set<() => void>();
    const timer = setInterval(() => {
      for (const member of members) member();
    }, intervalMs);
    clock = { timer, members };
    clocks.set(intervalMs, clock);
  }
  // A closure of its own: the same function registered twice is two members.
  const member = () => tick();
  clock.members.add(member);
  const owner = clock;
  return () => {
    owner.members.delete(member);
    if (owner.members.size === 0 && clocks.get(intervalMs) === owner) {
      clearInterval(owner.timer);
      clocks.delete(intervalMs);
    }
  };
}

/** How many intervals have a clock running (tests: a stopped monitor leaves no timer behind). */
export function runningProbeClocks(): number {
  return clocks.size;
}

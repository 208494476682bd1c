// The node statechart driven with fake actors and XState's simulated clock: no processes, no waiting.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createActor, fromCallback, fromPromise, SimulatedClock, type AnyEventObject } from 'xstate';
import { backoffDelay, holderOf, nodeMachine, stateName, type AdoptResult, type NodePolicy, type NodeTag, type ProcessCommand, type Diagnosis } from '../../machines/node.machine.ts';
import { machineGraph } from '../../src/http/inspector/machine-graph.ts';

const policy: NodePolicy = {
  restart: { initialDelayMs: 1000, maxDelayMs: 60_000, jitter: 0, stableAfterMs: 60_000, maxRestarts: 5, windowMs: 300_000 },
  probe: { failureThreshold: 3, startTimeoutMs: 30_000 },
};

interface Harness {
  actor: ReturnType<typeof createActor<typeof nodeMachine>>;
  clock: SimulatedClock;
  commands: ProcessCommand[];
  spawned: Array<{ adoptPid: number | null }>;
  state(): string;
  /** Lets promise-based fake actors settle. */
  settle(): Promise<void>;
  crash(code?: number | null, signal?: string | null): Promise<void>;
  advance(ms: number): Promise<void>;
}

function harness(opts: {
  wanted?: 'running' | 'stopped';
  adoptPid?: number | null;
  /** How long the adopted server had been up when found. */
  adoptUpForMs?: number;
  preflight?: () => Promise<void>;
  diagnosis?: Diagnosis;
  /** Replaces the diagnosis step, e.g. with one that never settles. */
  diagnose?: () => Promise<Diagnosis>;
  policy?: Partial<NodePolicy['restart']>;
  probe?: Partial<NodePolicy['probe']>;
  autoReady?: boolean;
  /** The data dir's creation (CREATE); resolves at once unless given. */
  initialize?: () => Promise<void>;
} = {}): Harness {
  const clock = new SimulatedClock();
  const commands: ProcessCommand[] = [];
  const spawned: Array<{ adoptPid: number | null }> = [];
  let nextPid = 100;
  const machine = nodeMachine.provide({
    actors: {
      adopt: fromPromise(async (): Promise<AdoptResult> => ({ pid: opts.adoptPid ?? null, upForMs: opts.adoptUpForMs ?? 0 })),
      preflight: fromPromise(opts.preflight ?? (async () => {})),
      process: fromCallback<ProcessCommand, { nodeId: string; adoptPid: number | null }>(({ input, sendBack, receive }) => {
        spawned.push({ adoptPid: input.adoptPid });
        if (input.adoptPid === null) {
          sendBack({ type: 'PROCESS_STARTED', pid: nextPid++ });
          if (opts.autoReady !== false) sendBack({ type: 'PROCESS_READY' });
        }
        receive((cmd) => {
          commands.push(cmd);
          if (cmd.type === 'CHECK_EXIT') return;
          sendBack({ type: 'PROCESS_EXITED', code: cmd.type === 'KILL' ? null : 0, signal: cmd.type === 'KILL' ? 'SIGKILL' : null, at: clock.now() });
        });
        return () => {};
      }),
      probe: fromCallback<AnyEventObject, { nodeId: string }>(() => () => {}),
      diagnose: fromPromise(opts.diagnose ?? (async () => opts.diagnosis ?? { cause: 'killed_by_signal', detail: 'killed by SIGKILL', logTail: [] })),
      drop: fromPromise(async () => {}),
      initialize: fromPromise(opts.initialize ?? (async () => {})),
    },
  });
  const actor = createActor(machine, {
    clock,
    input: {
      nodeId: 'mysql-6001',
      wanted: opts.wanted ?? 'running',
      policy: { restart: { ...policy.restart, ...opts.policy }, probe: { ...policy.probe, ...opts.probe } },
    },
  });
  const settle = async () => {
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  };
  actor.start();
  return {
    actor,
    clock,
    commands,
    spawned,
    state: () => stateName(actor.getSnapshot().value),
    settle,
    async crash(code = null, signal = 'SIGKILL') {
      actor.send({ type: 'PROCESS_EXITED', code, signal, at: clock.now() });
      await settle();
    },
    async advance(ms) {
      clock.increment(ms);
      await settle();
    },
  };
}

describe('node statechart', () => {
  it('starts a node that is wanted running and not found, and reaches running', async () => {
    const h = harness();
    await h.settle();
    assert.equal(h.state(), 'running');
    assert.equal(h.actor.getSnapshot().context.pid, 100);
  });

  it('stays stopped when the node is wanted stopped and not found', async () => {
    const h = harness({ wanted: 'stopped' });
    await h.settle();
    assert.equal(h.state(), 'stopped');
    assert.equal(h.spawned.length, 0);
  });

  it('adopts a running server without spawning a new one', async () => {
    const h = harness({ adoptPid: 4242, wanted: 'stopped' });
    await h.settle();
    assert.equal(h.state(), 'running');
    assert.deepEqual(h.spawned, [{ adoptPid: 4242 }]);
    assert.equal(h.actor.getSnapshot().context.adopted, true);
  });

  it('a crashed adopted server is restarted as our own child', async () => {
    const h = harness({ adoptPid: 4242 });
    await h.settle();
    await h.crash();
    await h.advance(1000);
    assert.equal(h.state(), 'running');
    assert.deepEqual(h.spawned, [{ adoptPid: 4242 }, { adoptPid: null }]);
    assert.equal(h.actor.getSnapshot().context.adopted, false);
  });

  it('restarts a crashed node after the backoff delay', async () => {
    const h = harness();
    await h.settle();
    await h.crash();
    assert.equal(h.state(), 'backoff');
    const ctx = h.actor.getSnapshot().context;
    assert.equal(ctx.backoffMs, 1000);
    assert.equal(ctx.lastExit?.cause, 'killed_by_signal');
    await h.advance(999);
    assert.equal(h.state(), 'backoff');
    await h.advance(1);
    assert.equal(h.state(), 'running');
    assert.equal(h.actor.getSnapshot().context.restarts, 1);
  });

  it('SET_POLICY (a reloaded config) changes the next backoff and the restart limit, in any state', async () => {
    const h = harness();
    await h.settle();
    h.actor.send({ type: 'SET_POLICY', policy: { restart: { ...policy.restart, initialDelayMs: 5000, maxRestarts: 0 }, probe: policy.probe } });
    await h.settle();
    assert.equal(h.state(), 'running', 'a policy change does not touch the process');
    assert.equal(h.actor.getSnapshot().context.policy.restart.initialDelayMs, 5000);
    await h.crash();
    assert.equal(h.state(), 'failed', 'maxRestarts 0: the first crash is one too many');
    h.actor.send({ type: 'SET_POLICY', policy: { restart: { ...policy.restart, initialDelayMs: 5000 }, probe: policy.probe } });
    h.actor.send({ type: 'START' });
    await h.settle();
    await h.crash();
    assert.equal(h.state(), 'backoff');
    assert.equal(h.actor.getSnapshot().context.backoffMs, 5000);
  });

  it('doubles the backoff on each consecutive crash up to the 60 s cap', async () => {
    const h = harness({ policy: { maxRestarts: 100 } });
    await h.settle();
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      await h.crash();
      const d = h.actor.getSnapshot().context.backoffMs!;
      delays.push(d);
      await h.advance(d);
      assert.equal(h.state(), 'running');
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  });

  it('restarts the first crash after a stable run at once, then backs off from the initial delay', async () => {
    const h = harness();
    await h.settle();
    await h.crash();
    await h.advance(1000);
    await h.crash();
    assert.equal(h.actor.getSnapshot().context.backoffMs, 2000);
    await h.advance(2000);
    await h.advance(60_000);
    await h.crash();
    assert.equal(h.state(), 'running', 'a stable server that crashes is restarted without waiting');
    assert.equal(h.spawned.length, 4);
    assert.equal(h.actor.getSnapshot().context.restarts, 3);
    await h.crash();
    assert.equal(h.state(), 'backoff', 'a second crash before the run is stable waits');
    assert.equal(h.actor.getSnapshot().context.backoffMs, 1000);
    await h.advance(1000);
    await h.crash();
    assert.equal(h.actor.getSnapshot().context.backoffMs, 2000);
  });

  it('a crash before the first stable run waits the initial backoff', async () => {
    const h = harness();
    await h.settle();
    await h.advance(59_999);
    await h.crash();
    assert.equal(h.state(), 'backoff');
    assert.equal(h.actor.getSnapshot().context.backoffMs, 1000);
  });

  it('stability does not carry over a stop: a quick crash after START waits the backoff', async () => {
    const h = harness();
    await h.settle();
    await h.advance(60_000);
    h.actor.send({ type: 'STOP' });
    await h.settle();
    h.actor.send({ type: 'START' });
    await h.settle();
    assert.equal(h.state(), 'running');
    await h.crash();
    assert.equal(h.state(), 'backoff');
  });

  it('an adopted server that had been up past stableAfterMs is restarted at once when it crashes', async () => {
    const h = harness({ adoptPid: 4242, adoptUpForMs: 3_600_000 });
    await h.settle();
    await h.crash();
    assert.equal(h.state(), 'running');
    assert.deepEqual(h.spawned, [{ adoptPid: 4242 }, { adoptPid: null }]);
  });

  it('an adopted server found young waits the backoff like a fresh start', async () => {
    const h = harness({ adoptPid: 4242, adoptUpForMs: 5_000 });
    await h.settle();
    await h.crash();
    assert.equal(h.state(), 'backoff');
  });

  it('gives up after more than maxRestarts crashes even when the first was restarted at once', async () => {
    const h = harness({ policy: { maxRestarts: 2 } });
    await h.settle();
    await h.advance(60_000);
    await h.crash();
    assert.equal(h.state(), 'running');
    await h.crash();
    assert.equal(h.state(), 'backoff');
    await h.advance(1000);
    await h.crash();
    assert.equal(h.state(), 'failed');
  });

  it('a stable server that crashes while auto_pullup is paused is held, not restarted', async () => {
    const h = harness();
    await h.settle();
    await h.advance(60_000);
    h.actor.send({ type: 'PAUSE', minutes: -1 });
    await h.crash();
    assert.equal(h.state(), 'held');
  });

  it('keeps the jittered delay within ±jitter and under the cap', () => {
    const p = { ...policy.restart, jitter: 0.2 };
    for (const r of [0, 0.25, 0.5, 0.999]) {
      const d = backoffDelay(p, 0, r);
      assert.ok(d >= 800 && d <= 1200, `attempt 0 delay ${d}`);
      assert.ok(backoffDelay(p, 10, r) <= 60_000);
    }
    assert.equal(backoffDelay(p, 0, 0), 800);
    assert.equal(backoffDelay(p, 0, 0.5), 1000);
  });

  it('goes to failed after more than maxRestarts crashes in the window, keeping the reason', async () => {
    const h = harness({
      policy: { maxRestarts: 2 },
      diagnosis: { cause: 'bad_config_option', detail: "unknown variable 'bogus=1'", logTail: ['[ERROR] unknown variable'] },
    });
    await h.settle();
    for (let i = 0; i < 2; i++) {
      await h.crash(1, null);
      assert.equal(h.state(), 'backoff');
      await h.advance(h.actor.getSnapshot().context.backoffMs!);
    }
    await h.crash(1, null);
    assert.equal(h.state(), 'failed');
    const ctx = h.actor.getSnapshot().context;
    assert.equal(ctx.lastExit?.cause, 'bad_config_option');
    assert.match(ctx.lastError ?? '', /bogus/);
    assert.equal(ctx.restarts, 2);
  });

  it('does not count crashes older than the window', async () => {
    const h = harness({ policy: { maxRestarts: 1, windowMs: 10_000, stableAfterMs: 1_000_000 } });
    await h.settle();
    await h.crash();
    await h.advance(1000);
    await h.advance(20_000);
    await h.crash();
    assert.equal(h.state(), 'backoff');
  });

  it('STOP during backoff stops the node and cancels the restart', async () => {
    const h = harness();
    await h.settle();
    await h.crash();
    h.actor.send({ type: 'STOP' });
    await h.advance(5000);
    assert.equal(h.state(), 'stopped');
    assert.equal(h.actor.getSnapshot().context.wanted, 'stopped');
    assert.equal(h.spawned.length, 1);
  });

  it('START from failed brings the node back with a fresh restart window', async () => {
    const h = harness({ policy: { maxRestarts: 0 } });
    await h.settle();
    await h.crash();
    assert.equal(h.state(), 'failed');
    h.actor.send({ type: 'START' });
    await h.settle();
    assert.equal(h.state(), 'running');
    assert.deepEqual(h.actor.getSnapshot().context.crashTimes, []);
  });

  it('STOP of a running node sends STOP to the process and ends stopped, not crashed', async () => {
    const h = harness();
    await h.settle();
    h.actor.send({ type: 'STOP' });
    await h.settle();
    assert.deepEqual(h.commands, [{ type: 'STOP' }]);
    assert.equal(h.state(), 'stopped');
    assert.equal(h.actor.getSnapshot().context.restarts, 0);
  });

  it('RESTART stops and starts again without counting a crash', async () => {
    const h = harness();
    await h.settle();
    h.actor.send({ type: 'RESTART' });
    await h.settle();
    assert.equal(h.state(), 'running');
    assert.equal(h.spawned.length, 2);
    assert.equal(h.actor.getSnapshot().context.restarts, 0);
  });

  it('a preflight refusal on START leaves the node stopped with the reason', async () => {
    const h = harness({ wanted: 'stopped', preflight: async () => { throw new Error('port 6001 is held by pid 77 (nc)'); } });
    await h.settle();
    h.actor.send({ type: 'START' });
    await h.settle();
    assert.equal(h.state(), 'stopped');
    assert.match(h.actor.getSnapshot().context.lastError ?? '', /pid 77/);
    assert.equal(h.spawned.length, 0);
  });

  it('pause (auto_pullup -1) holds a crashed node until RESUME', async () => {
    const h = harness();
    await h.settle();
    h.actor.send({ type: 'PAUSE', minutes: -1 });
    await h.crash();
    assert.equal(h.state(), 'held');
    await h.advance(3_600_000);
    assert.equal(h.state(), 'held');
    h.actor.send({ type: 'RESUME' });
    await h.settle();
    assert.equal(h.state(), 'running');
  });

  it('a timed pause ends by itself', async () => {
    const h = harness();
    await h.settle();
    h.actor.send({ type: 'PAUSE', minutes: 2 });
    await h.crash();
    assert.equal(h.state(), 'held');
    await h.advance(119_000);
    assert.equal(h.state(), 'held');
    await h.advance(1_000);
    assert.equal(h.state(), 'running');
    assert.equal(h.actor.getSnapshot().context.paused, false);
  });

  it('pausing during backoff holds the node when the timer ends', async () => {
    const h = harness();
    await h.settle();
    await h.crash();
    assert.equal(h.state(), 'backoff');
    h.actor.send({ type: 'PAUSE', minutes: -1 });
    await h.advance(10_000);
    assert.equal(h.state(), 'held');
    h.actor.send({ type: 'PAUSE', minutes: -1 });
    await h.settle();
    assert.equal(h.state(), 'held');
    h.actor.send({ type: 'RESUME' });
    await h.settle();
    assert.equal(h.state(), 'running');
  });

  it('auto_pullup 0 (PAUSE with 0 minutes) brings a held node back', async () => {
    const h = harness();
    await h.settle();
    h.actor.send({ type: 'PAUSE', minutes: -1 });
    await h.crash();
    assert.equal(h.state(), 'held');
    h.actor.send({ type: 'PAUSE', minutes: 0 });
    await h.settle();
    assert.equal(h.state(), 'running');
    assert.equal(h.actor.getSnapshot().context.paused, false);
  });

  it('asks the process handle to look at the process at once when the monitoring session is lost', async () => {
    const h = harness({ adoptPid: 4242 });
    await h.settle();
    h.actor.send({ type: 'MONITOR_SESSION_LOST' });
    await h.settle();
    assert.deepEqual(h.commands, [{ type: 'CHECK_EXIT' }]);
    assert.equal(h.state(), 'running', 'a lost session alone is not a crash');
    assert.equal(h.actor.getSnapshot().context.probeFailures, 0, 'nor a failed probe');
  });

  it('kills a hung server after N failed probes and treats it as a crash', async () => {
    const h = harness({ diagnosis: { cause: 'health_probe_failed', detail: 'no answer to 3 probes', logTail: [] } });
    await h.settle();
    h.actor.send({ type: 'PROBE_FAILED', error: 'timeout' });
    h.actor.send({ type: 'PROBE_FAILED', error: 'timeout' });
    assert.deepEqual(h.commands, []);
    h.actor.send({ type: 'PROBE_FAILED', error: 'timeout' });
    await h.settle();
    assert.deepEqual(h.commands, [{ type: 'KILL' }]);
    assert.equal(h.state(), 'backoff');
    assert.equal(h.actor.getSnapshot().context.lastExit?.cause, 'health_probe_failed');
  });

  it('a successful probe resets the failure count', async () => {
    const h = harness();
    await h.settle();
    h.actor.send({ type: 'PROBE_FAILED', error: 'x' });
    h.actor.send({ type: 'PROBE_FAILED', error: 'x' });
    h.actor.send({ type: 'PROBE_OK' });
    h.actor.send({ type: 'PROBE_FAILED', error: 'x' });
    await h.settle();
    assert.deepEqual(h.commands, []);
    assert.equal(h.state(), 'running');
  });

  it('kills a server that does not become ready within the start timeout', async () => {
    const h = harness({ autoReady: false, probe: { startTimeoutMs: 5000 } });
    await h.settle();
    assert.equal(h.state(), 'starting');
    await h.advance(5000);
    assert.deepEqual(h.commands, [{ type: 'KILL' }]);
    assert.equal(h.state(), 'backoff');
    assert.equal(h.actor.getSnapshot().context.killReason, 'start_timeout');
  });

  it('DROP of a running node stops it then drops it', async () => {
    const h = harness();
    await h.settle();
    h.actor.send({ type: 'DROP' });
    await h.settle();
    assert.equal(h.state(), 'dropped');
    assert.equal(h.actor.getSnapshot().status, 'done');
  });

  it('DROP of a crash-looping node is taken while its preflight runs', async () => {
    const h = harness({ wanted: 'stopped', preflight: () => new Promise<void>(() => {}) });
    await h.settle();
    h.actor.send({ type: 'START' });
    await h.settle();
    assert.equal(h.state(), 'preflight');
    h.actor.send({ type: 'DROP' });
    await h.settle();
    assert.equal(h.state(), 'dropped');
    assert.equal(h.spawned.length, 0, 'nothing was started');
  });

  it('DROP of a crash-looping node is taken while its crash is diagnosed', async () => {
    const h = harness({ diagnose: () => new Promise<Diagnosis>(() => {}) });
    await h.settle();
    await h.crash();
    assert.equal(h.state(), 'crashed');
    h.actor.send({ type: 'DROP' });
    await h.settle();
    assert.equal(h.state(), 'dropped');
  });

  /** A node being created whose data dir is made when `made` is called (or fails with `failed`). */
  async function creating() {
    let made!: () => void;
    let failed!: (err: Error) => void;
    const h = harness({ wanted: 'stopped', initialize: () => new Promise<void>((res, rej) => ((made = res), (failed = rej))) });
    await h.settle();
    h.actor.send({ type: 'CREATE' });
    await h.settle();
    assert.equal(h.state(), 'initializing');
    return { h, made: async () => (made(), h.settle()), failed: async (err: Error) => (failed(err), h.settle()) };
  }

  it('DROP while the data dir is being created is kept and carried out once it is made, without a start', async () => {
    const { h, made } = await creating();
    h.actor.send({ type: 'DROP' });
    await h.settle();
    assert.equal(h.state(), 'initializing', 'the creation is not cut short');
    await made();
    assert.equal(h.state(), 'dropped');
    assert.equal(h.spawned.length, 0, 'nothing was started');
  });

  it('DROP while the data dir is being created drops it also when the creation fails', async () => {
    const { h, failed } = await creating();
    h.actor.send({ type: 'DROP' });
    await failed(new Error('mysql_install_db exited with code 1'));
    assert.equal(h.state(), 'dropped');
  });

  it('STOP while the data dir is being created leaves the node stopped once it is made', async () => {
    const { h, made } = await creating();
    h.actor.send({ type: 'STOP' });
    await made();
    assert.equal(h.state(), 'stopped');
    assert.equal(h.actor.getSnapshot().context.wanted, 'stopped');
    assert.equal(h.spawned.length, 0, 'nothing was started');
  });

  it('a creation without STOP or DROP goes on to start the node', async () => {
    const { h, made } = await creating();
    await made();
    assert.equal(h.state(), 'running');
  });

  it('a crash of a node wanted stopped (adopted) does not restart it', async () => {
    const h = harness({ adoptPid: 55, wanted: 'stopped' });
    await h.settle();
    await h.crash();
    assert.equal(h.state(), 'stopped');
  });

  it('shows a backup as backing_up and ignores STOP until the work is finished', async () => {
    const h = harness();
    await h.settle();
    h.actor.send({ type: 'WORK_STARTED', work: 'backing_up', jobId: 'j1' });
    assert.equal(h.state(), 'backing_up');
    assert.deepEqual(h.actor.getSnapshot().context.work, { kind: 'backing_up', jobId: 'j1' });
    h.actor.send({ type: 'STOP' });
    await h.settle();
    assert.equal(h.state(), 'backing_up');
    assert.deepEqual(h.commands, []);
    h.actor.send({ type: 'WORK_FINISHED', jobId: 'j1' });
    assert.equal(h.state(), 'running');
    assert.equal(h.actor.getSnapshot().context.work, null);
  });

  it('a server that dies during an export is a crash like any other', async () => {
    const h = harness();
    await h.settle();
    h.actor.send({ type: 'WORK_STARTED', work: 'exporting', jobId: 'j2' });
    await h.crash();
    assert.equal(h.state(), 'backoff');
    await h.advance(1000);
    assert.equal(h.state(), 'running');
    assert.equal(h.actor.getSnapshot().context.work, null);
  });

  it('a restore stops the running server, waits in restoring, then starts it again', async () => {
    const h = harness();
    await h.settle();
    h.actor.send({ type: 'RESTORE_STARTED', jobId: 'r1' });
    await h.settle();
    assert.deepEqual(h.commands, [{ type: 'STOP' }]);
    assert.equal(h.state(), 'restoring');
    assert.equal(h.actor.getSnapshot().context.restarts, 0);
    h.actor.send({ type: 'RESTORE_FINISHED', jobId: 'r1' });
    await h.settle();
    assert.equal(h.state(), 'running');
    assert.equal(h.spawned.length, 2);
  });

  it('a restore into a stopped node starts it afterwards', async () => {
    const h = harness({ wanted: 'stopped' });
    await h.settle();
    h.actor.send({ type: 'RESTORE_STARTED', jobId: 'r2' });
    assert.equal(h.state(), 'restoring');
    h.actor.send({ type: 'RESTORE_FINISHED', jobId: 'r2' });
    await h.settle();
    assert.equal(h.state(), 'running');
    assert.equal(h.actor.getSnapshot().context.wanted, 'running');
  });
});

describe('questions asked of the node chart', () => {
  // What the rest of node-mgr asks of a node, per state. A chart change that changes an answer
  // fails here; a new state fails until its answers are written down (and its tags set).
  const TAGS: Record<string, NodeTag[]> = {
    adopting: [],
    stopped: ['settled', 'replaceable'],
    initializing: [],
    preflight: [],
    starting: [],
    running: ['serving', 'idle', 'settled', 'replaceable'],
    backing_up: ['serving', 'busy'],
    exporting: ['serving', 'busy'],
    importing: ['serving', 'busy'],
    stopping: [],
    crashed: [],
    deciding: [],
    backoff: ['settled'],
    held: ['settled', 'replaceable'],
    failed: ['settled', 'replaceable'],
    restoring: ['busy'],
    dropping: [],
    dropped: ['settled'],
  };
  const ALL_TAGS: NodeTag[] = ['serving', 'idle', 'settled', 'replaceable', 'busy'];
  const context = createActor(nodeMachine, { input: { nodeId: 'n', policy, wanted: 'stopped' } }).getSnapshot().context;
  const leaves = machineGraph(nodeMachine, stateName).states.filter((s) => s.wire !== null);
  const snapshotIn = (path: string[]) =>
    nodeMachine.resolveState({ value: path.reduceRight<unknown>((inner, key) => (inner === undefined ? key : { [key]: inner }), undefined) as never, context });

  it('every state has its answers written down', () => {
    assert.deepEqual(leaves.map((s) => s.wire).sort(), Object.keys(TAGS).sort());
  });

  for (const [wire, tags] of Object.entries(TAGS)) {
    it(`${wire}: ${tags.length ? tags.join(', ') : 'no tag'}`, () => {
      const leaf = leaves.find((s) => s.wire === wire);
      assert.ok(leaf, `no state ${wire} in the chart`);
      const snap = snapshotIn(leaf.path);
      assert.deepEqual(ALL_TAGS.filter((t) => snap.hasTag(t)), ALL_TAGS.filter((t) => tags.includes(t)));
    });
  }

  it('the answers agree: no state is settled and busy, replaceable is settled, idle is serving', () => {
    for (const wire of Object.keys(TAGS)) {
      const t = new Set(TAGS[wire]);
      assert.ok(!(t.has('settled') && t.has('busy')), wire);
      assert.ok(!t.has('replaceable') || t.has('settled'), `${wire} is replaceable but not settled`);
      assert.ok(!t.has('idle') || t.has('serving'), `${wire} is idle but not serving`);
    }
  });

  it('takes work only while idle, and a restore from a crash loop only after a STOP', () => {
    for (const leaf of leaves) {
      const snap = snapshotIn(leaf.path);
      const work = snap.can({ type: 'WORK_STARTED', work: 'backing_up', jobId: 'j' });
      assert.equal(work, snap.hasTag('idle'), `${leaf.wire}: WORK_STARTED`);
      const stopFirst = snap.can({ type: 'STOP' }) && !snap.can({ type: 'RESTORE_STARTED', jobId: 'j' });
      assert.equal(stopFirst, ['initializing', 'preflight', 'starting', 'crashed', 'backoff', 'held'].includes(leaf.wire!), `${leaf.wire}: stop before a restore`);
    }
  });

  it('keeps one job claim at a time and lets only that job release it', async () => {
    const h = harness({ wanted: 'stopped' });
    await h.settle();
    const claim = { jobId: 'bk', jobType: 'coldbackup', doing: 'backing up' };
    h.actor.send({ type: 'CLAIM', claim });
    h.actor.send({ type: 'CLAIM', claim: { jobId: 'other', jobType: 'coldrestore', doing: 'restoring' } });
    assert.deepEqual(holderOf(h.actor.getSnapshot()), claim);
    h.actor.send({ type: 'RELEASE', jobId: 'other' });
    assert.deepEqual(holderOf(h.actor.getSnapshot()), claim);
    // The claim lives through the node's own changes (a start, a crash) until its job releases it.
    h.actor.send({ type: 'START' });
    await h.settle();
    assert.equal(h.state(), 'running');
    assert.deepEqual(holderOf(h.actor.getSnapshot()), claim);
    h.actor.send({ type: 'RELEASE', jobId: 'bk' });
    assert.equal(holderOf(h.actor.getSnapshot()), null);
  });
});

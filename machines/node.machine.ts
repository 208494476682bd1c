// The statechart of one supervised process: the only truth about it. Pure: every effect is a
// named actor or action implemented in src/supervisor and supplied with `.provide()`.
import { assign, cancel, raise, sendTo, setup, fromCallback, fromPromise, type AnyEventObject } from 'xstate';

export interface RestartPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  jitter: number;
  stableAfterMs: number;
  maxRestarts: number;
  windowMs: number;
}

export interface NodePolicy {
  restart: RestartPolicy;
  probe: { failureThreshold: number; startTimeoutMs: number };
}

export type Wanted = 'running' | 'stopped';

/** Work a job does on a running node, shown as the node's state. */
export type NodeWork = 'backing_up' | 'exporting' | 'importing';

/**
 * The questions the rest of node-mgr asks about a node, answered by the chart with
 * `snapshot.hasTag(tag)`. State names are for the wire (get_node, get_status, the inspector) only:
 * code that needs to know what a node can do asks a tag (or `snapshot.can(event)`), so a new or
 * renamed state changes answers only where its tags say so. A new state takes every tag whose
 * question it answers yes to (test/unit/node.machine.test.ts lists them per state).
 */
export type NodeTag =
  /** The server answers SQL: the health probe runs, and a node with no failed probe is ready. */
  | 'serving'
  /** Serving with no job at work on it: a job may begin work, a local reader may connect. */
  | 'idle'
  /** Nothing is under way: an operator command (and node-mgr's start) waits for one of these. */
  | 'settled'
  /** Settled and no restart pending: a reloaded config entry may replace the node's actor. */
  | 'replaceable'
  /** A job works on the node: stop, restart, drop, a restore or other work are refused (409). */
  | 'busy';

/**
 * A job accepted to work on the node (queued or running) that holds it: other requests naming the
 * node are refused rather than queued behind it (PROTOCOL §1/§4). `doing` is said to the caller.
 */
export interface NodeClaim {
  jobId: string;
  jobType: string;
  doing: string;
}

export interface LastExit {
  code: number | null;
  signal: string | null;
  at: number;
  cause: string;
  detail: string;
  logTail: string[];
}

export interface NodeContext {
  nodeId: string;
  policy: NodePolicy;
  wanted: Wanted;
  pid: number | null;
  /** True when the process is not our child (found running at node-mgr start). */
  adopted: boolean;
  /** Automatic restarts since the node was registered (persisted by the supervisor). */
  restarts: number;
  /** Crash times (ms) inside the restart window: more than maxRestarts → failed. */
  crashTimes: number[];
  /** Consecutive restarts since the last stable run: the backoff exponent. */
  attempt: number;
  /**
   * The current run has lasted stableAfterMs (for an adopted server: it had been up that long
   * when found). Its crash is restarted at once; only crashes after that wait a backoff.
   */
  stable: boolean;
  backoffMs: number | null;
  /** Epoch ms when the current backoff ends (for "delay remaining" displays). */
  backoffUntil: number | null;
  lastExit: LastExit | null;
  /** The last thing that went wrong, as one sentence (preflight refusal, init failure, …). */
  lastError: string | null;
  /** Why we asked the process to go away, so its exit is not taken for a crash. */
  intent: 'stop' | 'restart' | 'drop' | 'restore' | null;
  /** The job working on the node (backup, table export/import, restore), if any. */
  work: { kind: NodeWork | 'restoring'; jobId: string } | null;
  /** The job that holds the node from its acceptance to its end (see NodeClaim), if any. */
  claim: NodeClaim | null;
  /** Set when node-mgr itself killed the process (hung, start timeout): the crash cause. */
  killReason: 'health_probe_failed' | 'start_timeout' | null;
  probeFailures: number;
  /** auto_pullup pause: no automatic restarts while true. */
  paused: boolean;
  /** True while a start was triggered by the backoff timer rather than an operator. */
  autoRestart: boolean;
}

export interface NodeInput {
  nodeId: string;
  policy: NodePolicy;
  wanted: Wanted;
  restarts?: number;
}

export type NodeEvent =
  | { type: 'START' }
  | { type: 'STOP' }
  | { type: 'RESTART' }
  | { type: 'CREATE' }
  | { type: 'DROP' }
  | { type: 'RESET' }
  | { type: 'PAUSE'; minutes: number }
  | { type: 'RESUME' }
  /** A reloaded config changed the node's effective policy: it applies from the next decision on. */
  | { type: 'SET_POLICY'; policy: NodePolicy }
  | { type: 'PROCESS_STARTED'; pid: number }
  | { type: 'PROCESS_READY' }
  | { type: 'PROCESS_EXITED'; code: number | null; signal: string | null; at: number }
  | { type: 'WORK_STARTED'; work: NodeWork; jobId: string }
  | { type: 'WORK_FINISHED'; jobId: string }
  | { type: 'RESTORE_STARTED'; jobId: string }
  | { type: 'RESTORE_FINISHED'; jobId: string }
  /** A job that holds its node was accepted (queued); RELEASE when it has finished. */
  | { type: 'CLAIM'; claim: NodeClaim }
  | { type: 'RELEASE'; jobId: string }
  | { type: 'PROBE_OK' }
  /** The server closed the health monitoring session: the process may have died. */
  | { type: 'MONITOR_SESSION_LOST' }
  | { type: 'PROBE_FAILED'; error: string };

/** Commands the machine sends to its process handle. */
export type ProcessCommand =
  | { type: 'STOP' }
  | { type: 'KILL' }
  /** Look at the process now rather than at the next poll (only an adopted process is polled). */
  | { type: 'CHECK_EXIT' };

/** What adoption found: the server's pid, and how long it had been running (null if unknown). */
export interface AdoptResult {
  pid: number | null;
  upForMs?: number | null;
}

export interface ProcessHandleInput {
  nodeId: string;
  /** Adopt this pid instead of spawning. */
  adoptPid: number | null;
}

export interface Diagnosis {
  cause: string;
  detail: string;
  logTail: string[];
}

/**
 * Exponential backoff with jitter: attempt 0 waits about initialDelayMs, each further attempt
 * doubles, never beyond maxDelayMs. `random` is in [0, 1).
 */
export function backoffDelay(policy: RestartPolicy, attempt: number, random: number): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** attempt);
  const jittered = base * (1 + policy.jitter * (2 * random - 1));
  return Math.max(0, Math.min(policy.maxDelayMs, Math.round(jittered)));
}

const PAUSE_TIMER = 'auto-pullup-pause';

export const nodeMachine = setup({
  types: {
    context: {} as NodeContext,
    events: {} as NodeEvent,
    input: {} as NodeInput,
    tags: {} as NodeTag,
  },
  actors: {
    /** Looks for a server already running on this node's data dir; resolves its pid or null. */
    adopt: fromPromise<AdoptResult, { nodeId: string }>(async () => ({ pid: null })),
    /** Creates the data dir and server config of a new node. */
    initialize: fromPromise<void, { nodeId: string }>(async () => {}),
    /** Refuses to start when the port or data dir is in use, the disk is full, …; rejects with a sentence. */
    preflight: fromPromise<void, { nodeId: string }>(async () => {}),
    /** Spawns (or adopts) the server; reports PROCESS_STARTED, PROCESS_READY, PROCESS_EXITED; obeys STOP/KILL. */
    process: fromCallback<ProcessCommand, ProcessHandleInput>(() => () => {}),
    /** Periodic health probe of a running server: PROBE_OK / PROBE_FAILED, and MONITOR_SESSION_LOST. */
    probe: fromCallback<AnyEventObject, { nodeId: string }>(() => () => {}),
    /** Reads the error log and classifies the exit. */
    diagnose: fromPromise<Diagnosis, { nodeId: string; code: number | null; signal: string | null; killReason: string | null }>(
      async () => ({ cause: 'unknown', detail: 'no diagnosis', logTail: [] }),
    ),
    /** Moves the node's directories to the trash. */
    drop: fromPromise<void, { nodeId: string }>(async () => {}),
  },
  delays: {
    backoff: ({ context }) => context.backoffMs ?? context.policy.restart.initialDelayMs,
    startTimeout: ({ context }) => context.policy.probe.startTimeoutMs,
    stableRun: ({ context }) => context.policy.restart.stableAfterMs,
  },
  guards: {
    hasPid: (_, params: { pid: number | null }) => params.pid !== null,
    wantsRunning: ({ context }) => context.wanted === 'running',
    wantsStopped: ({ context }) => context.wanted === 'stopped',
    isPaused: ({ context }) => context.paused,
    isAutoRestart: ({ context }) => context.autoRestart,
    workIs: ({ event }, params: { work: NodeWork }) => event.type === 'WORK_STARTED' && event.work === params.work,
    intentIs: ({ context }, params: { intent: NodeContext['intent'] }) => context.intent === params.intent,
    tooManyRestarts: ({ context }) => context.crashTimes.length > context.policy.restart.maxRestarts,
    wasStable: ({ context }) => context.stable,
    pauseIsTimed: ({ event }) => event.type === 'PAUSE' && event.minutes > 0,
    pauseIsIndefinite: ({ event }) => event.type === 'PAUSE' && event.minutes < 0,
    // One holder at a time: the job runner asks holderOf before it claims.
    isUnclaimed: ({ context }) => context.claim === null,
    releasesClaim: ({ context, event }) => event.type === 'RELEASE' && context.claim?.jobId === event.jobId,
    probeThresholdReached: ({ context }) => context.probeFailures + 1 >= context.policy.probe.failureThreshold,
  },
  actions: {
    wantRunning: assign({ wanted: 'running', lastError: null }),
    wantStopped: assign({ wanted: 'stopped' }),
    setIntent: assign((_, params: { intent: NodeContext['intent'] }) => ({ intent: params.intent })),
    clearProcess: assign({ pid: null, adopted: false, intent: null, killReason: null, probeFailures: 0 }),
    recordPid: assign(({ event }) => (event.type === 'PROCESS_STARTED' ? { pid: event.pid } : {})),
    recordAdopted: assign(({ context }, params: AdoptResult) => ({
      pid: params.pid,
      adopted: true,
      stable: (params.upForMs ?? 0) >= context.policy.restart.stableAfterMs,
    })),
    recordError: assign((_, params: { error: unknown }) => ({ lastError: errorSentence(params.error) })),
    recordExit: assign(({ context, event }) => {
      if (event.type !== 'PROCESS_EXITED') return {};
      const windowStart = event.at - context.policy.restart.windowMs;
      return {
        pid: null,
        adopted: false,
        lastExit: { code: event.code, signal: event.signal, at: event.at, cause: 'unknown', detail: '', logTail: [] },
        crashTimes: [...context.crashTimes.filter((t) => t > windowStart), event.at],
      };
    }),
    // A restart that preflight refused counts as one more crash, at the moment the backoff ended.
    recordPreflightFailure: assign(({ context }, params: { error: unknown }) => ({
      lastError: errorSentence(params.error),
      crashTimes: [...context.crashTimes, context.backoffUntil ?? context.lastExit?.at ?? 0],
    })),
    recordDiagnosis: assign(({ context }, params: { diagnosis: Diagnosis }) => ({
      lastExit: context.lastExit ? { ...context.lastExit, ...params.diagnosis } : null,
      lastError: params.diagnosis.detail || context.lastError,
    })),
    planBackoff: assign(({ context }) => {
      const delay = backoffDelay(context.policy.restart, context.attempt, Math.random());
      return {
        backoffMs: delay,
        backoffUntil: (context.lastExit?.at ?? 0) + delay,
        attempt: context.attempt + 1,
        restarts: context.restarts + 1,
      };
    }),
    // The first crash after a stable run: no delay, and the backoff exponent stays at 0.
    planImmediateRestart: assign(({ context }) => ({
      backoffMs: null,
      backoffUntil: null,
      restarts: context.restarts + 1,
      stable: false,
      autoRestart: true,
    })),
    beginRun: assign(({ context }) => ({ stable: context.adopted && context.stable })),
    clearBackoff: assign({ backoffMs: null, backoffUntil: null }),
    recordWork: assign(({ event }) => {
      if (event.type === 'WORK_STARTED') return { work: { kind: event.work, jobId: event.jobId } };
      if (event.type === 'RESTORE_STARTED') return { work: { kind: 'restoring' as const, jobId: event.jobId } };
      return {};
    }),
    clearWork: assign({ work: null }),
    recordClaim: assign(({ event }) => (event.type === 'CLAIM' ? { claim: event.claim } : {})),
    clearClaim: assign({ claim: null }),
    markAutoRestart: assign({ autoRestart: true }),
    markStable: assign({ attempt: 0, crashTimes: [], stable: true }),
    markRunning: assign({ autoRestart: false, probeFailures: 0, lastError: null }),
    countProbeFailure: assign(({ context }) => ({ probeFailures: context.probeFailures + 1 })),
    resetProbeFailures: assign({ probeFailures: 0 }),
    killForReason: assign((_, params: { reason: NonNullable<NodeContext['killReason']> }) => ({ killReason: params.reason })),
    sendKill: sendTo('process', { type: 'KILL' } satisfies ProcessCommand),
    sendStop: sendTo('process', { type: 'STOP' } satisfies ProcessCommand),
    sendCheckExit: sendTo('process', { type: 'CHECK_EXIT' } satisfies ProcessCommand),
    resetRestartWindow: assign({ attempt: 0, crashTimes: [] }),
    pause: assign(({ event }) => {
      if (event.type !== 'PAUSE') return {};
      return { paused: event.minutes !== 0 };
    }),
    cancelPauseTimer: cancel(PAUSE_TIMER),
    schedulePauseEnd: raise({ type: 'RESUME' } as NodeEvent, {
      id: PAUSE_TIMER,
      delay: ({ event }) => (event.type === 'PAUSE' && event.minutes > 0 ? event.minutes * 60_000 : 0),
    }),
    resume: assign({ paused: false }),
    setPolicy: assign({ policy: ({ context, event }) => (event.type === 'SET_POLICY' ? event.policy : context.policy) }),
  },
}).createMachine({
  id: 'node',
  context: ({ input }) => ({
    nodeId: input.nodeId,
    policy: input.policy,
    wanted: input.wanted,
    pid: null,
    adopted: false,
    restarts: input.restarts ?? 0,
    crashTimes: [],
    attempt: 0,
    stable: false,
    backoffMs: null,
    backoffUntil: null,
    lastExit: null,
    lastError: null,
    intent: null,
    killReason: null,
    probeFailures: 0,
    paused: false,
    autoRestart: false,
    work: null,
    claim: null,
  }),
  initial: 'adopting',
  on: {
    PAUSE: [
      { guard: 'pauseIsTimed', actions: ['cancelPauseTimer', 'pause', 'schedulePauseEnd'] },
      { guard: 'pauseIsIndefinite', actions: ['cancelPauseTimer', 'pause'] },
      { actions: ['cancelPauseTimer', 'resume'] },
    ],
    RESUME: { actions: ['cancelPauseTimer', 'resume'] },
    SET_POLICY: { actions: 'setPolicy' },
    CLAIM: { guard: 'isUnclaimed', actions: 'recordClaim' },
    RELEASE: { guard: 'releasesClaim', actions: 'clearClaim' },
  },
  states: {
    adopting: {
      invoke: {
        src: 'adopt',
        input: ({ context }) => ({ nodeId: context.nodeId }),
        onDone: [
          {
            guard: { type: 'hasPid', params: ({ event }) => ({ pid: event.output.pid }) },
            target: 'up.serving',
            actions: { type: 'recordAdopted', params: ({ event }) => event.output },
          },
          { guard: 'wantsRunning', target: 'preflight' },
          { target: 'stopped' },
        ],
        onError: { target: 'stopped', actions: { type: 'recordError', params: ({ event }) => ({ error: event.error }) } },
      },
    },
    stopped: {
      tags: ['settled', 'replaceable'],
      entry: ['clearProcess', 'clearBackoff'],
      on: {
        START: { target: 'preflight', actions: ['wantRunning', 'resetRestartWindow'] },
        RESTART: { target: 'preflight', actions: ['wantRunning', 'resetRestartWindow'] },
        CREATE: { target: 'initializing', actions: 'wantRunning' },
        DROP: { target: 'dropping', actions: 'wantStopped' },
        RESTORE_STARTED: { target: 'restoring', actions: 'recordWork' },
      },
    },
    initializing: {
      invoke: {
        src: 'initialize',
        input: ({ context }) => ({ nodeId: context.nodeId }),
        onDone: [
          { guard: { type: 'intentIs', params: { intent: 'drop' } }, target: 'dropping' },
          { guard: { type: 'intentIs', params: { intent: 'stop' } }, target: 'stopped' },
          { target: 'preflight' },
        ],
        onError: [
          // A half-made data dir is what a DROP asked to remove anyway.
          { guard: { type: 'intentIs', params: { intent: 'drop' } }, target: 'dropping' },
          { target: 'stopped', actions: { type: 'recordError', params: ({ event }) => ({ error: event.error }) } },
        ],
      },
      on: {
        // The data dir is being made (mysql_install_db, initdb): that is not cut short, which could
        // leave a half-made dir behind; the node goes where it was told as soon as it is made.
        STOP: { actions: ['wantStopped', { type: 'setIntent', params: { intent: 'stop' } }] },
        DROP: { actions: ['wantStopped', { type: 'setIntent', params: { intent: 'drop' } }] },
      },
    },
    preflight: {
      invoke: {
        src: 'preflight',
        input: ({ context }) => ({ nodeId: context.nodeId }),
        onDone: { target: 'up' },
        onError: [
          {
            guard: 'isAutoRestart',
            target: 'deciding',
            actions: { type: 'recordPreflightFailure', params: ({ event }) => ({ error: event.error }) },
          },
          { target: 'stopped', actions: { type: 'recordError', params: ({ event }) => ({ error: event.error }) } },
        ],
      },
      on: {
        STOP: { target: 'stopped', actions: 'wantStopped' },
        // No server runs yet: a crash-looping node can be dropped between its attempts.
        DROP: { target: 'dropping', actions: 'wantStopped' },
      },
    },
    up: {
      // An adopted server keeps the stability adoption found; a spawned one earns it by running.
      entry: 'beginRun',
      invoke: {
        id: 'process',
        src: 'process',
        input: ({ context }) => ({ nodeId: context.nodeId, adoptPid: context.adopted ? context.pid : null }),
      },
      on: {
        PROCESS_STARTED: { actions: 'recordPid' },
        PROCESS_EXITED: [
          { guard: { type: 'intentIs', params: { intent: 'stop' } }, target: 'stopped' },
          { guard: { type: 'intentIs', params: { intent: 'restart' } }, target: 'preflight', actions: 'clearProcess' },
          { guard: { type: 'intentIs', params: { intent: 'drop' } }, target: 'dropping' },
          { guard: { type: 'intentIs', params: { intent: 'restore' } }, target: 'restoring', actions: 'clearProcess' },
          { target: 'crashed', actions: 'recordExit' },
        ],
      },
      initial: 'starting',
      states: {
        starting: {
          on: {
            PROCESS_READY: { target: 'serving' },
            RESTART: { target: 'stopping', actions: ['wantRunning', { type: 'setIntent', params: { intent: 'restart' } }] },
            STOP: { target: 'stopping', actions: ['wantStopped', { type: 'setIntent', params: { intent: 'stop' } }] },
            DROP: { target: 'stopping', actions: ['wantStopped', { type: 'setIntent', params: { intent: 'drop' } }] },
          },
          after: {
            startTimeout: { actions: [{ type: 'killForReason', params: { reason: 'start_timeout' } }, 'sendKill'] },
          },
        },
        /** The server answers; what is being done to it, if anything, is the substate. */
        serving: {
          tags: ['serving'],
          entry: ['markRunning', 'clearBackoff'],
          invoke: { src: 'probe', input: ({ context }) => ({ nodeId: context.nodeId }) },
          after: { stableRun: { actions: 'markStable' } },
          on: {
            PROBE_OK: { actions: 'resetProbeFailures' },
            MONITOR_SESSION_LOST: { actions: 'sendCheckExit' },
            PROBE_FAILED: [
              {
                guard: 'probeThresholdReached',
                actions: ['countProbeFailure', { type: 'killForReason', params: { reason: 'health_probe_failed' } }, 'sendKill'],
              },
              { actions: 'countProbeFailure' },
            ],
          },
          initial: 'running',
          states: {
            running: {
              tags: ['idle', 'settled', 'replaceable'],
              entry: 'clearWork',
              on: {
                STOP: { target: '#node.up.stopping', actions: ['wantStopped', { type: 'setIntent', params: { intent: 'stop' } }] },
                RESTART: { target: '#node.up.stopping', actions: ['wantRunning', { type: 'setIntent', params: { intent: 'restart' } }] },
                DROP: { target: '#node.up.stopping', actions: ['wantStopped', { type: 'setIntent', params: { intent: 'drop' } }] },
                RESTORE_STARTED: { target: '#node.up.stopping', actions: ['recordWork', { type: 'setIntent', params: { intent: 'restore' } }] },
                WORK_STARTED: [
                  { guard: { type: 'workIs', params: { work: 'backing_up' } }, target: 'backing_up', actions: 'recordWork' },
                  { guard: { type: 'workIs', params: { work: 'exporting' } }, target: 'exporting', actions: 'recordWork' },
                  { guard: { type: 'workIs', params: { work: 'importing' } }, target: 'importing', actions: 'recordWork' },
                ],
              },
            },
            // While a job works on the node, STOP/RESTART/DROP are not taken (the supervisor answers 409).
            backing_up: { tags: ['busy'], on: { WORK_FINISHED: { target: 'running' } } },
            exporting: { tags: ['busy'], on: { WORK_FINISHED: { target: 'running' } } },
            importing: { tags: ['busy'], on: { WORK_FINISHED: { target: 'running' } } },
          },
        },
        stopping: {
          entry: 'sendStop',
          on: {
            // An operator who changes their mind while a stop is under way gets a restart.
            START: {
              guard: { type: 'intentIs', params: { intent: 'stop' } },
              actions: ['wantRunning', { type: 'setIntent', params: { intent: 'restart' } }],
            },
          },
        },
      },
    },
    crashed: {
      invoke: {
        src: 'diagnose',
        input: ({ context }) => ({
          nodeId: context.nodeId,
          code: context.lastExit?.code ?? null,
          signal: context.lastExit?.signal ?? null,
          killReason: context.killReason,
        }),
        onDone: {
          target: 'deciding',
          actions: { type: 'recordDiagnosis', params: ({ event }) => ({ diagnosis: event.output }) },
        },
        onError: { target: 'deciding' },
      },
      on: {
        STOP: { target: 'stopped', actions: 'wantStopped' },
        DROP: { target: 'dropping', actions: 'wantStopped' },
      },
    },
    /** Transient: picks what follows a crash from the policy, the pause flag and `wanted`. */
    deciding: {
      always: [
        { guard: 'wantsStopped', target: 'stopped' },
        { guard: 'tooManyRestarts', target: 'failed' },
        { guard: 'isPaused', target: 'held' },
        { guard: 'wasStable', target: 'preflight', actions: 'planImmediateRestart' },
        { target: 'backoff' },
      ],
    },
    backoff: {
      // Settled: a command whose start crashed answers with the backoff, rather than waiting through the loop.
      tags: ['settled'],
      entry: 'planBackoff',
      after: {
        backoff: [
          { guard: 'isPaused', target: 'held' },
          { target: 'preflight', actions: 'markAutoRestart' },
        ],
      },
      on: {
        START: { target: 'preflight', actions: 'wantRunning' },
        STOP: { target: 'stopped', actions: 'wantStopped' },
        DROP: { target: 'dropping', actions: 'wantStopped' },
        PAUSE: [
          { guard: 'pauseIsTimed', target: 'held', actions: ['cancelPauseTimer', 'pause', 'schedulePauseEnd'] },
          { guard: 'pauseIsIndefinite', target: 'held', actions: ['cancelPauseTimer', 'pause'] },
          { actions: ['cancelPauseTimer', 'resume'] },
        ],
      },
    },
    /** Crashed while auto_pullup is paused: waits for RESUME or an operator. */
    held: {
      tags: ['settled', 'replaceable'],
      entry: 'clearBackoff',
      on: {
        RESUME: { target: 'preflight', actions: ['cancelPauseTimer', 'resume', 'markAutoRestart'] },
        // auto_pullup 0 resumes: the held node is brought back at once.
        PAUSE: [
          { guard: 'pauseIsTimed', actions: ['cancelPauseTimer', 'pause', 'schedulePauseEnd'] },
          { guard: 'pauseIsIndefinite', actions: ['cancelPauseTimer', 'pause'] },
          { target: 'preflight', actions: ['cancelPauseTimer', 'resume', 'markAutoRestart'] },
        ],
        START: { target: 'preflight', actions: ['wantRunning', 'resetRestartWindow'] },
        STOP: { target: 'stopped', actions: 'wantStopped' },
        DROP: { target: 'dropping', actions: 'wantStopped' },
      },
    },
    failed: {
      tags: ['settled', 'replaceable'],
      on: {
        START: { target: 'preflight', actions: ['wantRunning', 'resetRestartWindow'] },
        RESTART: { target: 'preflight', actions: ['wantRunning', 'resetRestartWindow'] },
        RESET: { target: 'stopped', actions: ['wantStopped', 'resetRestartWindow'] },
        RESTORE_STARTED: { target: 'restoring', actions: ['recordWork', 'resetRestartWindow'] },
        STOP: { target: 'stopped', actions: ['wantStopped', 'resetRestartWindow'] },
        DROP: { target: 'dropping', actions: 'wantStopped' },
      },
    },
    /** The server is down and a restore job replaces its data dir; it reports RESTORE_FINISHED either way. */
    restoring: {
      tags: ['busy'],
      on: {
        RESTORE_FINISHED: { target: 'preflight', actions: ['wantRunning', 'clearWork'] },
      },
    },
    dropping: {
      entry: 'clearProcess',
      invoke: {
        src: 'drop',
        input: ({ context }) => ({ nodeId: context.nodeId }),
        onDone: { target: 'dropped' },
        onError: { target: 'stopped', actions: { type: 'recordError', params: ({ event }) => ({ error: event.error }) } },
      },
    },
    dropped: { type: 'final', tags: ['settled'] },
  },
});

function errorSentence(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** The job that holds the node (queued or running), if any: the one rule for "node held". */
export function holderOf(snapshot: { context: Pick<NodeContext, 'claim'> }): NodeClaim | null {
  return snapshot.context.claim;
}

/** The flat state name used on the wire (`running`, `backoff`, …). */
export function stateName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const [parent, child] = Object.entries(value)[0] ?? [];
    if (parent === 'up' || parent === 'serving') return stateName(child);
    return `${parent}.${stateName(child)}`;
  }
  return String(value);
}

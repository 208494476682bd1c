// The statechart of one long operation (a job). Pure: the work itself is the `work` actor,
// supplied from src/jobs with `.provide()`; the job runner decides when a queued job may START.
//
//   queued ──START──▶ running ──work done──▶ succeeded
//      │                 │ └───work failed──▶ failed
//      └──CANCEL──┐      └──CANCEL──▶ cancelled   (leaving `running` stops `work`: its signal aborts)
//                 ▼
//             cancelled
import { assign, setup, fromPromise } from 'xstate';

export interface JobMachineInput {
  jobId: string;
  jobType: string;
}

/** What the `work` actor is given. Params are not here: they may hold secrets, and context is inspectable. */
export interface JobWorkInput {
  jobId: string;
  jobType: string;
}

export interface JobContext {
  jobId: string;
  jobType: string;
  /** The step the work says it is in (`copying`, `verifying`…); null until it reports one. */
  phase: string | null;
  bytesDone: number | null;
  bytesTotal: number | null;
  /** Counts beside the bytes (files, log events), for jobs that have them. */
  counts: JobCounts | null;
  /** The work's resolved value. */
  result: unknown;
  /** The work's failure, as a sentence. */
  error: string | null;
}

export interface JobCounts {
  filesDone?: number;
  filesTotal?: number;
  events?: number;
  /** How far a replica is behind its primary (a rebuild's catch-up); null where the server does not say. */
  secondsBehind?: number | null;
  transactionsBehind?: number | null;
  bytesBehind?: number | null;
  /** The work's own estimate, for a phase whose bytes are not known (a catch-up measured in transactions). */
  etaS?: number;
}

export type JobEvent =
  | { type: 'START' }
  | { type: 'CANCEL'; reason?: string }
  | { type: 'PROGRESS'; phase: string; bytesDone?: number; bytesTotal?: number; counts?: JobCounts };

export type JobProgressEvent = Extract<JobEvent, { type: 'PROGRESS' }>;

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return typeof error === 'string' ? error : JSON.stringify(error) ?? String(error);
}

export const jobMachine = setup({
  types: {
    context: {} as JobContext,
    events: {} as JobEvent,
    input: {} as JobMachineInput,
  },
  actors: {
    // Replaced with `.provide({ actors: { work } })`; reports progress by sending PROGRESS to its parent.
    work: fromPromise<unknown, JobWorkInput>(async ({ input }) => {
      throw new Error(`no work is provided for job ${input.jobId} (${input.jobType})`);
    }),
  },
  actions: {
    recordProgress: assign(({ context, event }) => {
      if (event.type !== 'PROGRESS') return {};
      const phaseChanged = event.phase !== context.phase;
      return {
        phase: event.phase,
        // A new phase starts its own byte count unless the event carries one.
        bytesDone: event.bytesDone ?? (phaseChanged ? null : context.bytesDone),
        bytesTotal: event.bytesTotal ?? (phaseChanged ? null : context.bytesTotal),
        counts: event.counts ?? (phaseChanged ? null : context.counts),
      };
    }),
    recordCancel: assign(({ event }) => ({
      error: event.type === 'CANCEL' ? (event.reason ?? 'cancelled') : 'cancelled',
    })),
  },
}).createMachine({
  id: 'job',
  context: ({ input }) => ({
    jobId: input.jobId,
    jobType: input.jobType,
    phase: null,
    bytesDone: null,
    bytesTotal: null,
    counts: null,
    result: null,
    error: null,
  }),
  initial: 'queued',
  states: {
    queued: {
      on: {
        START: 'running',
        CANCEL: { target: 'cancelled', actions: 'recordCancel' },
      },
    },
    running: {
      invoke: {
        id: 'work',
        src: 'work',
        input: ({ context }) => ({ jobId: context.jobId, jobType: context.jobType }),
        onDone: {
          target: 'succeeded',
          actions: assign({ result: ({ event }) => event.output }),
        },
        onError: {
          target: 'failed',
          actions: assign({ error: ({ event }) => errorText(event.error) }),
        },
      },
      on: {
        PROGRESS: { actions: 'recordProgress' },
        CANCEL: { target: 'cancelled', actions: 'recordCancel' },
      },
    },
    succeeded: { type: 'final' },
    failed: { type: 'final' },
    cancelled: { type: 'final' },
  },
});

export type JobMachine = typeof jobMachine;
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

// What a job is to its handler and to whoever submits one: the handler's context, the submission,
// the per-type options the runner schedules by, and the texts a job ends with when it did not run out.
import type { Logger } from 'pino';
import type { JobRecord, StateStore } from '../state/store.ts';

export const INTERRUPTED_INFO = 'interrupted by node-mgr restart';
export const CANCELLED_INFO = 'cancelled by request';

export interface JobProgressReport {
  phase: string;
  bytesDone?: number;
  bytesTotal?: number;
  /** Files and log events, for jobs that count them (point-in-time restore). */
  filesDone?: number;
  filesTotal?: number;
  events?: number;
  /** A replica's lag behind its primary (a rebuild's catch-up): Seconds_Behind_Master, GTID distance, binlog bytes. */
  secondsBehind?: number | null;
  transactionsBehind?: number | null;
  bytesBehind?: number | null;
  /** The handler's own ETA, used where the runner has no byte rate to make one from. */
  etaS?: number;
}

/**
 * What a handler gets. `params` are unredacted and live only in memory: never log them. They were
 * parsed at the edge with the job kind's schema (the one beside its handler), so their type is that
 * schema's; `plan` is what the submitter resolved them to before the job existed, if anything.
 */
export interface JobContext<Params = unknown, Plan = unknown> {
  id: string;
  type: string;
  params: Params;
  plan?: Plan;
  nodeId?: string;
  /** Aborted when the job is cancelled: stop, clean up (unlock tables, remove temp files), then throw or return. */
  signal: AbortSignal;
  progress(p: JobProgressReport): void;
  log: Logger;
}

export type JobHandler<Params = unknown, Plan = unknown> = (ctx: JobContext<Params, Plan>) => Promise<unknown>;

export interface JobTypeOptions {
  /** Job types that may run on the same node at the same time as this one (both must list each other). */
  compatibleWith?: string[];
  /**
   * While a job of this type is queued or running, it holds its node: another job naming that node
   * is refused with a 409 (NodeHeldError) instead of waiting behind it, and so are the direct node
   * commands that ask refuseIfHeld. The words say what the node is doing, e.g. "backing up".
   * The hold is kept by the node's chart (JobRunnerOptions.nodeHolds), not by the runner.
   */
  holdsNode?: string;
  /** Jobs of this type may still wait behind a job that holds their node (they only read the backup store). */
  waitsForHolder?: boolean;
}

export interface JobSubmission {
  /** The caller's job id (idempotency key); generated when absent. */
  id?: string;
  type: string;
  params: unknown;
  /**
   * What the submitter already resolved the params to (a `*_cmd`'s plan: which node, which event), so
   * the handler acts on what was checked instead of planning again. In memory only, never hashed or
   * stored: a job does not outlive its node-mgr (the next one reports it interrupted).
   */
  plan?: unknown;
  nodeId?: string;
  /** Overrides the type's registered `compatibleWith` for this job. */
  compatibleWith?: string[];
}

export interface JobRetention {
  /** Finished jobs older than this (since they finished) are deleted. */
  maxAgeMs: number;
  /** At most this many finished jobs are kept. */
  maxCount: number;
  /** How often the runner prunes; default 10 minutes. */
  intervalMs?: number;
}

/** Where a node's hold by a job is kept: the node's chart, through the supervisor. */
export interface NodeHolds {
  holder(nodeId: string): { jobId: string; jobType: string; doing: string } | null;
  claim(nodeId: string, claim: { jobId: string; jobType: string; doing: string }): void;
  release(nodeId: string, jobId: string): void;
}

export interface JobRunnerOptions {
  store: StateStore;
  /** Needed by job types that hold their node (JobTypeOptions.holdsNode). */
  nodeHolds?: NodeHolds;
  log: Logger;
  /** Jobs running at once, all nodes together; default 4. */
  maxConcurrent?: number;
  /** Minimum interval between two progress writes of one job; default 250 ms (≤ 4 writes/s). */
  progressWriteIntervalMs?: number;
  /** Default: 7 days, 1000 jobs, every 10 minutes. `false` disables the timer (prune() still works). */
  retention?: JobRetention | false;
}

export type JobUpdateListener = (job: JobRecord) => void;

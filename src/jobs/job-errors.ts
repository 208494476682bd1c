// The refusals of the job runner, each of its kind (error-kind.ts).
import type { JobRecord, JobStatus } from '../state/store.ts';
import type { KindedError } from '../error-kind.ts';

/** Same job id, different body: PROTOCOL §3 says 409. */
export class JobConflictError extends Error implements KindedError {
  readonly kind = 'conflict';
  constructor(readonly jobId: string, readonly existing: JobRecord) {
    super(`job ${jobId} already exists with different parameters (a ${existing.type} job created ${new Date(existing.createdAt).toISOString()}); use a new job_id`);
    this.name = 'JobConflictError';
  }
}

/**
 * PROTOCOL §1/§4: a restore, stop or second backup of a node that is backing up (or restoring) is
 * refused, naming the job that holds the node, rather than queued to run after it.
 */
export class NodeHeldError extends Error implements KindedError {
  readonly kind = 'conflict';
  constructor(
    readonly nodeId: string,
    readonly holder: { id: string; type: string; doing: string; status: JobStatus },
    what: string,
  ) {
    const queued = holder.status === 'queued' ? ' (queued)' : '';
    super(`node ${nodeId} is ${holder.doing} for ${holder.type} job ${holder.id}${queued}; the ${what} was refused, not queued: retry when that job is done`);
    this.name = 'NodeHeldError';
  }
}

export class JobSubmissionError extends Error implements KindedError {
  readonly kind = 'invalid';
  constructor(message: string) {
    super(message);
    this.name = 'JobSubmissionError';
  }
}

/** The runner is draining for shutdown and accepts no new job. */
export class JobRunnerClosedError extends Error implements KindedError {
  readonly kind = 'unavailable';
  constructor() {
    super('node-mgr is shutting down and accepts no new job');
    this.name = 'JobRunnerClosedError';
  }
}

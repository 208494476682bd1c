// The refusals of the job runner. Each carries the HTTP status the edge should answer with.
import type { JobRecord, JobStatus } from '../state/store.ts';

/** Same job id, different body: PROTOCOL §3 says 409. */
export class JobConflictError extends Error {
  readonly statusCode = 409;
  constructor(readonly jobId: string, readonly existing: JobRecord) {
    super(`job ${jobId} already exists with different parameters (a ${existing.type} job created ${new Date(existing.createdAt).toISOString()}); use a new job_id`);
    this.name = 'JobConflictError';
  }
}

/**
 * PROTOCOL §1/§4: a restore, stop or second backup of a node that is backing up (or restoring) is
 * refused, naming the job that holds the node, rather than queued to run after it.
 */
export class NodeHeldError extends Error {
  readonly statusCode = 409;
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

export class JobSubmissionError extends Error {
  readonly statusCode = 400;
  constructor(message: string) {
    super(message);
    this.name = 'JobSubmissionError';
  }
}

/** The runner is draining for shutdown and accepts no new job. */
export class JobRunnerClosedError extends Error {
  readonly statusCode = 503;
  constructor() {
    super('node-mgr is shutting down and accepts no new job');
    this.name = 'JobRunnerClosedError';
  }
}

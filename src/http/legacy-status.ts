// The seed's `get_status` reply (PROTOCOL §2): how a job record looks on the legacy wire, for
// `POST /` with job_type get_status and for `GET /<job_id>`.
import type { JobProgress, JobRecord } from '../state/store.ts';
import { INTERRUPTED_INFO } from '../jobs/job.ts';
import type { JobRunner } from '../jobs/runner.ts';

/** PROTOCOL §2 `get_status` reply. */
export interface LegacyJobStatus {
  job_id: string;
  job_type?: string;
  /** `queued`, the phase while running, `succeed`, or the error text. */
  job_status: string;
  result: 'busy' | 'succeed' | 'error';
  info: string;
  progress?: JobProgress | null;
  /** ISO times. */
  created?: string;
  updated?: string;
  /** The job's result value (redacted), when it has one: e.g. the backup file's path. */
  output?: unknown;
}

export function noSuchJobStatus(jobId: string): LegacyJobStatus {
  return { job_id: jobId, job_status: 'none', result: 'error', info: 'no such job' };
}

/** The PROTOCOL §2 `get_status` reply for a job record. */
export function toLegacyStatus(job: JobRecord): LegacyJobStatus {
  const base = {
    job_id: job.id,
    job_type: job.type,
    progress: job.progress,
    created: new Date(job.createdAt).toISOString(),
    updated: new Date(job.updatedAt).toISOString(),
  };
  switch (job.status) {
    case 'queued':
      return { ...base, job_status: 'queued', result: 'busy', info: job.info ?? 'waiting for a free worker or for the node to be free' };
    case 'running':
      return { ...base, job_status: job.phase ?? 'working', result: 'busy', info: job.info ?? 'running' };
    case 'succeeded':
      return {
        ...base,
        job_status: 'succeed',
        result: 'succeed',
        info: job.info ?? 'done',
        ...(job.result !== null && job.result !== undefined ? { output: job.result } : {}),
      };
    case 'interrupted':
      // The info may say more than the status: what was cleaned up after the job.
      return { ...base, job_status: INTERRUPTED_INFO, result: 'error', info: job.info ?? INTERRUPTED_INFO, ...(job.result != null ? { output: job.result } : {}) };
    case 'failed':
    case 'cancelled': {
      const text = job.info ?? job.status;
      return { ...base, job_status: text, result: 'error', info: text };
    }
  }
}

/** The `get_status` reply for a job id, known or not. */
export function legacyJobStatus(jobs: Pick<JobRunner, 'get'>, jobId: string): LegacyJobStatus {
  const job = jobs.get(jobId);
  return job ? toLegacyStatus(job) : noSuchJobStatus(jobId);
}

// The seed's `get_status` reply (PROTOCOL §2): how a job record looks on the legacy wire, for
// `POST /` with job_type get_status and for `GET /<job_id>`.
import type { JobProgress, JobRecord } from '../state/store.ts';
import { INTERRUPTED_INFO } from '../jobs/job.ts';
import type { JobRunner } from '../jobs/runner.ts';
import { cutText, jsonBytes, SEED_BODY_MAX, summarize } from './seed-read.ts';

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
  /** Where the whole record is, when this reply carries a summary of it (`/v1/jobs/<id>`). */
  detail?: string;
}

export function noSuchJobStatus(jobId: string): LegacyJobStatus {
  return { job_id: jobId, job_status: 'none', result: 'error', info: 'no such job' };
}

/**
 * The PROTOCOL §2 `get_status` reply for a job record, fitted to the original clients' single read
 * (PROTOCOL §1): whole when it fits, else with the output summarized (lists become their lengths)
 * and the texts cut, and `detail` naming `GET /v1/jobs/<id>`, which has the whole record.
 */
export function toLegacyStatus(job: JobRecord): LegacyJobStatus {
  const whole = wholeLegacyStatus(job);
  if (jsonBytes(whole) <= SEED_BODY_MAX) return whole;
  const detail = `/v1/jobs/${job.id}`;
  const fitted: LegacyJobStatus = { ...whole, detail };
  if ('output' in whole) fitted.output = summarize(whole.output, detail);
  // An error text can list what the job found (every table whose checksum differs): job_status
  // and info carry it twice, so each gets a share of what is left.
  const over = jsonBytes(fitted) - SEED_BODY_MAX;
  if (over > 0) {
    const texts = fitted.job_status.length + fitted.info.length;
    const keep = Math.max(0, texts - over);
    const share = (s: string) => Math.max(80, Math.floor((keep * s.length) / texts));
    fitted.job_status = cutText(fitted.job_status, share(fitted.job_status), detail);
    fitted.info = cutText(fitted.info, share(fitted.info), detail);
  }
  if (jsonBytes(fitted) > SEED_BODY_MAX) delete fitted.output;
  // Texts of many escaped or multi-byte characters: short enough whatever they hold.
  if (jsonBytes(fitted) > SEED_BODY_MAX) {
    fitted.job_status = cutText(fitted.job_status, 200, detail);
    fitted.info = cutText(fitted.info, 200, detail);
  }
  return fitted;
}

function wholeLegacyStatus(job: JobRecord): LegacyJobStatus {
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

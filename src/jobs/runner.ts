// Runs every long operation of node-mgr as a job: an actor of machines/job.machine.ts whose `work`
// is the registered handler, persisted in the state store so that `get_status` survives a restart.
// A bounded pool runs them; jobs on the same node run one at a time unless both declare each other
// compatible, and wait in FIFO order otherwise.
import { randomBytes } from 'node:crypto';
import { createActor, fromPromise, type Actor, type SnapshotFrom } from 'xstate';
import type { Logger } from 'pino';
import { jobMachine, type JobCounts, type JobState, type JobWorkInput } from '../../machines/job.machine.ts';
import {
  StateStoreError,
  paramsHash,
  redactSecrets,
  type JobListQuery,
  type JobProgress,
  type JobRecord,
  type JobStatus,
  type JobUpdate,
  type StateStore,
} from '../state/store.ts';
import {
  CANCELLED_INFO,
  INTERRUPTED_INFO,
  type JobContext,
  type JobHandler,
  type JobRetention,
  type JobRunnerOptions,
  type JobSubmission,
  type JobTypeOptions,
  type JobUpdateListener,
  type NodeHolds,
} from './job.ts';
import { JobConflictError, JobRunnerClosedError, JobSubmissionError, NodeHeldError } from './job-errors.ts';
import { scrubText, scrubValue, secretValues } from './secret-scrub.ts';

function isFinished(status: JobStatus): boolean {
  return status !== 'queued' && status !== 'running';
}

interface LiveJob {
  id: string;
  type: string;
  nodeId: string | null;
  compatibleWith: ReadonlySet<string>;
  params: unknown;
  plan: unknown;
  secrets: string[];
  log: Logger;
  actor: Actor<typeof jobMachine>;
  /** What get()/list()/listeners see: always at least as fresh as the stored row. */
  record: JobRecord;
  state: JobState;
  /** STARTed and not yet released: it counts against the pool and the node. */
  holdsSlot: boolean;
  /** The handler's promise has not settled (a cancelled handler may still be cleaning up). */
  handlerActive: boolean;
  phaseStartedAt: number;
  phaseStartBytes: number | null;
  lastProgressWriteAt: number;
  /** The in-memory progress is newer than the stored one. */
  progressDirty: boolean;
  progressTimer: NodeJS.Timeout | null;
  progressLogged: boolean;
  released: Promise<void>;
  release: () => void;
}

const DEFAULT_RETENTION: Required<JobRetention> = {
  maxAgeMs: 7 * 24 * 3600_000,
  maxCount: 1000,
  intervalMs: 10 * 60_000,
};

export class JobRunner {
  /** Ids of the jobs a previous node-mgr left queued or running, now `interrupted`. */
  readonly interruptedAtStart: readonly string[];

  private readonly store: StateStore;
  private readonly log: Logger;
  private readonly nodeHolds: NodeHolds | undefined;
  private readonly maxConcurrent: number;
  private readonly progressWriteIntervalMs: number;
  private readonly handlers = new Map<string, { handler: JobHandler; compatibleWith: ReadonlySet<string>; options: JobTypeOptions }>();
  private readonly live = new Map<string, LiveJob>();
  /** Ids of queued jobs, oldest first. */
  private readonly queue: string[] = [];
  private readonly listeners = new Set<JobUpdateListener>();
  private readonly pruneTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private pumping = false;
  private pumpAgain = false;

  constructor(opts: JobRunnerOptions) {
    this.store = opts.store;
    this.log = opts.log;
    this.nodeHolds = opts.nodeHolds;
    this.maxConcurrent = Math.max(1, opts.maxConcurrent ?? 4);
    this.progressWriteIntervalMs = opts.progressWriteIntervalMs ?? 250;

    // Nothing of a previous process runs any more: its unfinished jobs are over (PROTOCOL §2).
    this.interruptedAtStart = this.store.interruptUnfinishedJobs(INTERRUPTED_INFO);
    if (this.interruptedAtStart.length > 0) {
      this.log.warn({ jobs: this.interruptedAtStart }, `${this.interruptedAtStart.length} job(s) were ${INTERRUPTED_INFO}`);
    }

    if (opts.retention !== false) {
      const retention = { ...DEFAULT_RETENTION, ...opts.retention };
      this.pruneTimer = setInterval(() => {
        try {
          this.prune(retention);
        } catch (err) {
          this.log.error({ err }, 'pruning finished jobs failed');
        }
      }, retention.intervalMs);
      this.pruneTimer.unref();
    }
  }

  /**
   * `Params` and `Plan` are the types the submitters of this job type promise (the edge parsed the
   * params with the type's schema); the runner passes both through untouched.
   */
  register<Params = unknown, Plan = unknown>(type: string, handler: JobHandler<Params, Plan>, options: JobTypeOptions = {}): void {
    if (this.handlers.has(type)) throw new Error(`job type ${type} is already registered`);
    if (options.holdsNode && !this.nodeHolds) throw new Error(`job type ${type} holds its node: the runner needs nodeHolds`);
    this.handlers.set(type, { handler: handler as JobHandler, compatibleWith: new Set(options.compatibleWith ?? []), options });
  }

  /** The queued or running job that holds the node (see JobTypeOptions.holdsNode), if any, as its chart says. */
  holderOf(nodeId: string): { id: string; type: string; doing: string; status: JobStatus } | null {
    const claim = this.nodeHolds?.holder(nodeId);
    if (!claim) return null;
    const status = this.live.get(claim.jobId)?.record.status ?? 'running';
    return { id: claim.jobId, type: claim.jobType, doing: claim.doing, status };
  }

  /**
   * Throws NodeHeldError (409) while a job holds the node. `what` names the refused request in
   * the message ("coldrestore", "stop"). The one rule for seed jobs, REST jobs and direct node commands.
   */
  refuseIfHeld(nodeId: string, what: string): void {
    const holder = this.holderOf(nodeId);
    if (holder) throw new NodeHeldError(nodeId, holder, what);
  }

  /** Whether a handler is registered for `type` (the edge answers 501 for valid but unimplemented types). */
  hasHandler(type: string): boolean {
    return this.handlers.has(type);
  }

  /**
   * Records and queues a job, or returns the existing one for a repeated id with the same body.
   * The record is in the state file before this returns.
   */
  submit(submission: JobSubmission): { job: JobRecord; created: boolean } {
    const registered = this.handlers.get(submission.type);
    if (!registered) throw new JobSubmissionError(`unknown job type ${JSON.stringify(submission.type)}`);
    if (submission.id !== undefined && !/^[^\s\x00-\x1f\x7f/]{1,128}$/.test(submission.id)) {
      throw new JobSubmissionError(`job_id must be 1 to 128 characters without spaces, slashes or control characters`);
    }
    const hash = paramsHash({ type: submission.type, nodeId: submission.nodeId ?? null, params: submission.params ?? null });
    if (submission.id !== undefined) {
      const existing = this.get(submission.id);
      if (existing) {
        if (existing.paramsHash !== hash) throw new JobConflictError(submission.id, existing);
        return { job: existing, created: false };
      }
    }
    if (this.closing) throw new JobRunnerClosedError();
    if (submission.nodeId !== undefined && !registered.options.waitsForHolder) this.refuseIfHeld(submission.nodeId, submission.type);

    const id = submission.id ?? `job_${Date.now()}_${randomBytes(4).toString('hex')}`;
    const record = this.store.insertJob({
      id,
      type: submission.type,
      nodeId: submission.nodeId ?? null,
      params: submission.params,
      paramsHash: hash,
    });
    const job = this.createLiveJob(record, submission, registered.handler, registered.compatibleWith);
    this.live.set(id, job);
    const doing = registered.options.holdsNode;
    if (doing && job.nodeId) this.nodeHolds!.claim(job.nodeId, { jobId: id, jobType: job.type, doing });
    this.queue.push(id);
    job.log.info('job queued');
    this.notify(job.record);
    job.actor.start();
    this.pump();
    return { job: job.record, created: true };
  }

  get(id: string): JobRecord | undefined {
    return this.live.get(id)?.record ?? this.store.getJob(id);
  }

  /** Newest first. */
  list(query: JobListQuery = {}): JobRecord[] {
    return this.store.listJobs(query).map((row) => this.live.get(row.id)?.record ?? row);
  }

  /**
   * Cancels a queued or running job (a running handler sees its signal abort). Returns the job as
   * it is afterwards (unchanged if it had already finished), or undefined for an unknown id.
   */
  cancel(id: string, reason = CANCELLED_INFO): JobRecord | undefined {
    const job = this.live.get(id);
    if (!job || isFinished(job.record.status)) return this.get(id);
    job.actor.send({ type: 'CANCEL', reason });
    return job.record;
  }

  /** Called after each persisted change of any job; returns the unsubscribe function. */
  onUpdate(listener: JobUpdateListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Deletes finished jobs past the retention; queued and running jobs are never deleted. */
  prune(retention: { maxAgeMs: number; maxCount: number }): number {
    const deleted = this.store.pruneJobs({ finishedBefore: Date.now() - retention.maxAgeMs, keep: retention.maxCount });
    if (deleted > 0) this.log.info({ deleted }, 'pruned finished jobs');
    return deleted;
  }

  /** How many jobs run and wait now. */
  counts(): { running: number; queued: number } {
    let running = 0;
    for (const job of this.live.values()) if (job.holdsSlot) running++;
    return { running, queued: this.queue.length };
  }

  /**
   * Shutdown: accepts no new job, starts no queued one, and waits up to `timeoutMs` for the running
   * handlers. Jobs still queued or running stay so in the state file; the next node-mgr reports
   * them interrupted.
   */
  async drain(timeoutMs: number): Promise<{ drained: boolean; running: string[] }> {
    this.closing = true;
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    const active = [...this.live.values()].filter((job) => job.holdsSlot);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const outcome = await Promise.race([Promise.all(active.map((job) => job.released)).then(() => 'drained' as const), timedOut]);
    clearTimeout(timer);
    const running = [...this.live.values()].filter((job) => job.holdsSlot);
    // Whatever progress is pending reaches the file before node-mgr exits.
    for (const job of this.live.values()) this.flushProgress(job);
    return { drained: outcome === 'drained', running: running.map((job) => job.id) };
  }

  // -------------------------------------------------------------------------------------------

  private createLiveJob(
    record: JobRecord,
    submission: JobSubmission,
    handler: JobHandler,
    defaultCompatible: ReadonlySet<string>,
  ): LiveJob {
    const log = this.log.child({ jobId: record.id, jobType: record.type, ...(record.nodeId ? { nodeId: record.nodeId } : {}) });
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const job: LiveJob = {
      id: record.id,
      type: record.type,
      nodeId: record.nodeId,
      compatibleWith: submission.compatibleWith ? new Set(submission.compatibleWith) : defaultCompatible,
      params: submission.params,
      plan: submission.plan,
      secrets: [...secretValues(submission.params)].sort((a, b) => b.length - a.length),
      log,
      record,
      state: 'queued',
      holdsSlot: false,
      handlerActive: false,
      phaseStartedAt: 0,
      phaseStartBytes: null,
      lastProgressWriteAt: 0,
      progressDirty: false,
      progressTimer: null,
      progressLogged: false,
      released,
      release,
      actor: undefined as unknown as Actor<typeof jobMachine>, // set just below; the work needs `job`
    };

    const work = fromPromise<unknown, JobWorkInput>(async ({ signal, self }) => {
      job.handlerActive = true;
      const parent = self._parent;
      const ctx: JobContext = {
        id: job.id,
        type: job.type,
        params: job.params,
        ...(job.plan !== undefined ? { plan: job.plan } : {}),
        ...(job.nodeId ? { nodeId: job.nodeId } : {}),
        signal,
        log,
        progress: (p) => {
          if (signal.aborted) return;
          const counts: JobCounts = {
            filesDone: p.filesDone,
            filesTotal: p.filesTotal,
            events: p.events,
            secondsBehind: p.secondsBehind,
            transactionsBehind: p.transactionsBehind,
            bytesBehind: p.bytesBehind,
            etaS: p.etaS,
          };
          const hasCounts = Object.values(counts).some((v) => v !== undefined);
          parent?.send({ type: 'PROGRESS', phase: p.phase, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, ...(hasCounts ? { counts } : {}) });
        },
      };
      try {
        return await handler(ctx);
      } finally {
        job.handlerActive = false;
        this.releaseIfDone(job);
      }
    });

    job.actor = createActor(jobMachine.provide({ actors: { work } }), {
      input: { jobId: record.id, jobType: record.type },
    });
    job.actor.subscribe({
      next: (snapshot) => this.onSnapshot(job, snapshot),
      error: (err) => log.error({ err }, 'job actor failed'),
    });
    return job;
  }

  /** Every state change is written at once; byte progress within a phase at most every progressWriteIntervalMs. */
  private onSnapshot(job: LiveJob, snapshot: SnapshotFrom<typeof jobMachine>): void {
    const state = snapshot.value as JobState;
    const ctx = snapshot.context;
    const now = Date.now();

    if (state !== job.state) {
      job.state = state;
      const update: JobUpdate = { status: state };
      if (state === 'running') {
        job.log.info('job started');
      } else if (state === 'succeeded') {
        // Redacted here as the store would, so that memory and file hold the same result.
        update.result = redactSecrets(scrubValue(ctx.result ?? null, job.secrets));
        update.finishedAt = now;
      } else if (state === 'failed' || state === 'cancelled') {
        update.info = scrubText(ctx.error ?? state, job.secrets);
        update.finishedAt = now;
      }
      if (job.progressTimer) clearTimeout(job.progressTimer);
      job.progressTimer = null;
      if (isFinished(update.status!)) {
        update.progress = job.record.progress;
        update.phase = job.record.phase;
      }
      this.write(job, update, now, true);
      if (state === 'succeeded') job.log.info('job succeeded');
      else if (state === 'failed') job.log.warn({ error: update.info }, 'job failed');
      else if (state === 'cancelled') job.log.info({ reason: update.info }, 'job cancelled');
      if (isFinished(update.status!)) this.onFinished(job);
      return;
    }

    if (state !== 'running') return;
    const phase = ctx.phase;
    if (phase === null) return;
    const phaseChanged = phase !== job.record.phase;
    if (phaseChanged) {
      job.phaseStartedAt = now;
      job.phaseStartBytes = ctx.bytesDone;
    }
    const progress = this.progressOf(job, ctx.phase!, ctx.bytesDone, ctx.bytesTotal, now);
    if (ctx.counts?.filesDone !== undefined) progress.files_done = ctx.counts.filesDone;
    if (ctx.counts?.filesTotal !== undefined) progress.files_total = ctx.counts.filesTotal;
    if (ctx.counts?.events !== undefined) progress.events = ctx.counts.events;
    if (ctx.counts?.secondsBehind !== undefined) progress.seconds_behind = ctx.counts.secondsBehind;
    if (ctx.counts?.transactionsBehind !== undefined) progress.trx_behind = ctx.counts.transactionsBehind;
    if (ctx.counts?.bytesBehind !== undefined) progress.bytes_behind = ctx.counts.bytesBehind;
    if (progress.eta_s === undefined && ctx.counts?.etaS !== undefined) progress.eta_s = Math.max(0, Math.round(ctx.counts.etaS));
    if (phaseChanged || now - job.lastProgressWriteAt >= this.progressWriteIntervalMs) {
      if (job.progressTimer) clearTimeout(job.progressTimer);
      job.progressTimer = null;
      this.write(job, { phase, progress }, now, phaseChanged);
    } else {
      // Keep the newest figures in memory; the timer writes whatever is newest when it fires.
      job.record = { ...job.record, progress, updatedAt: now };
      job.progressDirty = true;
      this.notify(job.record);
      job.progressTimer ??= setTimeout(() => {
        job.progressTimer = null;
        this.flushProgress(job);
      }, this.progressWriteIntervalMs - (now - job.lastProgressWriteAt));
      job.progressTimer.unref();
    }
  }

  private progressOf(job: LiveJob, phase: string, done: number | null, total: number | null, now: number): JobProgress {
    const progress: JobProgress = { phase };
    if (done !== null) progress.bytes_done = done;
    if (total !== null) progress.bytes_total = total;
    const elapsedS = (now - job.phaseStartedAt) / 1000;
    const moved = done === null ? 0 : done - (job.phaseStartBytes ?? 0);
    // A rate from less than a second of data is noise.
    const rate = elapsedS >= 1 && moved > 0 ? moved / elapsedS : null;
    if (rate !== null) progress.rate_bps = Math.round(rate);
    if (done !== null && total !== null && total > 0) {
      progress.pct = Math.min(100, Math.round((done / total) * 1000) / 10);
      if (rate !== null) progress.eta_s = Math.max(0, Math.round((total - done) / rate));
    }
    return progress;
  }

  private flushProgress(job: LiveJob): void {
    if (job.progressTimer) clearTimeout(job.progressTimer);
    job.progressTimer = null;
    if (job.record.status !== 'running' || !job.progressDirty) return;
    this.write(job, { phase: job.record.phase, progress: job.record.progress }, Date.now(), false);
  }

  /**
   * Writes first, then updates what get() returns and tells the listeners. A failed write is
   * logged (status changes always, progress once per job) and the job goes on in memory: a full
   * disk must not kill a backup that is nearly done.
   */
  private write(job: LiveJob, update: JobUpdate, now: number, isStateChange: boolean): void {
    job.lastProgressWriteAt = now;
    job.progressDirty = false;
    try {
      this.store.updateJob(job.id, update);
    } catch (err) {
      if (!(err instanceof StateStoreError)) throw err;
      if (isStateChange || !job.progressLogged) job.log.error({ err }, err.message);
      if (!isStateChange) job.progressLogged = true;
    }
    const { status, phase, progress, result, info, finishedAt } = update;
    job.record = {
      ...job.record,
      ...(status !== undefined ? { status } : {}),
      ...(phase !== undefined ? { phase } : {}),
      ...(progress !== undefined ? { progress } : {}),
      ...(result !== undefined ? { result } : {}),
      ...(info !== undefined ? { info } : {}),
      ...(finishedAt !== undefined ? { finishedAt } : {}),
      updatedAt: now,
    };
    this.notify(job.record);
  }

  private onFinished(job: LiveJob): void {
    if (job.nodeId && this.handlers.get(job.type)?.options.holdsNode) this.nodeHolds!.release(job.nodeId, job.id);
    const queued = this.queue.indexOf(job.id);
    if (queued >= 0) this.queue.splice(queued, 1);
    this.releaseIfDone(job);
    // A cancelled queued job may have been what held a later job on the same node back.
    this.pump();
  }

  /** A job leaves the pool and its node only when it is finished and its handler has returned. */
  private releaseIfDone(job: LiveJob): void {
    if (!isFinished(job.record.status) || job.handlerActive) return;
    if (!this.live.has(job.id)) return;
    job.holdsSlot = false;
    this.live.delete(job.id);
    job.release();
    this.pump();
  }

  private compatible(a: LiveJob, b: LiveJob): boolean {
    return a.compatibleWith.has(b.type) && b.compatibleWith.has(a.type);
  }

  /** Starts queued jobs in FIFO order while the pool has room and their node is free for them. */
  private pump(): void {
    // START runs handlers synchronously up to their first await; one may submit or cancel a job.
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        this.pumpOnce();
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
  }

  private pumpOnce(): void {
    if (this.closing) return;
    const occupying = [...this.live.values()].filter((job) => job.holdsSlot);
    const waitingAhead: LiveJob[] = [];
    for (const id of [...this.queue]) {
      if (occupying.length >= this.maxConcurrent) return;
      const job = this.live.get(id);
      if (!job) continue;
      // A job also waits behind an earlier waiting job on its node, so that a node's queue stays FIFO.
      const blocked =
        job.nodeId !== null &&
        [...occupying, ...waitingAhead].some((other) => other.nodeId === job.nodeId && !this.compatible(job, other));
      if (blocked) {
        waitingAhead.push(job);
        continue;
      }
      this.queue.splice(this.queue.indexOf(id), 1);
      job.holdsSlot = true;
      occupying.push(job);
      job.actor.send({ type: 'START' });
    }
  }

  private notify(job: JobRecord): void {
    for (const listener of this.listeners) {
      try {
        listener(job);
      } catch (err) {
        this.log.error({ err, jobId: job.id }, 'a job update listener threw');
      }
    }
  }
}

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createActor, fromPromise, waitFor, type AnyActorRef } from 'xstate';
import { jobMachine, type JobProgressEvent, type JobWorkInput } from '../../machines/job.machine.ts';

/** A promise the test settles by hand. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A fake `work` actor: records its calls, hands the test its parent and signal, settles on demand. */
function fakeWork() {
  const calls: { input: JobWorkInput; signal: AbortSignal; parent: AnyActorRef | undefined }[] = [];
  const outcome = deferred<unknown>();
  const started = deferred<void>();
  const logic = fromPromise<unknown, JobWorkInput>(async ({ input, signal, self }) => {
    calls.push({ input, signal, parent: self._parent });
    started.resolve();
    return outcome.promise;
  });
  const progress = (event: Omit<JobProgressEvent, 'type'>) => calls[0].parent?.send({ type: 'PROGRESS', ...event });
  return { logic, calls, outcome, started, progress };
}

function startJob(work: ReturnType<typeof fakeWork>) {
  const actor = createActor(jobMachine.provide({ actors: { work: work.logic } }), {
    input: { jobId: 'job-1', jobType: 'coldbackup' },
  });
  actor.start();
  return actor;
}

describe('job machine', () => {
  it('waits in queued, without running the work, until the runner sends START', async () => {
    const work = fakeWork();
    const actor = startJob(work);
    await new Promise((r) => setImmediate(r));
    assert.equal(actor.getSnapshot().value, 'queued');
    assert.equal(work.calls.length, 0);
    actor.stop();
  });

  it('runs the work with the job id and type, and succeeds with its result', async () => {
    const work = fakeWork();
    const actor = startJob(work);
    actor.send({ type: 'START' });
    await work.started.promise;
    assert.equal(actor.getSnapshot().value, 'running');
    assert.deepEqual(work.calls[0].input, { jobId: 'job-1', jobType: 'coldbackup' });

    work.outcome.resolve({ file: '/coldbackup/c1/s1/coldback_20250101_000000.tgz' });
    const done = await waitFor(actor, (s) => s.status === 'done');
    assert.equal(done.value, 'succeeded');
    assert.deepEqual(done.context.result, { file: '/coldbackup/c1/s1/coldback_20250101_000000.tgz' });
    assert.equal(done.context.error, null);
  });

  it('keeps the phase and byte counts the work reports through PROGRESS events to its parent', async () => {
    const work = fakeWork();
    const actor = startJob(work);
    actor.send({ type: 'START' });
    await work.started.promise;

    work.progress({ phase: 'copying', bytesDone: 10, bytesTotal: 100 });
    assert.deepEqual(
      { phase: actor.getSnapshot().context.phase, done: actor.getSnapshot().context.bytesDone, total: actor.getSnapshot().context.bytesTotal },
      { phase: 'copying', done: 10, total: 100 },
    );
    work.progress({ phase: 'copying', bytesDone: 60 });
    assert.equal(actor.getSnapshot().context.bytesDone, 60);
    assert.equal(actor.getSnapshot().context.bytesTotal, 100, 'a same-phase report without a total keeps the total');

    work.progress({ phase: 'verifying' });
    const { phase, bytesDone, bytesTotal } = actor.getSnapshot().context;
    assert.deepEqual({ phase, bytesDone, bytesTotal }, { phase: 'verifying', bytesDone: null, bytesTotal: null });
    actor.stop();
  });

  it('fails with the error text when the work rejects', async () => {
    const work = fakeWork();
    const actor = startJob(work);
    actor.send({ type: 'START' });
    await work.started.promise;
    work.outcome.reject(new Error('table t1 is not InnoDB'));
    const done = await waitFor(actor, (s) => s.status === 'done');
    assert.equal(done.value, 'failed');
    assert.equal(done.context.error, 'table t1 is not InnoDB');
  });

  it('cancels a queued job without ever running its work', async () => {
    const work = fakeWork();
    const actor = startJob(work);
    actor.send({ type: 'CANCEL' });
    assert.equal(actor.getSnapshot().value, 'cancelled');
    assert.equal(actor.getSnapshot().status, 'done');
    actor.send({ type: 'START' });
    await new Promise((r) => setImmediate(r));
    assert.equal(work.calls.length, 0);
  });

  it('cancels a running job by stopping the work, whose signal aborts', async () => {
    const work = fakeWork();
    const actor = startJob(work);
    actor.send({ type: 'START' });
    await work.started.promise;
    assert.equal(work.calls[0].signal.aborted, false);

    actor.send({ type: 'CANCEL', reason: 'cancelled by operator' });
    assert.equal(actor.getSnapshot().value, 'cancelled');
    assert.equal(actor.getSnapshot().context.error, 'cancelled by operator');
    assert.equal(work.calls[0].signal.aborted, true);

    // The work finishing late changes nothing.
    work.outcome.resolve('late');
    await new Promise((r) => setImmediate(r));
    assert.equal(actor.getSnapshot().value, 'cancelled');
    assert.equal(actor.getSnapshot().context.result, null);
  });

  it('ignores progress before START and after the job has finished', async () => {
    const work = fakeWork();
    const actor = startJob(work);
    actor.send({ type: 'PROGRESS', phase: 'copying', bytesDone: 1 });
    assert.equal(actor.getSnapshot().context.phase, null);
    actor.send({ type: 'START' });
    await work.started.promise;
    work.outcome.resolve(null);
    await waitFor(actor, (s) => s.status === 'done');
    actor.send({ type: 'PROGRESS', phase: 'late' });
    assert.equal(actor.getSnapshot().context.phase, null);
  });
});

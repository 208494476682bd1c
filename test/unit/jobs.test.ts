import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { createActor } from 'xstate';
import { holderOf, nodeMachine, type NodePolicy } from '../../machines/node.machine.ts';
import { openStateStore, STATE_FILE_NAME, type JobRecord, type StateStore } from '../../src/state/store.ts';
import { JobRunner } from '../../src/jobs/runner.ts';
import type { JobContext, JobRunnerOptions, NodeHolds } from '../../src/jobs/job.ts';
import { JobConflictError, JobSubmissionError, JobRunnerClosedError, NodeHeldError } from '../../src/jobs/job-errors.ts';
import { legacyJobStatus } from '../../src/http/legacy-status.ts';

const CHILD = path.resolve(import.meta.dirname, '../support/job-child.ts');
const silent = pino({ level: 'silent' });
const cleanups: (() => void | Promise<unknown>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'node-mgr-jobs-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function openStore(dir: string): StateStore {
  const store = openStateStore(dir);
  cleanups.push(() => store.close());
  return store;
}

const policy: NodePolicy = {
  restart: { initialDelayMs: 1000, maxDelayMs: 60_000, jitter: 0, stableAfterMs: 60_000, maxRestarts: 5, windowMs: 300_000 },
  probe: { failureThreshold: 3, startTimeoutMs: 30_000 },
};

/** Holds kept where the supervisor keeps them: in each node's chart (stopped nodes, no processes). */
function chartHolds(nodeIds: string[]): NodeHolds {
  const charts = new Map(nodeIds.map((nodeId) => [nodeId, createActor(nodeMachine, { input: { nodeId, policy, wanted: 'stopped' } }).start()]));
  cleanups.push(() => charts.forEach((c) => c.stop()));
  return {
    holder: (nodeId) => {
      const chart = charts.get(nodeId);
      return chart ? holderOf(chart.getSnapshot()) : null;
    },
    claim: (nodeId, claim) => charts.get(nodeId)?.send({ type: 'CLAIM', claim }),
    release: (nodeId, jobId) => charts.get(nodeId)?.send({ type: 'RELEASE', jobId }),
  };
}

function newRunner(dir = tempDir(), options: Partial<JobRunnerOptions> = {}) {
  const store = options.store ?? openStore(dir);
  const runner = new JobRunner({ store, log: silent, retention: false, ...options });
  // Lets every handler a test left waiting finish, so that no job outlives its test.
  cleanups.push(() => {
    for (const gate of gates.values()) gate.resolve();
    return runner.drain(2000);
  });
  return { dir, store, runner };
}

interface Gate {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Gate {
  let resolve!: () => void;
  const promise = new Promise<void>((res) => (resolve = res));
  return { promise, resolve };
}

/** Handlers of the `slow` job types wait at a gate named by the job id until the test opens it. */
const gates = new Map<string, Gate>();
function gate(id: string) {
  if (!gates.has(id)) gates.set(id, deferred());
  return gates.get(id)!;
}
function open(id: string) {
  gate(id).resolve();
}
afterEach(() => gates.clear());

/** Registers gated job types that log `start:<id>` and `end:<id>` to `events`. */
function registerSlow(runner: JobRunner, events: string[], types: Record<string, string[]> = { slow: [] }) {
  const started = new Map<string, Gate>();
  const startedOf = (id: string) => {
    if (!started.has(id)) started.set(id, deferred());
    return started.get(id)!;
  };
  for (const [type, compatibleWith] of Object.entries(types)) {
    runner.register(
      type,
      async (ctx: JobContext) => {
        events.push(`start:${ctx.id}`);
        startedOf(ctx.id).resolve();
        await gate(ctx.id).promise;
        events.push(`end:${ctx.id}`);
        return { id: ctx.id };
      },
      { compatibleWith },
    );
  }
  return { started: (id: string) => startedOf(id).promise };
}

/** Resolves with the job once `predicate` holds for it. */
function until(runner: JobRunner, id: string, predicate: (job: JobRecord) => boolean): Promise<JobRecord> {
  return new Promise((resolve) => {
    const now = runner.get(id);
    if (now && predicate(now)) return resolve(now);
    const off = runner.onUpdate((job) => {
      if (job.id === id && predicate(job)) {
        off();
        resolve(job);
      }
    });
  });
}

const finished = (job: JobRecord) => !['queued', 'running'].includes(job.status);
const tick = () => new Promise((r) => setImmediate(r));

describe('job runner: submission', () => {
  it('returns the existing job for the same id and body, whatever the key order', async () => {
    const { runner } = newRunner();
    runner.register('delete', async () => 'dropped');
    const first = runner.submit({ id: 'j1', type: 'delete', params: { s_port: 6001, s_table_name: 't1' } });
    const again = runner.submit({ id: 'j1', type: 'delete', params: { s_table_name: 't1', s_port: 6001 } });
    assert.equal(first.created, true);
    assert.equal(again.created, false);
    assert.equal(again.job.id, 'j1');
    await until(runner, 'j1', finished);
    assert.equal(runner.submit({ id: 'j1', type: 'delete', params: { s_port: 6001, s_table_name: 't1' } }).job.status, 'succeeded');
  });

  it('refuses the same id with a different body as a conflict (HTTP 409)', () => {
    const { runner } = newRunner();
    runner.register('delete', async () => null);
    runner.submit({ id: 'j1', type: 'delete', params: { s_table_name: 't1' } });
    assert.throws(
      () => runner.submit({ id: 'j1', type: 'delete', params: { s_table_name: 't2' } }),
      (err: unknown) => err instanceof JobConflictError && err.kind === 'conflict' && /j1 already exists/.test(err.message),
    );
  });

  it('generates job_<time>_<random> ids when the caller gives none', () => {
    const { runner } = newRunner();
    runner.register('delete', async () => null);
    const a = runner.submit({ type: 'delete', params: {} }).job.id;
    const b = runner.submit({ type: 'delete', params: {} }).job.id;
    assert.match(a, /^job_\d+_[0-9a-f]{8}$/);
    assert.notEqual(a, b);
  });

  it("hands the handler the submitter's plan, which is neither stored nor part of the idempotency check", async () => {
    const { runner, store } = newRunner();
    let seen: unknown;
    runner.register('mysql_cmd', async (ctx: JobContext<{ cmd: string }, { event: string }>) => {
      seen = ctx.plan;
      return null;
    });
    runner.submit({ id: 'j1', type: 'mysql_cmd', params: { cmd: './stopmysql.sh 6001' }, plan: { event: 'STOP' } });
    const job = await until(runner, 'j1', finished);
    assert.deepEqual(seen, { event: 'STOP' });
    assert.deepEqual(store.getJob('j1')!.params, { cmd: './stopmysql.sh 6001' });
    assert.equal(job.status, 'succeeded');
    // A repeat is the same job even when its submitter planned it differently (or not at all).
    assert.equal(runner.submit({ id: 'j1', type: 'mysql_cmd', params: { cmd: './stopmysql.sh 6001' }, plan: { event: 'START' } }).created, false);
    assert.equal(runner.submit({ id: 'j1', type: 'mysql_cmd', params: { cmd: './stopmysql.sh 6001' } }).created, false);
  });

  it('refuses an unknown job type and an unusable job id', () => {
    const { runner } = newRunner();
    runner.register('delete', async () => null);
    assert.throws(() => runner.submit({ type: 'format_disk', params: {} }), JobSubmissionError);
    assert.throws(() => runner.submit({ id: '../x', type: 'delete', params: {} }), JobSubmissionError);
  });
});

describe('job runner: secrets', () => {
  it('hands the handler the real params but stores and reports them redacted, error text included', async () => {
    const { runner, dir } = newRunner();
    let seen: unknown;
    runner.register('delete', async (ctx) => {
      seen = ctx.params;
      throw new Error("Access denied for user 'root' (using password: hunter2)");
    });
    runner.submit({ id: 'j1', type: 'delete', params: { s_user: 'root', s_pwd: 'hunter2', extra: [{ token: 'tok-123' }] } });
    const job = await until(runner, 'j1', finished);
    assert.deepEqual(seen, { s_user: 'root', s_pwd: 'hunter2', extra: [{ token: 'tok-123' }] });

    assert.deepEqual(job.params, { s_user: 'root', s_pwd: '******', extra: [{ token: '******' }] });
    const raw = new Database(path.join(dir, STATE_FILE_NAME), { readonly: true });
    const rows = JSON.stringify(raw.prepare('SELECT * FROM jobs').all());
    raw.close();
    assert.doesNotMatch(rows, /hunter2|tok-123/);

    const status = legacyJobStatus(runner, 'j1');
    assert.doesNotMatch(JSON.stringify(status), /hunter2|tok-123/);
    assert.equal(status.result, 'error');
    assert.equal(status.info, "Access denied for user 'root' (using password: ******)");
  });
});

describe('job runner: error text', () => {
  it('drops control characters a tool printed (a BEL from mariabackup) from the reported info', async () => {
    const { runner } = newRunner();
    runner.register('coldbackup', async () => {
      throw new Error('mariabackup failed: \u0007[00] FATAL ERROR:\tno space left\r');
    });
    runner.submit({ id: 'j1', type: 'coldbackup', params: {} });
    await until(runner, 'j1', finished);
    assert.equal(legacyJobStatus(runner, 'j1').info, 'mariabackup failed: [00] FATAL ERROR:\tno space left');
  });
});

describe('job runner: scheduling', () => {
  it('runs two jobs on one node one after the other, and jobs on two nodes in parallel', async () => {
    const { runner } = newRunner();
    const events: string[] = [];
    const { started } = registerSlow(runner, events);
    runner.submit({ id: 'a', type: 'slow', params: {}, nodeId: 'mysql-6001' });
    runner.submit({ id: 'b', type: 'slow', params: {}, nodeId: 'mysql-6001' });
    runner.submit({ id: 'c', type: 'slow', params: {}, nodeId: 'mysql-6002' });
    await Promise.all([started('a'), started('c')]);
    assert.equal(runner.get('b')?.status, 'queued');

    open('a');
    await started('b');
    open('c');
    open('b');
    await Promise.all(['b', 'c'].map((id) => until(runner, id, finished)));
    const at = (e: string) => events.indexOf(e);
    assert.ok(at('start:c') < at('end:a'), 'the job on the other node ran alongside a');
    assert.ok(at('end:a') < at('start:b'), 'b started only after a ended');
  });

  it('lets two jobs share a node only when each type lists the other as compatible', async () => {
    const { runner } = newRunner();
    const events: string[] = [];
    const { started } = registerSlow(runner, events, { backup: ['purge', 'audit'], purge: ['backup'], audit: [] });
    runner.submit({ id: 'backup', type: 'backup', params: {}, nodeId: 'n1' });
    runner.submit({ id: 'purge', type: 'purge', params: {}, nodeId: 'n1' });
    runner.submit({ id: 'audit', type: 'audit', params: {}, nodeId: 'n1' });
    await Promise.all([started('backup'), started('purge')]);
    assert.equal(runner.get('audit')?.status, 'queued', 'audit lists nothing, so it waits');
    open('backup');
    open('purge');
    await started('audit');
    assert.ok(events.indexOf('end:backup') < events.indexOf('start:audit'));
    assert.ok(events.indexOf('end:purge') < events.indexOf('start:audit'));
    open('audit');
  });

  it('will not register a job type that holds its node without the charts that keep the hold', () => {
    const { runner } = newRunner();
    assert.throws(() => runner.register('backup', async () => {}, { holdsNode: 'backing up' }), /needs nodeHolds/);
  });

  it('refuses (409) rather than queues a job on a node that a holding job (backup) has queued or running', async () => {
    const { runner } = newRunner(undefined, { nodeHolds: chartHolds(['n1', 'n2']) });
    const events: string[] = [];
    const { started } = registerSlow(runner, events, { other: [] });
    const gated = (ctx: JobContext) => gate(ctx.id).promise;
    runner.register('backup', gated, { holdsNode: 'backing up' });
    runner.register('restore', gated, { holdsNode: 'restoring' });
    runner.register('verify', gated, { waitsForHolder: true });
    // A job already on the node: the backup waits behind it, queued, and holds the node already.
    runner.submit({ id: 'first', type: 'other', params: {}, nodeId: 'n1' });
    await started('first');
    runner.submit({ id: 'bk', type: 'backup', params: { a: 1 }, nodeId: 'n1' });
    const refused = (type: string) => {
      try {
        runner.submit({ type, params: {}, nodeId: 'n1' });
      } catch (err) {
        return err as NodeHeldError;
      }
      assert.fail(`${type} was accepted`);
    };
    for (const type of ['restore', 'backup', 'other']) {
      const err = refused(type);
      assert.ok(err instanceof NodeHeldError);
      assert.equal(err.kind, 'conflict');
      assert.equal(err.message, `node n1 is backing up for backup job bk (queued); the ${type} was refused, not queued: retry when that job is done`);
    }
    assert.throws(() => runner.refuseIfHeld('n1', 'stop'), /the stop was refused/);
    // The holder's own idempotent repeat, another node, and a type that may wait are accepted.
    assert.equal(runner.submit({ id: 'bk', type: 'backup', params: { a: 1 }, nodeId: 'n1' }).created, false);
    runner.submit({ id: 'elsewhere', type: 'restore', params: {}, nodeId: 'n2' });
    runner.submit({ id: 'v', type: 'verify', params: {}, nodeId: 'n1' });
    open('first');
    open('elsewhere');
    await until(runner, 'bk', (j) => j.status === 'running');
    assert.match(refused('restore').message, /^node n1 is backing up for backup job bk; /);
    open('bk');
    await until(runner, 'bk', finished);
    assert.equal(runner.holderOf('n1'), null);
    open('v');
    runner.submit({ id: 'later', type: 'restore', params: {}, nodeId: 'n1' });
    open('later');
    await until(runner, 'later', finished);
  });

  it('keeps a node’s queue FIFO: a compatible job does not overtake an earlier waiting one', async () => {
    const { runner } = newRunner();
    const events: string[] = [];
    const { started } = registerSlow(runner, events, { backup: ['purge'], purge: ['backup'], restore: [] });
    runner.submit({ id: 'backup', type: 'backup', params: {}, nodeId: 'n1' });
    runner.submit({ id: 'restore', type: 'restore', params: {}, nodeId: 'n1' });
    runner.submit({ id: 'purge', type: 'purge', params: {}, nodeId: 'n1' });
    await started('backup');
    await tick();
    assert.equal(runner.get('purge')?.status, 'queued');
    open('backup');
    await started('restore');
    open('restore');
    await started('purge');
    open('purge');
    assert.deepEqual(events.slice(0, 5), ['start:backup', 'end:backup', 'start:restore', 'end:restore', 'start:purge']);
  });

  it('never runs more than maxConcurrent jobs at once, and starts them in submission order', async () => {
    const { runner } = newRunner(tempDir(), { maxConcurrent: 2 });
    let active = 0;
    let peak = 0;
    const order: string[] = [];
    runner.register('work', async (ctx) => {
      order.push(ctx.id);
      peak = Math.max(peak, ++active);
      for (let i = 0; i < 3; i++) await tick();
      active--;
    });
    const ids = ['j0', 'j1', 'j2', 'j3', 'j4'];
    for (const id of ids) runner.submit({ id, type: 'work', params: {} });
    assert.deepEqual(runner.counts(), { running: 2, queued: 3 });
    await Promise.all(ids.map((id) => until(runner, id, finished)));
    assert.equal(peak, 2);
    assert.deepEqual(order, ids);
  });
});

describe('job runner: cancel', () => {
  it('cancels a running job through its signal and frees its node only when the handler has cleaned up', async () => {
    const { runner } = newRunner();
    const events: string[] = [];
    const cleanup = deferred();
    const { started } = registerSlow(runner, events);
    runner.register('careful', async (ctx) => {
      events.push('start:careful');
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      events.push('aborted:careful');
      await cleanup.promise; // e.g. UNLOCK TABLES
      events.push('end:careful');
      throw ctx.signal.reason;
    });
    runner.submit({ id: 'careful', type: 'careful', params: {}, nodeId: 'n1' });
    runner.submit({ id: 'next', type: 'slow', params: {}, nodeId: 'n1' });
    await tick();

    const cancelled = runner.cancel('careful');
    assert.equal(cancelled?.status, 'cancelled');
    assert.equal(legacyJobStatus(runner, 'careful').result, 'error');
    assert.equal(legacyJobStatus(runner, 'careful').info, 'cancelled by request');
    await tick();
    assert.equal(runner.get('next')?.status, 'queued', 'the node is still busy while the handler cleans up');

    cleanup.resolve();
    await started('next');
    assert.deepEqual(events, ['start:careful', 'aborted:careful', 'end:careful', 'start:next']);
    assert.equal(runner.get('careful')?.status, 'cancelled');
    open('next');
  });

  it('cancels a queued job before it ever starts', async () => {
    const { runner } = newRunner();
    const events: string[] = [];
    const { started } = registerSlow(runner, events);
    runner.submit({ id: 'a', type: 'slow', params: {}, nodeId: 'n1' });
    runner.submit({ id: 'b', type: 'slow', params: {}, nodeId: 'n1' });
    runner.submit({ id: 'c', type: 'slow', params: {}, nodeId: 'n1' });
    await started('a');
    assert.equal(runner.cancel('b')?.status, 'cancelled');
    open('a');
    await started('c');
    open('c');
    await until(runner, 'c', finished);
    assert.ok(!events.includes('start:b'));
    assert.equal(runner.cancel('a')?.status, 'succeeded', 'cancelling a finished job changes nothing');
    assert.equal(runner.cancel('nope'), undefined);
  });
});

describe('job runner: records and get_status', () => {
  it('shows a catch-up\'s lag in get_status (seconds, transactions, bytes behind) with the handler\'s ETA where no bytes are known, and a new phase drops it', async () => {
    const dir = tempDir();
    const { runner } = newRunner(dir);
    runner.register('rebuild', async (ctx) => {
      ctx.progress({ phase: 'catching up', secondsBehind: 12, transactionsBehind: 40, bytesBehind: null, etaS: 7.6 });
      await gate(ctx.id).promise;
      ctx.progress({ phase: 'catching up', secondsBehind: 3, transactionsBehind: 9, bytesBehind: null, etaS: 2 });
      await gate(`${ctx.id}-2`).promise;
      ctx.progress({ phase: 'comparing checksums' });
      await gate(`${ctx.id}-3`).promise;
      return {};
    });
    runner.submit({ id: 'r1', type: 'rebuild', params: {} });
    await tick();
    const first = legacyJobStatus(runner, 'r1');
    assert.equal(first.job_status, 'catching up');
    assert.deepEqual(first.progress, { phase: 'catching up', seconds_behind: 12, trx_behind: 40, bytes_behind: null, eta_s: 8 });
    open('r1');
    await tick();
    assert.deepEqual(legacyJobStatus(runner, 'r1').progress, { phase: 'catching up', seconds_behind: 3, trx_behind: 9, bytes_behind: null, eta_s: 2 });
    open('r1-2');
    await tick();
    assert.deepEqual(legacyJobStatus(runner, 'r1').progress, { phase: 'comparing checksums' });
    open('r1-3');
    await until(runner, 'r1', finished);
  });

  it('persists phase and progress at most a few times a second, and the newest figures in the end', async () => {
    const dir = tempDir();
    const store = openStore(dir);
    let writes = 0;
    const counting: StateStore = Object.assign(Object.create(store) as StateStore, {
      updateJob: (...args: Parameters<StateStore['updateJob']>) => {
        writes++;
        return store.updateJob(...args);
      },
    });
    const { runner } = newRunner(dir, { store: counting });
    runner.register('copy', async (ctx) => {
      for (let i = 1; i <= 200; i++) ctx.progress({ phase: 'copying', bytesDone: i, bytesTotal: 200 });
      await gate(ctx.id).promise;
      ctx.progress({ phase: 'verifying' });
      return { file: '/backups/x.tgz' };
    });
    runner.submit({ id: 'j1', type: 'copy', params: {} });
    await tick();

    assert.ok(writes <= 3, `200 progress reports made ${writes} writes`);
    const live = legacyJobStatus(runner, 'j1');
    assert.equal(live.result, 'busy');
    assert.equal(live.job_status, 'copying');
    assert.deepEqual({ ...live.progress, eta_s: undefined, rate_bps: undefined }, { phase: 'copying', bytes_done: 200, bytes_total: 200, pct: 100, eta_s: undefined, rate_bps: undefined });

    // The trailing write brings the file up to date without further reports.
    while (store.getJob('j1')?.progress?.bytes_done !== 200) await new Promise((r) => setTimeout(r, 20));
    open('j1');
    const done = await until(runner, 'j1', finished);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(store.getJob('j1')?.progress, { phase: 'verifying' });
    assert.deepEqual(store.getJob('j1')?.result, { file: '/backups/x.tgz' });
    assert.ok(writes <= 6, `${writes} writes in all`);

    const status = legacyJobStatus(runner, 'j1');
    assert.deepEqual(
      { job_id: status.job_id, job_type: status.job_type, job_status: status.job_status, result: status.result, output: status.output },
      { job_id: 'j1', job_type: 'copy', job_status: 'succeed', result: 'succeed', output: { file: '/backups/x.tgz' } },
    );
    assert.match(status.created ?? '', /^\d{4}-\d\d-\d\dT/);
  });

  it('writes every status to the state file before any listener hears of it', async () => {
    const { runner, store } = newRunner();
    const seen: string[] = [];
    runner.onUpdate((job) => {
      assert.equal(store.getJob(job.id)?.status, job.status);
      seen.push(job.status);
    });
    runner.register('ok', async () => 1);
    runner.register('bad', async () => {
      throw new Error('boom');
    });
    runner.submit({ id: 'ok', type: 'ok', params: {} });
    runner.submit({ id: 'bad', type: 'bad', params: {} });
    await Promise.all(['ok', 'bad'].map((id) => until(runner, id, finished)));
    assert.ok(seen.includes('succeeded') && seen.includes('failed') && seen.includes('running'));
  });

  it('answers get_status for an unknown job with job_status none', () => {
    const { runner } = newRunner();
    assert.deepEqual(legacyJobStatus(runner, 'nope'), { job_id: 'nope', job_status: 'none', result: 'error', info: 'no such job' });
  });

  it('lists jobs newest first, filtered by status and type', async () => {
    const { runner } = newRunner();
    const events: string[] = [];
    registerSlow(runner, events);
    runner.register('ok', async () => 1);
    runner.submit({ id: 'a', type: 'ok', params: {} });
    await until(runner, 'a', finished);
    runner.submit({ id: 'b', type: 'slow', params: {} });
    assert.deepEqual(runner.list({ limit: 10 }).map((j) => j.id), ['b', 'a']);
    assert.deepEqual(runner.list({ status: 'running' }).map((j) => j.id), ['b']);
    assert.deepEqual(runner.list({ type: 'ok' }).map((j) => j.id), ['a']);
    open('b');
  });
});

describe('job runner: durability and retention', () => {
  it('reports a job running when node-mgr was SIGKILLed as interrupted, and keeps finished jobs intact', async () => {
    const dir = tempDir();
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, 'long-job'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      child.on('exit', (code) => reject(new Error(`job-child exited early (${code}): ${stderr}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const { runner } = newRunner(dir);
    runner.register('quick', async () => null);
    runner.register('slow', async () => null);
    assert.deepEqual(runner.interruptedAtStart, ['job-long']);

    const long = legacyJobStatus(runner, 'job-long');
    assert.equal(long.result, 'error');
    assert.equal(long.info, 'interrupted by node-mgr restart');
    assert.equal(long.job_status, 'interrupted by node-mgr restart');
    assert.equal(long.progress?.phase, 'copying');

    const done = runner.get('job-done');
    assert.equal(done?.status, 'succeeded');
    assert.deepEqual(done?.result, { file: '/coldbackup/c1/s1/coldback_20250101_000000.tgz' });
    assert.deepEqual(done?.params, { s_ip: '127.0.0.1', s_port: 6001, s_user: 'root', s_pwd: '******' });
    // Idempotency outlives the process: the same body finds the same job.
    const params = { s_ip: '127.0.0.1', s_port: 6001, s_user: 'root', s_pwd: 'hunter2' };
    assert.equal(runner.submit({ id: 'job-done', type: 'quick', params, nodeId: 'mysql-6001' }).created, false);
    assert.throws(() => runner.submit({ id: 'job-done', type: 'quick', params: { ...params, s_pwd: 'other' }, nodeId: 'mysql-6001' }), JobConflictError);
  });

  it('prunes finished jobs but never a queued or running one', async () => {
    const { runner } = newRunner(tempDir(), { maxConcurrent: 1 });
    const events: string[] = [];
    const { started } = registerSlow(runner, events);
    runner.register('ok', async () => 1);
    runner.submit({ id: 'done', type: 'ok', params: {} });
    await until(runner, 'done', finished);
    runner.submit({ id: 'running', type: 'slow', params: {} });
    runner.submit({ id: 'queued', type: 'slow', params: {} });
    await started('running');

    assert.equal(runner.prune({ maxAgeMs: 0, maxCount: 0 }), 1);
    assert.equal(runner.get('done'), undefined);
    assert.equal(runner.get('running')?.status, 'running');
    assert.equal(runner.get('queued')?.status, 'queued');
    open('running');
    open('queued');
  });

  it('drains for shutdown: waits for running jobs, then refuses new ones', async () => {
    const { runner } = newRunner();
    const events: string[] = [];
    const { started } = registerSlow(runner, events);
    runner.submit({ id: 'a', type: 'slow', params: {} });
    await started('a');
    const stuck = await runner.drain(20);
    assert.deepEqual(stuck, { drained: false, running: ['a'] });
    open('a');
    assert.deepEqual(await runner.drain(1000), { drained: true, running: [] });
    assert.equal(runner.get('a')?.status, 'succeeded');
    assert.throws(() => runner.submit({ id: 'b', type: 'slow', params: {} }), JobRunnerClosedError);
    assert.equal(runner.submit({ id: 'a', type: 'slow', params: {} }).created, false, 'a repeated submission still finds its job');
  });
});

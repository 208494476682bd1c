// GET /v1/events against a fake supervisor and job runner: what a client receives, in what order,
// and that nothing is left subscribed when it goes away.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import Fastify, { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { eventRoutes } from '../../src/http/events.ts';
import { NodeMgrMetrics } from '../../src/metrics/metrics.ts';
import type { HttpDeps } from '../../src/http/deps.ts';
import type { NodeView, Transition } from '../../src/supervisor/supervisor.ts';
import type { JobRecord } from '../../src/state/store.ts';
import { openEventStream } from '../support/sse.ts';
import { parseConfig } from '../../src/config/load.ts';

const view = (state: string): NodeView => ({
  id: 'mysql-6001', kind: 'mysql', role: 'storage', port: 6001, ip: '127.0.0.1', user: 'u', password: 'secret', dir: '/d', dataDir: '/d/data',
  source: 'static', state, wanted: 'running', pid: 7, adopted: false, since: new Date().toISOString(), restarts: 0, paused: false,
  backoffMs: null, backoffUntil: null, lastExit: null, lastError: null, work: null, policy: parseConfig({}).policy,
});

class FakeSupervisor extends EventEmitter {
  current = view('running');
  list() {
    return [this.current];
  }
  get() {
    return this.current;
  }
  spec() {
    return {};
  }
  is() {
    return true;
  }
  move(from: string, to: string, event: string) {
    this.current = view(to);
    const t: Transition = { nodeId: 'mysql-6001', port: 6001, from, to, event, at: Date.now(), detail: null };
    this.emit('transition', t);
  }
}

class FakeJobs {
  listeners = new Set<(j: JobRecord) => void>();
  onUpdate(l: (j: JobRecord) => void) {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  list() {
    return [];
  }
  counts() {
    return { running: 0, queued: 0 };
  }
  emit(j: JobRecord) {
    for (const l of this.listeners) l(j);
  }
}

/** The binlog archiving as the hub sees it: a view per node, and change notices. */
class FakeArchive {
  listeners = new Set<(id: string) => void>();
  current: Record<string, unknown> = { enabled: true, state: 'ok', pending_files: [], pending_bytes: 0, lag_bytes: 0, last_pass_at: 't0' };
  onChange(l: (id: string) => void) {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  view() {
    return this.current;
  }
  change(over: Record<string, unknown>) {
    this.current = { ...this.current, ...over };
    for (const l of this.listeners) l('mysql-6001');
  }
}

const job = (status: JobRecord['status'], pct?: number): JobRecord => ({
  id: 'j1', type: 'coldbackup', nodeId: 'mysql-6001', params: {}, paramsHash: 'h', status, phase: pct === undefined ? null : 'copying',
  progress: pct === undefined ? null : { phase: 'copying', pct }, result: null, info: null, createdAt: 1, updatedAt: 1, finishedAt: null,
});

describe('GET /v1/events', () => {
  let app: FastifyInstance;
  let url: string;
  const supervisor = new FakeSupervisor();
  const jobs = new FakeJobs();
  const archive = new FakeArchive();
  const metrics = new NodeMgrMetrics({ nodes: () => [], ready: () => false, usage: () => ({ diskUsed: null, diskFree: null, cpuPct: null, memRss: null }), jobCounts: () => ({ running: 0, queued: 0 }), onJobUpdate: () => () => {} });

  before(async () => {
    const deps = {
      config: parseConfig({}),
      supervisor,
      jobs,
      usage: { get: () => ({ diskUsed: null, diskFree: null, cpuPct: null, memRss: null }) },
      metrics,
      log: pino({ level: 'silent' }),
      binlogArchive: archive,
    } as unknown as HttpDeps;
    app = Fastify();
    app.decorate('services', deps);
    await app.register(eventRoutes, { prefix: '/v1', heartbeatMs: 60, jobProgressIntervalMs: 150 });
    url = `${await app.listen({ host: '127.0.0.1', port: 0 })}/v1/events`;
  });

  after(async () => {
    await app.close();
    metrics.close();
  });

  it('starts with hello (nodes without passwords) and then delivers transitions in the order they happened', async () => {
    const es = await openEventStream(url);
    assert.equal(es.status, 200);
    const hello = await es.waitFor((e) => e.event === 'hello');
    assert.equal(es.events[0], hello);
    assert.equal(hello.data.nodes[0].id, 'mysql-6001');
    assert.equal(hello.data.nodes[0].password, undefined);
    const path = ['running', 'crashed', 'backoff', 'preflight', 'starting', 'running'];
    for (let i = 1; i < path.length; i++) supervisor.move(path[i - 1]!, path[i]!, `E${i}`);
    await es.waitFor((e) => e.event === 'transition' && e.data.event === 'E5');
    const got = es.events.filter((e) => e.event === 'transition');
    assert.deepEqual(got.map((e) => e.data.to), path.slice(1));
    assert.deepEqual(got.map((e) => Number(e.id)), [...got.map((e) => Number(e.id))].sort((a, b) => a - b), 'ids increase');
    assert.equal(got.at(-1)!.data.node.state, 'running', 'each transition carries the node after it');
    assert.equal(got.at(-1)!.data.node.password, undefined);
    es.close();
  });

  it('sends job status changes at once and thins progress to one event per interval', async () => {
    const es = await openEventStream(url);
    await es.waitFor((e) => e.event === 'hello');
    jobs.emit(job('queued'));
    jobs.emit(job('running'));
    for (let pct = 1; pct <= 50; pct++) jobs.emit(job('running', pct));
    await es.waitFor((e) => e.event === 'job' && e.data.progress?.pct === 50, 2000);
    jobs.emit(job('succeeded'));
    await es.waitFor((e) => e.event === 'job' && e.data.status === 'succeeded', 2000);
    const sent = es.events.filter((e) => e.event === 'job');
    assert.deepEqual(sent.slice(0, 2).map((e) => e.data.status), ['queued', 'running']);
    assert.ok(sent.length <= 5, `50 progress updates became ${sent.length} events`);
    assert.equal(sent.at(-1)!.data.status, 'succeeded');
    es.close();
  });

  it('sends a node\'s binlog archive view as it changes (pending bytes going down), not when only its pass time moved', async () => {
    const es = await openEventStream(url);
    const hello = await es.waitFor((e) => e.event === 'hello');
    assert.equal(hello.data.nodes[0].binlog_archive.pending_bytes, 0);
    archive.change({ state: 'archiving', pending_files: ['binlog.000007', 'binlog.000008'], pending_bytes: 3000 });
    await es.waitFor((e) => e.event === 'archive' && e.data.binlog_archive.pending_bytes === 3000, 2000);
    archive.change({ pending_files: ['binlog.000008'], pending_bytes: 1000 });
    archive.change({ pending_files: [], pending_bytes: 0, state: 'ok' });
    const done = await es.waitFor((e) => e.event === 'archive' && e.data.binlog_archive.pending_bytes === 0, 2000);
    assert.equal(done.data.port, 6001);
    assert.equal(done.data.nodeId, 'mysql-6001');
    archive.change({ last_pass_at: 't1' });
    archive.change({ last_pass_at: 't2' });
    await new Promise((r) => setTimeout(r, 400));
    const sent = es.events.filter((e) => e.event === 'archive').map((e) => e.data.binlog_archive.pending_bytes);
    assert.equal(sent[0], 3000);
    assert.equal(sent.at(-1), 0);
    assert.ok(sent.length <= 3, `archive events: ${sent.join(', ')}`);
    assert.equal(es.events.filter((e) => e.event === 'archive' && e.data.binlog_archive.last_pass_at !== 't0').length, 0, 'a pass that changed nothing but its time sent no event');
    es.close();
    for (let i = 0; i < 50 && archive.listeners.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(archive.listeners.size, 0);
  });

  it('sends heartbeat comments while nothing happens', async () => {
    const es = await openEventStream(url);
    await es.waitFor((e) => e.event === 'hello');
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(es.comments.some((c) => c.startsWith('heartbeat')), `comments: ${es.comments.join(', ')}`);
    es.close();
  });

  it('unsubscribes from the supervisor and the job runner when the last client leaves', async () => {
    const a = await openEventStream(url);
    const b = await openEventStream(url);
    await Promise.all([a.waitFor((e) => e.event === 'hello'), b.waitFor((e) => e.event === 'hello')]);
    assert.equal(supervisor.listenerCount('transition'), 1, 'one hub listener for all clients');
    a.close();
    b.close();
    for (let i = 0; i < 50 && supervisor.listenerCount('transition') > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(supervisor.listenerCount('transition'), 0);
    assert.equal(jobs.listeners.size, 0);
    const text = await metrics.render();
    assert.match(text, /^nodemgr_event_stream_clients 0$/m);
  });

  it('ends open streams when the server closes, so that shutdown does not wait for clients', async () => {
    const other = Fastify();
    const deps = { config: parseConfig({}), supervisor: new FakeSupervisor(), jobs: new FakeJobs(), usage: { get: () => null }, metrics, log: pino({ level: 'silent' }) } as unknown as HttpDeps;
    other.decorate('services', deps);
    await other.register(eventRoutes, { prefix: '/v1' });
    const base = await other.listen({ host: '127.0.0.1', port: 0 });
    const es = await openEventStream(`${base}/v1/events`);
    await es.waitFor((e) => e.event === 'hello');
    const t0 = Date.now();
    await other.close();
    await es.closed;
    assert.ok(Date.now() - t0 < 2000, 'close did not wait for the client');
  });
});

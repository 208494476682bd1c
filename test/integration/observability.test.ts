// The event stream, /metrics, the health probes and --inspect against a real node-mgr process
// supervising light fake cluster_mgr processes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { WebSocketServer } from 'ws';
import { freePort, tempNodeDir, removeTempDirs, TEST_RUN_AS } from '../support/nodes.ts';
import { api, BIN, killProcessGroups, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { fakeClusterMgrEntry } from '../support/fake-cluster-mgr-nodes.ts';
import { openEventStream, type SseClient } from '../support/sse.ts';
import { parseExposition, sampleValue } from '../support/prometheus.ts';

const policy = {
  restart: { initialDelayMs: 1500, maxDelayMs: 5000, jitter: 0, stableAfterMs: 60_000, maxRestarts: 5, windowMs: 60_000 },
  probe: { intervalMs: 500, timeoutMs: 1000, failureThreshold: 3, startTimeoutMs: 15_000 },
  stop: { gracefulTimeoutMs: 5_000, forcefulTimeoutMs: 5_000 },
};

async function scrape(url: string) {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

/** Polls until fn's value satisfies pred; returns every distinct value seen on the way. */
async function pollUntil<T>(fn: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 30_000, everyMs = 50): Promise<T[]> {
  const seen: T[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (seen.length === 0 || JSON.stringify(seen.at(-1)) !== JSON.stringify(v)) seen.push(v);
    if (pred(v)) return seen;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; saw ${JSON.stringify(seen)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

describe('events, metrics and health of a real node-mgr', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let port: number;
  let es: SseClient;
  const pids: number[] = [];

  before(async () => {
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    const config = {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      policy,
      nodes: [fakeClusterMgrEntry(root, port)],
    };
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    es = await openEventStream(`${mgr.url}/v1/events`);
    await es.waitFor((e) => e.event === 'hello');
  });

  after(async () => {
    es?.close();
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  const health = async () => {
    const r = await api(mgr.url, 'GET', `/v1/nodes/${port}/health`);
    return { status: r.status, state: r.body.state as string };
  };

  it('is ready once the actors are loaded and the state file takes writes', async () => {
    const r = await api(mgr.url, 'GET', '/readyz');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.checks, { actorsLoaded: true, stateStoreWritable: true });
  });

  it('answers 503 for a node that is not running, 200 once it runs, 404 for an unknown port', async () => {
    const down = await api(mgr.url, 'GET', `/v1/nodes/${port}/health`);
    assert.equal(down.status, 503);
    assert.equal(down.body.state, 'stopped');
    assert.equal(down.body.ready, false);
    const created = await api(mgr.url, 'POST', `/v1/nodes/${port}/create`);
    assert.equal(created.status, 200, created.text);
    pids.push(created.body.pid);
    const up = await api(mgr.url, 'GET', `/v1/nodes/${port}/health`);
    assert.equal(up.status, 200, up.text);
    assert.equal(up.body.ready, true);
    assert.equal(up.body.pid, created.body.pid);
    assert.equal((await api(mgr.url, 'GET', `/v1/nodes/${await freePort()}/health`)).status, 404);
  });

  it('moves the state gauge and the health answer with the node through stop and start', async () => {
    let samples = await scrape(mgr.url);
    const labels = { node: `cluster_mgr-${port}` };
    assert.equal(sampleValue(samples, 'nodemgr_node_state', labels), 6);
    assert.equal(sampleValue(samples, 'nodemgr_node_ready', labels), 1);
    assert.equal((await api(mgr.url, 'POST', `/v1/nodes/${port}/stop`)).status, 200);
    samples = await scrape(mgr.url);
    assert.equal(sampleValue(samples, 'nodemgr_node_state', labels), 2);
    assert.equal(sampleValue(samples, 'nodemgr_node_ready', labels), 0);
    assert.deepEqual(await health(), { status: 503, state: 'stopped' });
    const started = await api(mgr.url, 'POST', `/v1/nodes/${port}/start`);
    pids.push(started.body.pid);
    samples = await scrape(mgr.url);
    assert.equal(sampleValue(samples, 'nodemgr_node_state', labels), 6);
    assert.deepEqual(await health(), { status: 200, state: 'running' });
    // The requests above were timed by route pattern.
    assert.ok(sampleValue(samples, 'nodemgr_http_request_duration_seconds_count', { method: 'POST', route: '/v1/nodes/:port/stop', status_code: '200' })! >= 1);
    assert.ok(sampleValue(samples, 'nodemgr_event_stream_clients')! >= 1);
  });

  it('after kill -9: health goes 503 through crashed/backoff and back to 200, the gauge passes through backoff (9)', async () => {
    const before = await waitForNode(mgr.url, port, (n) => n.state === 'running');
    const from = es.events.length;
    process.kill(before.pid, 'SIGKILL');
    // Each poll ends when the node is back after having been seen down.
    let healthDown = false;
    let gaugeDown = false;
    const [seenHealth, seenGauge] = await Promise.all([
      pollUntil(health, (h) => (healthDown ||= h.status === 503) && h.status === 200, 30_000),
      pollUntil(async () => sampleValue(await scrape(mgr.url), 'nodemgr_node_state', { node: `cluster_mgr-${port}` }), (v) => (gaugeDown ||= v === 9) && v === 6, 30_000),
    ]);
    assert.ok(es.events.slice(from).some((e) => e.event === 'transition' && e.data.to === 'running'));
    assert.ok(seenHealth.some((h) => h.status === 503 && h.state === 'backoff'), JSON.stringify(seenHealth));
    assert.equal(seenHealth.at(-1)!.status, 200);
    assert.ok(seenGauge.includes(9), `gauge values seen: ${seenGauge.join(', ')}`);
    const after = await waitForNode(mgr.url, port, (n) => n.state === 'running' && n.pid !== before.pid);
    pids.push(after.pid);
    const samples = await scrape(mgr.url);
    assert.equal(sampleValue(samples, 'nodemgr_node_restarts', { node: `cluster_mgr-${port}` }), 1);
    assert.ok(samples.some((s) => s.name === 'nodemgr_node_last_exit_timestamp_seconds' && s.labels.signal === 'SIGKILL'));
  });

  it('has streamed the same transitions, in the same order, as the SQLite journal holds', async () => {
    const node = await api(mgr.url, 'GET', `/v1/nodes/${port}`);
    const journal = [...node.body.transitions].reverse().map((t: any) => ({ from: t.from, to: t.to, event: t.event, at: t.at }));
    const streamed = es.events
      .filter((e) => e.event === 'transition' && e.data.port === port)
      .map((e) => ({ from: e.data.from, to: e.data.to, event: e.data.event, at: e.data.at }));
    assert.ok(streamed.length >= 12, `only ${streamed.length} transitions streamed`);
    // The stream was opened after the node's first transitions (adopting → … → stopped).
    assert.deepEqual(journal.slice(journal.length - streamed.length), streamed);
    const states = streamed.map((t) => t.to);
    const crash = states.lastIndexOf('crashed');
    assert.deepEqual(states.slice(crash, crash + 5), ['crashed', 'backoff', 'preflight', 'starting', 'running']);
  });
});

describe('/readyz while node-mgr is still loading its actors', () => {
  it('answers 503 naming the actors until every node has settled', async () => {
    const root = path.dirname(await tempNodeDir());
    const port = await freePort();
    const entry = fakeClusterMgrEntry(root, port);
    const mgrDir = path.join(root, 'mgr');
    const config = { listen: { host: '127.0.0.1', port: await freePort() }, stateDir: path.join(root, 'state'), runAs: TEST_RUN_AS, policy, nodes: [entry] };
    // First run: create the node (node-mgr makes its directories), then take everything down.
    const first = await startNodeMgrProcess(mgrDir, config);
    const created = await api(first.url, 'POST', `/v1/nodes/${port}/create`);
    assert.equal(created.status, 200, created.text);
    await first.stop('SIGKILL');
    await killProcessGroups([created.body.pid]);
    // Second run: the node is wanted running but its health URL never answers, so load() waits
    // out the start timeout while the API already serves.
    const slow = { ...config, policy: { ...policy, probe: { ...policy.probe, startTimeoutMs: 180_000 } }, nodes: [{ ...entry, healthUrl: `http://127.0.0.1:${await freePort()}/never` }] };
    writeFileSync(path.join(mgrDir, 'node-mgr.json'), JSON.stringify(slow));
    const child = spawn(process.execPath, [BIN, 'start', '--config', path.join(mgrDir, 'node-mgr.json')], { stdio: 'ignore' });
    const url = `http://127.0.0.1:${config.listen.port}`;
    let pid: number | null = null;
    try {
      // Bounded by the start timeout above, not by a guess at how fast a busy machine starts node-mgr.
      const node = await waitForNode(url, port, (n) => n.state === 'starting' && n.pid !== null, 150_000);
      pid = node.pid;
      const res = await fetch(`${url}/readyz`);
      assert.equal(res.status, 503);
      const body = await res.json();
      assert.deepEqual(body.checks, { actorsLoaded: false, stateStoreWritable: true });
      assert.match(body.info, /still adopting or starting/);
      assert.equal((await fetch(`${url}/healthz`)).status, 200, 'alive all the same');
    } finally {
      child.kill('SIGKILL');
      await killProcessGroups([pid]);
      await removeTempDirs();
    }
  });
});

describe('node-mgr start --inspect', () => {
  let root: string;
  let wss: WebSocketServer;
  let mgr: NodeMgrProcess;
  const messages: any[] = [];

  before(async () => {
    root = path.dirname(await tempNodeDir());
    const wsPort = await freePort();
    wss = new WebSocketServer({ host: '127.0.0.1', port: wsPort });
    wss.on('connection', (socket) => socket.on('message', (data) => messages.push(JSON.parse(String(data)))));
    const port = await freePort();
    mgr = await startNodeMgrProcess(
      path.join(root, 'mgr'),
      { listen: { host: '127.0.0.1', port: await freePort() }, stateDir: path.join(root, 'state'), runAs: TEST_RUN_AS, policy, nodes: [fakeClusterMgrEntry(root, port)] },
      60_000,
      ['--inspect', '--inspect-url', `ws://127.0.0.1:${wsPort}`],
    );
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await new Promise((r) => wss?.close(r));
    await removeTempDirs();
  });

  it("forwards the node actors' inspection events to a Stately WebSocket inspector, and still journals", async () => {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !messages.some((m) => m.type === '@xstate.snapshot' && m.snapshot?.value === 'stopped')) await new Promise((r) => setTimeout(r, 100));
    const actor = messages.find((m) => m.type === '@xstate.actor' && m.name?.startsWith('cluster_mgr-'));
    assert.ok(actor, `no actor registration among ${messages.length} messages`);
    assert.ok(messages.some((m) => m.type === '@xstate.snapshot' && m.snapshot?.value === 'stopped'), 'the snapshot of the settled node arrived');
    assert.ok(messages.some((m) => m.type === '@xstate.event'));
    const nodes = await api(mgr.url, 'GET', '/v1/nodes');
    const journal = await api(mgr.url, 'GET', `/v1/nodes/${nodes.body[0].port}`);
    assert.ok(journal.body.transitions.length >= 2, 'the supervisor still journals transitions');
  });
});

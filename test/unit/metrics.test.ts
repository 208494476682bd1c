// /metrics: the state numbers are a published contract; the text is valid exposition format.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { NODE_STATE_CODES, NodeMgrMetrics, nodeStateCode, type MetricsSources } from '../../src/metrics/metrics.ts';
import { machineGraph } from '../../src/http/inspector/machine-graph.ts';
import { nodeMachine, stateName } from '../../machines/node.machine.ts';
import type { NodeView } from '../../src/supervisor/supervisor.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { JobRecord } from '../../src/state/store.ts';
import { parseExposition, sampleValue } from '../support/prometheus.ts';

function node(over: Partial<NodeView>): NodeView {
  return {
    id: 'mysql-6001', kind: 'mysql', role: 'storage', port: 6001, ip: '127.0.0.1', user: 'u', password: 'secret', dir: '/d', dataDir: '/d/data',
    source: 'static', state: 'running', wanted: 'running', pid: 42, adopted: false, since: new Date().toISOString(), restarts: 0, paused: false,
    backoffMs: null, backoffUntil: null, lastExit: null, lastError: null, work: null, policy: parseConfig({}).policy, ...over,
  };
}

function fakeSources(nodes: NodeView[]) {
  const listeners = new Set<(j: JobRecord) => void>();
  const sources: MetricsSources = {
    nodes: () => nodes,
    ready: (id) => id === 'mysql-6001',
    usage: (id) => (id === 'mysql-6001' ? { diskUsed: 1000, diskFree: 5000, cpuPct: 12.5, memRss: 2048 } : { diskUsed: null, diskFree: null, cpuPct: null, memRss: null }),
    jobCounts: () => ({ running: 1, queued: 2 }),
    diskWalks: () => ({ runs: 3, dirs: 7 }),
    onJobUpdate: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
  return { sources, emit: (j: JobRecord) => listeners.forEach((l) => l(j)), listeners };
}

const job = (over: Partial<JobRecord>): JobRecord => ({
  id: 'j1', type: 'mysql_cmd', nodeId: null, params: {}, paramsHash: 'h', status: 'queued', phase: null, progress: null, result: null, info: null,
  createdAt: 1_000, updatedAt: 1_000, finishedAt: null, ...over,
});

describe('node state numbers', () => {
  it('are the published ones, forever (docs/metrics.md)', () => {
    assert.deepEqual(NODE_STATE_CODES, {
      adopting: 1, stopped: 2, initializing: 3, preflight: 4, starting: 5, running: 6, stopping: 7, crashed: 8, backoff: 9,
      held: 10, failed: 11, dropping: 12, dropped: 13, backing_up: 14, exporting: 15, importing: 16, restoring: 17,
    });
    assert.equal(nodeStateCode('no-such-state'), 0);
  });

  it('cover every state a node can be seen in (the transient `deciding` never is)', () => {
    const wire = machineGraph(nodeMachine, stateName).states.map((s) => s.wire).filter((w): w is string => w !== null && w !== 'deciding');
    for (const w of wire) assert.notEqual(nodeStateCode(w), 0, `state ${w} has no number`);
  });

  it('are documented in docs/metrics.md', () => {
    const doc = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
    for (const [state, code] of Object.entries(NODE_STATE_CODES)) assert.match(doc, new RegExp(`\\|\\s*${code}\\s*\\|\\s*\`${state}\``), `${state}=${code} missing`);
  });
});

describe('NodeMgrMetrics', () => {
  it('renders valid exposition text with node, job, backup and HTTP figures', async () => {
    const nodes = [node({}), node({ id: 'postgres-5401', kind: 'postgres', role: 'computer', port: 5401, state: 'backoff', restarts: 3, backoffUntil: Date.now() + 2000, lastExit: { code: null, signal: 'SIGKILL', at: 1_700_000_000_000, cause: 'killed_by_signal', detail: '', logTail: [] } })];
    const { sources, emit } = fakeSources(nodes);
    const m = new NodeMgrMetrics(sources);
    emit(job({ status: 'running', updatedAt: 2_000 }));
    emit(job({ status: 'succeeded', updatedAt: 5_000, finishedAt: 5_000 }));
    emit(job({ status: 'succeeded', updatedAt: 6_000, finishedAt: 5_000 })); // a repeated update is not counted twice
    m.observeBackup({ bytes: 5e8, seconds: 42, result: 'succeeded' });
    m.observeHttp('GET', '/v1/nodes/:port', 200, 0.003);
    const samples = parseExposition(await m.render());
    assert.equal(sampleValue(samples, 'nodemgr_node_state', { node: 'mysql-6001', kind: 'mysql', role: 'storage', port: '6001' }), 6);
    assert.equal(sampleValue(samples, 'nodemgr_node_state', { node: 'postgres-5401' }), 9);
    assert.equal(sampleValue(samples, 'nodemgr_node_ready', { node: 'mysql-6001' }), 1);
    assert.equal(sampleValue(samples, 'nodemgr_node_ready', { node: 'postgres-5401' }), 0);
    assert.equal(sampleValue(samples, 'nodemgr_node_restarts', { node: 'postgres-5401' }), 3);
    assert.equal(sampleValue(samples, 'nodemgr_node_last_exit_timestamp_seconds', { node: 'postgres-5401', signal: 'SIGKILL', code: '', cause: 'killed_by_signal' }), 1_700_000_000);
    assert.ok(sampleValue(samples, 'nodemgr_node_backoff_remaining_seconds', { node: 'postgres-5401' })! > 0);
    assert.equal(sampleValue(samples, 'nodemgr_node_cpu_percent', { node: 'mysql-6001' }), 12.5);
    assert.equal(sampleValue(samples, 'nodemgr_node_memory_rss_bytes', { node: 'mysql-6001' }), 2048);
    assert.equal(sampleValue(samples, 'nodemgr_node_cpu_percent', { node: 'postgres-5401' }), undefined, 'no sample, no series');
    assert.equal(sampleValue(samples, 'nodemgr_jobs', { status: 'queued' }), 2);
    assert.equal(sampleValue(samples, 'nodemgr_disk_usage_walks_total'), 3);
    assert.equal(sampleValue(samples, 'nodemgr_disk_usage_walked_dirs_total'), 7);
    assert.equal(sampleValue(samples, 'nodemgr_job_duration_seconds_count', { type: 'mysql_cmd', result: 'succeeded' }), 1);
    assert.equal(sampleValue(samples, 'nodemgr_job_duration_seconds_sum', { type: 'mysql_cmd', result: 'succeeded' }), 3, 'from start, not from queueing');
    assert.equal(sampleValue(samples, 'nodemgr_backup_size_bytes_sum', { kind: 'cold', result: 'succeeded' }), 5e8);
    assert.equal(sampleValue(samples, 'nodemgr_backup_duration_seconds_count', { kind: 'cold', result: 'succeeded' }), 1);
    assert.equal(sampleValue(samples, 'nodemgr_http_request_duration_seconds_count', { method: 'GET', route: '/v1/nodes/:port', status_code: '200' }), 1);
    assert.ok(sampleValue(samples, 'nodemgr_process_resident_memory_bytes')! > 0);
    m.close();
  });

  it('follows the node: the state gauge changes with it, and a dropped node leaves no series', async () => {
    const nodes = [node({ state: 'running' })];
    const m = new NodeMgrMetrics(fakeSources(nodes).sources);
    assert.equal(sampleValue(parseExposition(await m.render()), 'nodemgr_node_state', { node: 'mysql-6001' }), 6);
    nodes[0] = node({ state: 'crashed' });
    assert.equal(sampleValue(parseExposition(await m.render()), 'nodemgr_node_state', { node: 'mysql-6001' }), 8);
    nodes.pop();
    assert.equal(sampleValue(parseExposition(await m.render()), 'nodemgr_node_state', { node: 'mysql-6001' }), undefined);
    m.close();
  });

  it('has one series per state, restarts as a counter, cluster/shard labels and each node\'s last successful backup', async () => {
    const nodes = [node({ cluster: 'clust1', shard: 'shard1', restarts: 2 }), node({ id: 'postgres-5401', kind: 'postgres', role: 'computer', port: 5401, cluster: 'clust1', state: 'failed' })];
    const f = fakeSources(nodes);
    const m = new NodeMgrMetrics({
      ...f.sources,
      canBackUp: () => true,
      // Read once at start, newest first: what a restarted node-mgr remembers.
      succeededBackups: () => [job({ id: 'b2', type: 'coldbackup', nodeId: 'postgres-5401', status: 'succeeded', finishedAt: 1_700_000_500_000 }), job({ id: 'b1', type: 'coldbackup', nodeId: 'postgres-5401', status: 'succeeded', finishedAt: 1_700_000_000_000 })],
    });
    let samples = parseExposition(await m.render());
    const inState = samples.filter((x) => x.name === 'nodemgr_node_in_state' && x.labels.node === 'mysql-6001');
    assert.equal(inState.length, Object.keys(NODE_STATE_CODES).length);
    assert.deepEqual(inState.filter((x) => x.value === 1).map((x) => x.labels), [{ node: 'mysql-6001', cluster: 'clust1', shard: 'shard1', state: 'running' }]);
    assert.equal(sampleValue(samples, 'nodemgr_node_in_state', { node: 'postgres-5401', state: 'failed', cluster: 'clust1', shard: '' }), 1);
    assert.equal(sampleValue(samples, 'nodemgr_node_restarts_total', { node: 'mysql-6001', cluster: 'clust1', shard: 'shard1' }), 2);
    assert.equal(sampleValue(samples, 'nodemgr_node_state', { node: 'mysql-6001', cluster: 'clust1', shard: 'shard1' }), 6);
    assert.equal(sampleValue(samples, 'nodemgr_node_info', { node: 'postgres-5401', kind: 'postgres', cluster: 'clust1', shard: '' }), 1);
    assert.equal(sampleValue(samples, 'nodemgr_node_last_backup_success_timestamp_seconds', { node: 'postgres-5401' }), 1_700_000_500);
    assert.equal(sampleValue(samples, 'nodemgr_node_last_backup_success_timestamp_seconds', { node: 'mysql-6001' }), 0, 'never backed up');
    assert.ok(samples.every((x) => !x.name.endsWith('_total') || ['nodemgr_node_restarts_total', 'nodemgr_disk_usage_walks_total', 'nodemgr_disk_usage_walked_dirs_total', 'nodemgr_process_cpu_seconds_total', 'nodemgr_process_cpu_user_seconds_total', 'nodemgr_process_cpu_system_seconds_total'].includes(x.name)), 'only counters end in _total');
    f.emit(job({ id: 'b3', type: 'coldbackup', nodeId: 'mysql-6001', status: 'running', updatedAt: 1_700_000_900_000 }));
    f.emit(job({ id: 'b3', type: 'coldbackup', nodeId: 'mysql-6001', status: 'succeeded', finishedAt: 1_700_001_000_000 }));
    f.emit(job({ id: 'b4', type: 'coldbackup', nodeId: 'postgres-5401', status: 'failed', finishedAt: 1_700_002_000_000 }));
    samples = parseExposition(await m.render());
    assert.equal(sampleValue(samples, 'nodemgr_node_last_backup_success_timestamp_seconds', { node: 'mysql-6001' }), 1_700_001_000);
    assert.equal(sampleValue(samples, 'nodemgr_node_last_backup_success_timestamp_seconds', { node: 'postgres-5401' }), 1_700_000_500, 'a failed backup changes nothing');
    m.close();
  });

  it('unsubscribes from the job runner on close', () => {
    const f = fakeSources([]);
    const m = new NodeMgrMetrics(f.sources);
    assert.equal(f.listeners.size, 1);
    m.close();
    assert.equal(f.listeners.size, 0);
  });
});

describe('the exposition checker', () => {
  it('rejects what Prometheus would reject', () => {
    assert.throws(() => parseExposition('# TYPE a gauge\na{b="c"} x\n'), /not a valid sample/);
    assert.throws(() => parseExposition('a 1\n'), /no TYPE/);
    assert.throws(() => parseExposition('# TYPE a gauge\na{b=c} 1\n'), /not a valid sample/);
    assert.equal(parseExposition('# HELP a x\n# TYPE a gauge\na{b="q\\"x"} +Inf\n')[0]!.labels.b, 'q"x');
  });
});

describe('binlog archive metrics', () => {
  it('show each archiving node\'s lag, pending files and health, and count what was archived', async () => {
    const nodes = [node({ cluster: 'c1', shard: 's1' }), node({ id: 'mysql-6002', port: 6002 })];
    const { sources } = fakeSources(nodes);
    const view = (over: Record<string, unknown>) => ({
      enabled: true, state: 'error', detail: 'x', archive: 'local:/a', current_file: 'binlog.000009', pending_files: ['binlog.000007', 'binlog.000008'], pending_bytes: 3000,
      lag_seconds: 42, lag_bytes: 4096, archived_files: 1, archived_bytes: 10, last_pass_at: null,
      last_archived: { file: 'binlog.000006', archived_at: '2026-01-01T00:00:10.000Z', last_event_time: '2026-01-01T00:00:09.000Z', size: 10 }, ...over,
    });
    const m = new NodeMgrMetrics({
      ...sources,
      binlogArchive: (n) => (n.id === 'mysql-6001' ? view({}) : view({ enabled: false, state: 'off' })) as never,
    });
    m.observeBinlogArchived('mysql-6001', 1000);
    m.observeBinlogArchived('mysql-6001', 24);
    m.observeBinlogArchiveError('mysql-6001');
    const samples = parseExposition(await m.render());
    const at = { node: 'mysql-6001', cluster: 'c1', shard: 's1' };
    assert.equal(sampleValue(samples, 'nodemgr_binlog_archive_lag_seconds', at), 42);
    assert.equal(sampleValue(samples, 'nodemgr_binlog_archive_lag_bytes', at), 4096);
    assert.equal(sampleValue(samples, 'nodemgr_binlog_archive_pending_files', at), 2);
    assert.equal(sampleValue(samples, 'nodemgr_binlog_archive_pending_bytes', at), 3000);
    assert.equal(sampleValue(samples, 'nodemgr_binlog_archive_ok', at), 0);
    assert.equal(sampleValue(samples, 'nodemgr_binlog_archive_last_archived_timestamp_seconds', at), Date.parse('2026-01-01T00:00:10Z') / 1000);
    assert.equal(sampleValue(samples, 'nodemgr_binlog_archived_files_total', { node: 'mysql-6001' }), 2);
    assert.equal(sampleValue(samples, 'nodemgr_binlog_archived_bytes_total', { node: 'mysql-6001' }), 1024);
    assert.equal(sampleValue(samples, 'nodemgr_binlog_archive_errors_total', { node: 'mysql-6001' }), 1);
    assert.equal(sampleValue(samples, 'nodemgr_binlog_archive_lag_seconds', { node: 'mysql-6002' }), undefined, 'a node without archiving has no series');
    m.close();
  });
});

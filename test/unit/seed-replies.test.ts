// The prepared seed replies (src/http/seed-replies.ts): a text is kept exactly as long as a fresh
// build would give the same bytes, and rebuilt as soon as anything it shows may have moved.
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { SeedReplies, nextUptimeChange } from '../../src/http/seed-replies.ts';
import { getNodeText, ORIGINAL_MEMBER_FIELDS } from '../../src/http/legacy-nodes.ts';
import { SEED_BODY_MAX } from '../../src/http/seed-read.ts';
import type { HttpDeps } from '../../src/http/deps.ts';
import type { NodeView } from '../../src/supervisor/supervisor.ts';
import type { JobRecord } from '../../src/state/store.ts';

const T0 = Date.parse('2026-12-01T00:00:00.000Z');

function node(over: Partial<NodeView>): NodeView {
  return {
    id: 'mysql-6001',
    kind: 'mysql',
    role: 'storage',
    port: 6001,
    ip: '127.0.0.1',
    user: 'u',
    password: 'secret',
    dir: '/n',
    dataDir: '/n/data',
    source: 'static',
    state: 'running',
    wanted: 'running',
    pid: 42,
    adopted: false,
    since: new Date(T0 - 10_300).toISOString(),
    restarts: 0,
    paused: false,
    backoffMs: null,
    backoffUntil: null,
    lastExit: null,
    lastError: null,
    work: null,
    policy: {} as NodeView['policy'],
    ...over,
  };
}

/** Deps whose sources count their reads and can be changed by hand. */
function fakeDeps() {
  const reads = { list: 0, info: 0 };
  const state = { nodes: [node({})], lagBehind: null as number | null, jobs: new Map<string, JobRecord>() };
  const deps = {
    config: { security: { exposeSecrets: false }, binlogArchive: { enabled: true } },
    supervisor: {
      changes: 0,
      list: () => {
        reads.list++;
        return state.nodes;
      },
      spec: (id: string) => ({ id }),
      is: () => true,
    },
    usage: { changes: 0, get: () => ({ diskUsed: 1024, diskFree: 2048, cpuPct: 1.5, memRss: 100 }) },
    host: {
      changes: 0,
      ready: () => true,
      factsUntil: () => Date.now() + 1000,
      legacyInfoNow: (counts: object) => {
        reads.info++;
        return { cpu_used: '1.00%', ...counts, load: Date.now() };
      },
    },
    binlogArchive: {
      changes: 0,
      view: () => ({ enabled: true, state: 'ok', last_archived: null, lag_bytes: 0, lag_seconds: state.lagBehind === null ? 0 : Math.round((Date.now() - state.lagBehind) / 1000) }),
      nextLagChange: (now: number) => (state.lagBehind === null ? Infinity : state.lagBehind + Math.round((now - state.lagBehind) / 1000) * 1000 + 500),
    },
    jobs: { get: (id: string) => state.jobs.get(id) },
  };
  return { deps: deps as unknown as HttpDeps & typeof deps, reads, state };
}

describe('prepared seed replies', () => {
  beforeEach(() => mock.timers.enable({ apis: ['Date'], now: T0 }));
  afterEach(() => mock.timers.reset());

  it('keeps the get_node text while nothing it shows moves, and says what a fresh build says', () => {
    const { deps, reads } = fakeDeps();
    const replies = new SeedReplies(deps);
    const first = replies.getNode();
    assert.equal(JSON.parse(first).storage_node0.uptime_s, 10);
    assert.equal(replies.getNode(), first);
    assert.equal(reads.list, 1, 'built once');
    // Another node_type is another text.
    assert.deepEqual(Object.keys(JSON.parse(replies.getNode('meta_node'))), []);
    assert.equal(reads.list, 2);
  });

  it('rebuilds get_node after any change the supervisor, usage, archive or a reload counts', () => {
    const { deps, reads } = fakeDeps();
    const replies = new SeedReplies(deps);
    replies.getNode();
    const changes: Array<[string, () => void]> = [
      ['a node snapshot', () => deps.supervisor.changes++],
      ['a usage pass', () => deps.usage.changes++],
      ['a binlog archive pass', () => deps.binlogArchive.changes++],
      ['exposeSecrets reloaded', () => (deps.config.security.exposeSecrets = true)],
      ['binlogArchive reloaded', () => (deps.config.binlogArchive = { ...deps.config.binlogArchive, enabled: false })],
      ['a host sample (get_node does not show it, but one counter is simpler)', () => deps.host.changes++],
    ];
    for (const [what, change] of changes) {
      const before = reads.list;
      change();
      replies.getNode();
      assert.equal(reads.list, before + 1, what);
      replies.getNode();
      assert.equal(reads.list, before + 1, `${what}: once`);
    }
    assert.equal(JSON.parse(replies.getNode()).storage_node0.pwd, 'secret');
  });

  it('rebuilds get_node at the ms a running node\'s rounded uptime_s moves on, not before', () => {
    const { deps, reads } = fakeDeps();
    const replies = new SeedReplies(deps);
    // since = T0 − 10.3 s: uptime 10 until T0 + 0.2 s, 11 from there.
    assert.equal(JSON.parse(replies.getNode()).storage_node0.uptime_s, 10);
    mock.timers.tick(199);
    assert.equal(JSON.parse(replies.getNode()).storage_node0.uptime_s, 10);
    assert.equal(reads.list, 1);
    mock.timers.tick(1);
    assert.equal(JSON.parse(replies.getNode()).storage_node0.uptime_s, 11);
    assert.equal(reads.list, 2);
  });

  it('rebuilds get_node when an archive\'s lag_seconds moves on, and when the clock is set back', () => {
    const { deps, reads, state } = fakeDeps();
    state.nodes = [node({ state: 'stopped' })];
    state.lagBehind = T0 - 5_200;
    const replies = new SeedReplies(deps);
    const lag = () => JSON.parse(replies.getNode()).storage_node0.binlog_archive.lag_seconds;
    assert.equal(lag(), 5);
    mock.timers.tick(299);
    assert.equal(lag(), 5);
    assert.equal(reads.list, 1);
    mock.timers.tick(1);
    assert.equal(lag(), 6);
    mock.timers.setTime(T0 - 60_000);
    assert.equal(lag(), Math.round((T0 - 60_000 - state.lagBehind) / 1000));
    assert.equal(reads.list, 3);
  });

  it('keeps get_info until a host sample, a node change or the next second of its host facts', () => {
    const { deps, reads } = fakeDeps();
    const replies = new SeedReplies(deps);
    const first = replies.getInfo();
    assert.equal(replies.getInfo(), first);
    assert.equal(reads.info, 1);
    deps.host.changes++;
    replies.getInfo();
    assert.equal(reads.info, 2);
    deps.supervisor.changes++;
    replies.getInfo();
    assert.equal(reads.info, 3);
    mock.timers.tick(1000);
    assert.notEqual(replies.getInfo(), first);
    assert.equal(reads.info, 4);
    deps.host.ready = () => false;
    assert.equal(replies.getInfo(), undefined, 'no text before the first samples: the caller waits for them');
  });

  it('keeps a get_status text for a job record, and gives the new record\'s text once it is replaced', () => {
    const { deps, state } = fakeDeps();
    const replies = new SeedReplies(deps);
    assert.deepEqual(JSON.parse(replies.getStatus('j')), { job_id: 'j', job_status: 'none', result: 'error', info: 'no such job' });
    const record: JobRecord = { id: 'j', type: 'delete', nodeId: null, params: {}, paramsHash: 'h', status: 'running', phase: 'copying', progress: null, result: null, info: null, createdAt: T0, updatedAt: T0, finishedAt: null };
    state.jobs.set('j', record);
    const running = replies.getStatus('j');
    assert.equal(JSON.parse(running).job_status, 'copying');
    assert.equal(replies.getStatus('j'), running);
    state.jobs.set('j', { ...record, status: 'succeeded', updatedAt: T0 + 5 });
    assert.equal(JSON.parse(replies.getStatus('j')).result, 'succeed');
  });

  it('finds the next uptime change of the running nodes only', () => {
    assert.equal(nextUptimeChange([node({ state: 'stopped' })], T0), Infinity);
    assert.equal(nextUptimeChange([node({}), node({ since: new Date(T0 - 100).toISOString() })], T0), T0 + 200);
  });
});

/** `count` storage nodes as a host would have them: data dirs of a usual length, running, one exit each. */
function storageNodes(count: number): NodeView[] {
  return Array.from({ length: count }, (_, i) =>
    node({
      id: `mysql-${6001 + i}`,
      port: 6001 + i,
      user: 'pgx',
      dir: `/var/lib/node-mgr/nodes/mysql-${6001 + i}`,
      dataDir: `/var/lib/node-mgr/nodes/mysql-${6001 + i}/data`,
      cluster: 'clust1',
      shard: `shard${i}`,
      pid: 30_000 + i,
      restarts: 1,
      lastExit: { code: null, signal: 'SIGKILL', cause: 'killed', detail: 'killed by a signal (SIGKILL)' } as NodeView['lastExit'],
    }),
  );
}

const bytes = (text: string) => Buffer.byteLength(text);

/** The seed get_node text for `count` running storage nodes. */
function getNodeOf(count: number): string {
  const { deps, state } = fakeDeps();
  state.nodes = storageNodes(count);
  return new SeedReplies(deps).getNode();
}

describe('the seed get_node reply fitted to the original clients\' single read (PROTOCOL §1)', () => {
  beforeEach(() => mock.timers.enable({ apis: ['Date'], now: T0 }));
  afterEach(() => mock.timers.reset());

  it('sends every field while the reply fits', () => {
    const text = getNodeOf(2);
    assert.ok(bytes(text) <= SEED_BODY_MAX, `${bytes(text)} bytes`);
    const reply = JSON.parse(text);
    assert.deepEqual(Object.keys(reply), ['storage_node0', 'storage_node1']);
    assert.equal(reply.storage_node1.kind, 'mysql');
    assert.equal(reply.storage_node1.state, 'running');
    assert.equal(reply.storage_node1.last_exit.signal, 'SIGKILL');
    assert.equal(reply.storage_node1.binlog_archive.state, 'ok');
  });

  it('sends the original fields only, in their order, when the whole reply would not fit', () => {
    // About 200 bytes a member with these 40-byte paths: 8 fit, which whole would take 3.7 KB.
    const text = getNodeOf(8);
    assert.ok(bytes(text) <= SEED_BODY_MAX, `${bytes(text)} bytes`);
    const reply = JSON.parse(text);
    assert.equal(Object.keys(reply).length, 8, 'every node is there');
    for (const member of Object.values(reply)) assert.deepEqual(Object.keys(member as object), ORIGINAL_MEMBER_FIELDS);
    assert.deepEqual(reply.storage_node7, { ip: '127.0.0.1', port: 6008, user: 'pgx', pwd: '******', path: '/var/lib/node-mgr/nodes/mysql-6008/data', disk_used: '1.0K', disk_free: '2.0K', cluster: 'clust1', shard: 'shard7' });
  });

  it('decides per node_type: one kind can fit whole while all of them do not', () => {
    const { deps, state } = fakeDeps();
    state.nodes = [...storageNodes(10), node({ id: 'postgres-5401', kind: 'postgres', role: 'computer', port: 5401, cluster: 'clust1' })];
    const replies = new SeedReplies(deps);
    assert.equal(JSON.parse(replies.getNode()).computer_node0.kind, undefined);
    assert.equal(JSON.parse(replies.getNode('computer_node')).computer_node0.kind, 'postgres');
  });

  it('sends the original fields even when they do not fit either, adding nothing', () => {
    const text = getNodeOf(30);
    assert.ok(bytes(text) > SEED_BODY_MAX, `${bytes(text)} bytes`);
    const reply = JSON.parse(text);
    assert.deepEqual(Object.keys(reply), Array.from({ length: 30 }, (_, i) => `storage_node${i}`));
    for (const member of Object.values(reply)) assert.deepEqual(Object.keys(member as object), ORIGINAL_MEMBER_FIELDS);
  });

  it('keeps a trimmed text past the uptime and lag seconds, which it does not show, and decides again at a change', () => {
    const { deps, state, reads } = fakeDeps();
    state.nodes = storageNodes(10);
    state.lagBehind = T0 - 5_200;
    const replies = new SeedReplies(deps);
    const trimmed = replies.getNode();
    mock.timers.tick(60_000);
    assert.equal(replies.getNode(), trimmed);
    assert.equal(reads.list, 1, 'built once');
    // Fewer nodes: the whole reply fits again, every field back.
    state.nodes = storageNodes(2);
    deps.supervisor.changes++;
    assert.equal(JSON.parse(replies.getNode()).storage_node0.uptime_s, 70);
    assert.equal(reads.list, 2);
  });

  it('fits at exactly the body budget, trims one byte past it', () => {
    const member = (path: string) => ({ ip: '127.0.0.1', port: 6001, path, state: 'running' });
    const base = bytes(JSON.stringify({ storage_node0: member('') }));
    const fits = getNodeText({ storage_node0: member('x'.repeat(SEED_BODY_MAX - base)) });
    assert.equal(bytes(fits.text), SEED_BODY_MAX);
    assert.equal(fits.trimmed, false);
    const over = getNodeText({ storage_node0: member('x'.repeat(SEED_BODY_MAX - base + 1)) });
    assert.equal(over.trimmed, true);
    assert.deepEqual(Object.keys(JSON.parse(over.text).storage_node0), ['ip', 'port', 'path']);
  });
});

import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import {
  openStateStore,
  redactSecrets,
  canonicalJson,
  paramsHash,
  toStateStoreError,
  StateStoreError,
  SCHEMA_VERSION,
  STATE_FILE_NAME,
  type StateStore,
} from '../../src/state/store.ts';
import { nodeEntrySchema } from '../../src/config/schema.ts';

const CHILD = path.resolve(import.meta.dirname, '../support/job-child.ts');
const dirs: string[] = [];
const stores: StateStore[] = [];

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'node-mgr-store-'));
  dirs.push(dir);
  return dir;
}

function open(dir = tempDir()): StateStore {
  const store = openStateStore(dir);
  stores.push(store);
  return store;
}

afterEach(() => {
  for (const store of stores.splice(0)) store.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const entry = nodeEntrySchema.parse({ kind: 'mysql', role: 'storage', port: 6001, dir: '/srv/mysql/6001', password: 'hunter2' });

/** Runs test/support/job-child.ts; resolves with its stdout once it exits. */
function runChild(args: string[], options: { uid?: number; gid?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`job-child exited ${code}: ${err}`))));
  });
}

describe('state store: the file', () => {
  it('creates <stateDir>/node-mgr.sqlite in WAL mode at the current schema version, readable by its owner only', () => {
    const dir = tempDir();
    open(dir).close();
    const file = path.join(dir, STATE_FILE_NAME);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const db = new Database(file, { readonly: true });
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    db.close();
  });

  it('reopens an existing file without migrating it again', () => {
    const dir = tempDir();
    const first = open(dir);
    first.upsertNode({ id: 'mysql-6001', port: 6001, entry, source: 'static' });
    first.close();
    assert.equal(open(dir).listNodes().length, 1);
  });

  it('refuses a file written by a newer schema, saying so', () => {
    const dir = tempDir();
    open(dir).close();
    const db = new Database(path.join(dir, STATE_FILE_NAME));
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    assert.throws(() => openStateStore(dir), (err: unknown) => {
      assert.ok(err instanceof StateStoreError);
      assert.match(err.message, /newer node-mgr/);
      return true;
    });
  });

  it('reports a read-only state file as a StateStoreError at open, not at the first write', async () => {
    const dir = tempDir();
    open(dir).close();
    chmodSync(path.join(dir, STATE_FILE_NAME), 0o444);
    // root writes through file modes: as root, the check runs in a child as an unprivileged user.
    const asRoot = process.getuid?.() === 0;
    if (asRoot) chmodSync(dir, 0o777);
    const out = await runChild([dir, 'open'], asRoot ? { uid: 65534, gid: 65534 } : {});
    const reply = JSON.parse(out.trim()) as { ok: boolean; name: string; code: string; message: string };
    assert.equal(reply.ok, false);
    assert.equal(reply.name, 'StateStoreError');
    assert.match(reply.code, /^SQLITE_READONLY/);
    assert.match(reply.message, /node-mgr could not .* state file .*node-mgr\.sqlite: the state file or its directory is read-only/);
  });

  it('reports a full disk as a StateStoreError naming the action and the file', () => {
    // SQLite's page cap produces the very error a full disk does (SQLITE_FULL).
    const file = path.join(tempDir(), 'full.sqlite');
    const db = new Database(file);
    db.exec('CREATE TABLE t (x TEXT)');
    db.pragma('max_page_count = 3');
    let thrown: unknown;
    try {
      db.prepare('INSERT INTO t VALUES (?)').run('x'.repeat(100_000));
    } catch (err) {
      thrown = err;
    }
    db.close();
    const err = toStateStoreError(thrown, file, 'record job j1');
    assert.equal(err.code, 'SQLITE_FULL');
    assert.match(err.message, /^node-mgr could not record job j1 in its state file .*full\.sqlite: the disk holding it is full/);
  });

  it('keeps every committed write and an intact file when its process is killed with SIGKILL mid-write', async () => {
    const dir = tempDir();
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, 'hammer'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      child.on('exit', (code) => reject(new Error(`hammer exited early (${code})`)));
    });
    await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const store = open(dir);
    const db = new Database(path.join(dir, STATE_FILE_NAME), { readonly: true });
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    db.close();
    const job = store.getJob('hammer');
    const transitions = store.recentTransitions('mysql-6001', 1);
    assert.ok(job && job.progress && (job.progress.bytes_done ?? 0) >= 199);
    // Each write is its own transaction, in order: the kill may fall between a transition and the
    // progress write after it, never inside either.
    const done = job.progress.bytes_done ?? 0;
    assert.ok([`#${done}`, `#${done + 1}`].includes(transitions[0].detail ?? ''), `${transitions[0].detail} vs ${done}`);
  });
});

describe('state store: nodes', () => {
  it('stores a node with its config entry and wanted state, and keeps wanted across re-registration', () => {
    const dir = tempDir();
    const store = open(dir);
    const created = store.upsertNode({ id: 'mysql-6001', port: 6001, entry, source: 'created', wanted: 'running' });
    assert.equal(created.wanted, 'running');
    assert.equal(created.restarts, 0);
    assert.deepEqual(created.entry, entry);

    store.setWanted('mysql-6001', 'stopped');
    store.setRestarts('mysql-6001', 3);
    store.upsertNode({ id: 'mysql-6001', port: 6001, entry: { ...entry, cluster: 'c1' }, source: 'static' });
    store.close();

    const node = open(dir).getNode('mysql-6001');
    assert.equal(node?.wanted, 'stopped');
    assert.equal(node?.restarts, 3);
    assert.equal(node?.entry.cluster, 'c1');
    assert.equal(node?.source, 'static');
  });

  it('defaults a new node to wanted=stopped and lists nodes by port', () => {
    const store = open();
    store.upsertNode({ id: 'postgres-5401', port: 5401, entry: { ...entry, kind: 'postgres', port: 5401 }, source: 'discovered' });
    store.upsertNode({ id: 'mysql-6001', port: 6001, entry, source: 'static' });
    assert.deepEqual(store.listNodes().map((n) => [n.id, n.wanted]), [['postgres-5401', 'stopped'], ['mysql-6001', 'stopped']]);
  });

  it('refuses a second node on a port already taken, in a sentence', () => {
    const store = open();
    store.upsertNode({ id: 'mysql-6001', port: 6001, entry, source: 'static' });
    assert.throws(
      () => store.upsertNode({ id: 'postgres-6001', port: 6001, entry, source: 'static' }),
      /could not record node postgres-6001 .* conflicts with a record already stored/,
    );
  });

  it('says which node is unknown when setting its wanted state', () => {
    assert.throws(() => open().setWanted('mysql-9', 'running'), (err: unknown) => err instanceof StateStoreError && /mysql-9/.test(err.message));
  });

  it('removes a node together with its transition journal', () => {
    const store = open();
    store.upsertNode({ id: 'mysql-6001', port: 6001, entry, source: 'static' });
    store.recordTransition({ nodeId: 'mysql-6001', from: 'stopped', to: 'starting', event: 'START' });
    assert.equal(store.removeNode('mysql-6001'), true);
    assert.equal(store.getNode('mysql-6001'), undefined);
    assert.deepEqual(store.recentTransitions('mysql-6001', 10), []);
    assert.equal(store.removeNode('mysql-6001'), false);
  });
});

describe('state store: transition journal', () => {
  it('returns a node’s latest transitions newest first', () => {
    const store = open();
    store.recordTransition({ nodeId: 'mysql-6001', from: null, to: 'adopting', event: 'xstate.init', at: 1 });
    store.recordTransition({ nodeId: 'mysql-6001', from: 'adopting', to: 'running', event: 'ALIVE', at: 2 });
    store.recordTransition({ nodeId: 'mysql-6002', from: 'adopting', to: 'stopped', event: 'ABSENT', at: 2 });
    store.recordTransition({ nodeId: 'mysql-6001', from: 'running', to: 'crashed', event: 'PROCESS_EXITED', at: 3, detail: 'signal SIGKILL' });
    const recent = store.recentTransitions('mysql-6001', 2);
    assert.deepEqual(recent.map((t) => [t.from, t.to, t.event, t.at, t.detail]), [
      ['running', 'crashed', 'PROCESS_EXITED', 3, 'signal SIGKILL'],
      ['adopting', 'running', 'ALIVE', 2, null],
    ]);
  });

  it('prunes to the newest N transitions of every node', () => {
    const store = open();
    for (let i = 0; i < 5; i++) store.recordTransition({ nodeId: 'a', from: null, to: `s${i}`, event: 'E' });
    for (let i = 0; i < 2; i++) store.recordTransition({ nodeId: 'b', from: null, to: `s${i}`, event: 'E' });
    assert.equal(store.pruneTransitions(3), 2);
    assert.deepEqual(store.recentTransitions('a', 10).map((t) => t.to), ['s4', 's3', 's2']);
    assert.equal(store.recentTransitions('b', 10).length, 2);
  });
});

describe('state store: jobs', () => {
  const params = { s_ip: '127.0.0.1', s_pwd: 'hunter2', d: { Password: 'x', list: [{ api_token: 't' }, 'plain'] }, n: 1 };

  it('stores params with every secret redacted, at any depth, and reads them back so', () => {
    const dir = tempDir();
    const store = open(dir);
    const job = store.insertJob({ id: 'j1', type: 'coldbackup', params, paramsHash: paramsHash(params) });
    const expected = { s_ip: '127.0.0.1', s_pwd: '******', d: { Password: '******', list: [{ api_token: '******' }, 'plain'] }, n: 1 };
    assert.deepEqual(job.params, expected);
    assert.equal(job.status, 'queued');
    const raw = new Database(path.join(dir, STATE_FILE_NAME), { readonly: true });
    const row = raw.prepare('SELECT params FROM jobs').get() as { params: string };
    raw.close();
    assert.doesNotMatch(row.params, /hunter2/);
  });

  it('updates status, phase, progress, result and info, and lists with filters newest first', () => {
    const store = open();
    store.insertJob({ id: 'j1', type: 'coldbackup', params: {}, paramsHash: 'h', createdAt: 1 });
    store.insertJob({ id: 'j2', type: 'delete', params: {}, paramsHash: 'h', createdAt: 2 });
    store.updateJob('j1', { status: 'running', phase: 'copying', progress: { phase: 'copying', bytes_done: 5, bytes_total: 10, pct: 50 } });
    store.updateJob('j2', { status: 'succeeded', result: { purged: ['binlog.000001'], password: 'p' }, finishedAt: 3 });
    const j1 = store.getJob('j1');
    assert.equal(j1?.phase, 'copying');
    assert.deepEqual(j1?.progress, { phase: 'copying', bytes_done: 5, bytes_total: 10, pct: 50 });
    assert.deepEqual(store.getJob('j2')?.result, { purged: ['binlog.000001'], password: '******' });
    assert.deepEqual(store.listJobs().map((j) => j.id), ['j2', 'j1']);
    assert.deepEqual(store.listJobs({ status: 'running' }).map((j) => j.id), ['j1']);
    assert.deepEqual(store.listJobs({ type: 'delete' }).map((j) => j.id), ['j2']);
    assert.deepEqual(store.listJobs({ limit: 1 }).map((j) => j.id), ['j2']);
  });

  it('marks queued and running jobs interrupted, leaving finished ones alone', () => {
    const store = open();
    for (const id of ['q', 'r', 's']) store.insertJob({ id, type: 't', params: {}, paramsHash: 'h' });
    store.updateJob('r', { status: 'running' });
    store.updateJob('s', { status: 'succeeded', finishedAt: 1 });
    assert.deepEqual(store.interruptUnfinishedJobs('interrupted by node-mgr restart').sort(), ['q', 'r']);
    assert.equal(store.getJob('r')?.status, 'interrupted');
    assert.equal(store.getJob('r')?.info, 'interrupted by node-mgr restart');
    assert.ok(store.getJob('r')?.finishedAt);
    assert.equal(store.getJob('s')?.status, 'succeeded');
  });

  it('prunes finished jobs by age and count but never a queued or running one', () => {
    const store = open();
    for (const id of ['old', 'mid', 'new', 'queued', 'running']) store.insertJob({ id, type: 't', params: {}, paramsHash: 'h' });
    store.updateJob('old', { status: 'failed', finishedAt: 100 });
    store.updateJob('mid', { status: 'succeeded', finishedAt: 200 });
    store.updateJob('new', { status: 'cancelled', finishedAt: 300 });
    store.updateJob('running', { status: 'running' });
    assert.equal(store.pruneJobs({ finishedBefore: 150, keep: 1 }), 2);
    assert.deepEqual(store.listJobs().map((j) => j.id).sort(), ['new', 'queued', 'running']);
    assert.equal(store.pruneJobs({ finishedBefore: Number.MAX_SAFE_INTEGER, keep: 0 }), 1);
    assert.deepEqual(store.listJobs().map((j) => j.id).sort(), ['queued', 'running']);
  });

  it('answers a repeated read of a job without the file, and every write shows in the next read', () => {
    const dir = tempDir();
    const store = open(dir);
    const read = (id: string) => store.getJob(id);
    // A read that found nothing is kept too, until the job is inserted.
    assert.equal(read('j'), undefined);
    store.insertJob({ id: 'j', type: 't', params: {}, paramsHash: 'h' });
    const first = read('j');
    assert.equal(first?.status, 'queued');
    assert.equal(read('j'), first, 'the second read is the first one kept');
    assert.throws(() => ((first as { status: string }).status = 'failed'), TypeError, 'a kept read cannot be changed by a reader');
    store.updateJob('j', { status: 'succeeded', info: 'done', finishedAt: 5 });
    assert.equal(read('j')?.info, 'done');
    // Proof that reads come from memory: the row changed behind the store's back is not seen…
    const raw = new Database(path.join(dir, STATE_FILE_NAME));
    raw.prepare("UPDATE jobs SET info = 'changed behind its back' WHERE id = 'j'").run();
    raw.close();
    assert.equal(read('j')?.info, 'done');
    // …until the store itself writes jobs: interrupting and pruning drop every kept read.
    store.interruptUnfinishedJobs('x');
    assert.equal(read('j')?.info, 'changed behind its back');
    store.pruneJobs({ finishedBefore: 10, keep: 0 });
    assert.equal(read('j'), undefined);
  });
});

describe('secrets and fingerprints', () => {
  it('redacts keys matching pwd|password|passwd|secret|token in objects and arrays, without touching the input', () => {
    const input = { s_pwd: 'a', nested: [{ passwd: 'b', secretKey: { deep: 1 } }], user: 'root' };
    assert.deepEqual(redactSecrets(input), { s_pwd: '******', nested: [{ passwd: '******', secretKey: '******' }], user: 'root' });
    assert.equal(input.s_pwd, 'a');
  });

  it('fingerprints bodies independently of key order', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: 2, c: [3, { f: 1, e: 0 }] } }), '{"a":{"c":[3,{"e":0,"f":1}],"d":2},"b":1}');
    assert.equal(paramsHash({ a: 1, b: 2 }), paramsHash({ b: 2, a: 1 }));
    assert.notEqual(paramsHash({ s_pwd: 'x' }), paramsHash({ s_pwd: 'y' }), 'the hash covers the unredacted secrets');
  });
});

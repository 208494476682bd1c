// node-mgr's durable state: the nodes it supervises, their transition journal and the job records,
// in one SQLite file (better-sqlite3, WAL). Every write is one small synchronous transaction, so a
// `kill -9` at any moment leaves either the old or the new row, never half of one.
//
// Durability choice: WAL with synchronous=NORMAL. A commit is appended to the WAL before
// better-sqlite3 returns, so it survives the death of node-mgr itself (kill -9, crash, OOM kill):
// the kernel still holds and writes the pages. Only an OS crash or power loss can lose the last
// few commits (never corrupt the file). FULL would add an fsync to every commit, on the event loop
// (better-sqlite3 is synchronous), and a cold backup saturating the same disk can make one fsync
// take hundreds of milliseconds, stalling every HTTP reply for a guarantee the databases beside us
// do not have either once the power is gone.
import { createHash } from 'node:crypto';
import { accessSync, constants, mkdirSync, chmodSync, existsSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { nodeEntrySchema, type NodeEntry } from '../config/schema.ts';
import type { KindedError } from '../error-kind.ts';

export const STATE_FILE_NAME = 'node-mgr.sqlite';

/** A state file problem an operator can act on: what failed, on which file, and why. */
export class StateStoreError extends Error implements KindedError {
  readonly kind = 'unavailable';
  constructor(
    message: string,
    /** SQLite's extended error code (`SQLITE_FULL`, `SQLITE_READONLY`…) or the errno code. */
    readonly code: string | undefined,
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StateStoreError';
  }
}

// ---------------------------------------------------------------------------------------------
// Record types

export type Wanted = 'running' | 'stopped';
export type NodeSource = 'static' | 'created' | 'discovered';

export interface NodeRecord {
  /** `<kind>-<port>`, e.g. `mysql-6001`. */
  id: string;
  port: number;
  entry: NodeEntry;
  wanted: Wanted;
  restarts: number;
  source: NodeSource;
  createdAt: number;
  updatedAt: number;
}

export interface NodeUpsert {
  id: string;
  port: number;
  entry: NodeEntry;
  source: NodeSource;
  /** Kept as stored when the node already exists and this is absent. Default for new nodes: `stopped`. */
  wanted?: Wanted;
}

export interface TransitionRecord {
  id: number;
  nodeId: string;
  from: string | null;
  to: string;
  event: string;
  /** ms since the epoch. */
  at: number;
  detail: string | null;
}

export interface TransitionInput {
  nodeId: string;
  from: string | null;
  to: string;
  event: string;
  at?: number;
  detail?: string | null;
}

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const UNFINISHED_JOB_STATUSES: readonly JobStatus[] = ['queued', 'running'];

/** Progress as it goes on the wire (PROTOCOL §2), hence the snake_case keys. */
export interface JobProgress {
  phase: string;
  bytes_done?: number;
  bytes_total?: number;
  pct?: number;
  eta_s?: number;
  /** Bytes per second in the current phase. */
  rate_bps?: number;
  /** Files and log events (point-in-time restore: archived binlogs fetched and replayed). */
  files_done?: number;
  files_total?: number;
  events?: number;
  /** A replica's lag while a rebuild catches up: Seconds_Behind_Master, transactions (GTID distance) and primary binlog bytes; null when unknown. */
  seconds_behind?: number | null;
  trx_behind?: number | null;
  bytes_behind?: number | null;
}

export interface JobRecord {
  id: string;
  type: string;
  nodeId: string | null;
  /** The submitted params with every secret replaced by `******`. */
  params: unknown;
  /** sha256 of the canonical, unredacted submission: the idempotency key's fingerprint. */
  paramsHash: string;
  status: JobStatus;
  phase: string | null;
  progress: JobProgress | null;
  result: unknown;
  info: string | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

export interface JobInsert {
  id: string;
  type: string;
  nodeId?: string | null;
  /** Unredacted: the store redacts before writing. */
  params: unknown;
  paramsHash: string;
  createdAt?: number;
}

export interface JobUpdate {
  status?: JobStatus;
  phase?: string | null;
  progress?: JobProgress | null;
  result?: unknown;
  info?: string | null;
  finishedAt?: number | null;
}

export interface JobListQuery {
  limit?: number;
  status?: JobStatus;
  type?: string;
}

export interface StateStore {
  readonly file: string;

  upsertNode(node: NodeUpsert): NodeRecord;
  getNode(id: string): NodeRecord | undefined;
  listNodes(): NodeRecord[];
  setWanted(id: string, wanted: Wanted): void;
  setRestarts(id: string, restarts: number): void;
  /** Forgets the node and its journal. Returns whether it existed. */
  removeNode(id: string): boolean;

  recordTransition(t: TransitionInput): number;
  /** The node's latest transitions, newest first. */
  recentTransitions(nodeId: string, limit: number): TransitionRecord[];
  /** Keeps the newest `keepPerNode` transitions of every node; returns how many were deleted. */
  pruneTransitions(keepPerNode: number): number;

  insertJob(job: JobInsert): JobRecord;
  getJob(id: string): JobRecord | undefined;
  /** Newest first. */
  listJobs(query?: JobListQuery): JobRecord[];
  updateJob(id: string, update: JobUpdate): void;
  /** Marks every queued or running job `interrupted` with `info`; returns their ids. */
  interruptUnfinishedJobs(info: string, at?: number): string[];
  /**
   * Deletes finished jobs (never queued or running) that finished before `finishedBefore`, and
   * beyond the newest `keep` finished ones. Returns how many were deleted.
   */
  pruneJobs(opts: { finishedBefore: number; keep: number }): number;

  /** A cheap real write (readiness probes): throws a StateStoreError when the file cannot take writes. */
  checkWritable(): void;

  close(): void;
}

// ---------------------------------------------------------------------------------------------
// Secrets and fingerprints

/** Keys whose values are secrets wherever they appear in a job's params (`s_pwd`, `password`…). */
export const SECRET_KEY = /pwd|password|passwd|secret|token/i;
export const REDACTED = '******';

/** A deep copy of `value` with every secret-keyed value replaced by `******`. */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      out[key] = SECRET_KEY.test(key) ? REDACTED : redactSecrets(inner);
    }
    return out;
  }
  return value;
}

/** JSON with object keys sorted at every depth, so equal bodies give equal text whatever their key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value)) ?? 'null';
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

/** sha256 (hex) of the canonical JSON of the unredacted body. */
export function paramsHash(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Schema

/** Migration N (1-based) brings the file from `user_version` N-1 to N. Append only; never edit one. */
const MIGRATIONS: readonly { description: string; sql: string }[] = [
  {
    description: 'nodes, transition journal, jobs',
    sql: `
      CREATE TABLE store_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;

      CREATE TABLE nodes (
        id         TEXT PRIMARY KEY,
        port       INTEGER NOT NULL UNIQUE,
        entry      TEXT NOT NULL,
        wanted     TEXT NOT NULL CHECK (wanted IN ('running', 'stopped')),
        restarts   INTEGER NOT NULL DEFAULT 0,
        source     TEXT NOT NULL CHECK (source IN ('static', 'created', 'discovered')),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      ) STRICT;

      CREATE TABLE transitions (
        id         INTEGER PRIMARY KEY,
        node_id    TEXT NOT NULL,
        from_state TEXT,
        to_state   TEXT NOT NULL,
        event      TEXT NOT NULL,
        at         INTEGER NOT NULL,
        detail     TEXT
      ) STRICT;
      CREATE INDEX transitions_by_node ON transitions (node_id, id);

      CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        type        TEXT NOT NULL,
        node_id     TEXT,
        params      TEXT NOT NULL,
        params_hash TEXT NOT NULL,
        status      TEXT NOT NULL
                    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
        phase       TEXT,
        progress    TEXT,
        result      TEXT,
        info        TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        finished_at INTEGER
      ) STRICT;
      CREATE INDEX jobs_by_status ON jobs (status);
      CREATE INDEX jobs_by_created ON jobs (created_at);
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

// ---------------------------------------------------------------------------------------------
// Errors

/** What an SQLite or file-system error code means for the operator, in words. */
function describeCode(code: string | undefined): string {
  if (!code) return 'an unexpected error';
  if (code.startsWith('SQLITE_READONLY') || code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
    return 'the state file or its directory is read-only for this process (check the file system, ownership and mode)';
  }
  if (code === 'SQLITE_FULL' || code === 'ENOSPC') return 'the disk holding it is full';
  if (code.startsWith('SQLITE_CANTOPEN')) return 'it cannot be opened (missing directory, permissions or too many open files)';
  if (code.startsWith('SQLITE_IOERR') || code === 'EIO') return 'the disk reported an I/O error';
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return 'the file is corrupt or not an SQLite database';
  if (code.startsWith('SQLITE_CONSTRAINT')) return 'it conflicts with a record already stored (same id or port)';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return 'it stayed locked by another process (is a second node-mgr using the same stateDir?)';
  }
  return `SQLite reported ${code}`;
}

function writable(file: string): boolean {
  for (const f of [file, `${file}-wal`]) {
    try {
      if (existsSync(f)) accessSync(f, constants.W_OK);
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * Turns whatever a state operation threw into a StateStoreError that names the file, the action
 * and the cause in one sentence. Already-translated errors pass through.
 */
export function toStateStoreError(err: unknown, file: string, action: string): StateStoreError {
  if (err instanceof StateStoreError) return err;
  const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : undefined;
  const detail = err instanceof Error ? err.message : String(err);
  // SQLite reports a write the file system refused (an immutable file: EPERM even for root) as an
  // I/O error; say what it is when the file or its WAL cannot be written.
  const why = code?.startsWith('SQLITE_IOERR') && !writable(file) ? describeCode('EROFS') : describeCode(code);
  return new StateStoreError(
    `node-mgr could not ${action} in its state file ${file}: ${why} (${code ?? 'error'}: ${detail}).`,
    code,
    file,
    { cause: err },
  );
}

// ---------------------------------------------------------------------------------------------
// Rows

interface NodeRow {
  id: string;
  port: number;
  entry: string;
  wanted: Wanted;
  restarts: number;
  source: NodeSource;
  created_at: number;
  updated_at: number;
}

interface TransitionRow {
  id: number;
  node_id: string;
  from_state: string | null;
  to_state: string;
  event: string;
  at: number;
  detail: string | null;
}

interface JobRow {
  id: string;
  type: string;
  node_id: string | null;
  params: string;
  params_hash: string;
  status: JobStatus;
  phase: string | null;
  progress: string | null;
  result: string | null;
  info: string | null;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

function jsonOrNull(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

function parseJson(text: string | null): unknown {
  return text === null ? null : JSON.parse(text);
}

function jobFromRow(row: JobRow): JobRecord {
  return {
    id: row.id,
    type: row.type,
    nodeId: row.node_id,
    params: parseJson(row.params),
    paramsHash: row.params_hash,
    status: row.status,
    phase: row.phase,
    progress: parseJson(row.progress) as JobProgress | null,
    result: parseJson(row.result),
    info: row.info,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  };
}

function transitionFromRow(row: TransitionRow): TransitionRecord {
  return {
    id: row.id,
    nodeId: row.node_id,
    from: row.from_state,
    to: row.to_state,
    event: row.event,
    at: row.at,
    detail: row.detail,
  };
}

// ---------------------------------------------------------------------------------------------
// Opening

export interface StateStoreOptions {
  /** How long a write waits for a lock held by another connection before failing. */
  busyTimeoutMs?: number;
  now?: () => number;
}

/**
 * Opens (creating if needed) `<stateDir>/node-mgr.sqlite`, brings its schema up to date and proves
 * it is writable, so that a read-only or full disk is reported once, at start-up, in one sentence.
 */
export function openStateStore(stateDir: string, options: StateStoreOptions = {}): StateStore {
  const file = path.join(path.resolve(stateDir), STATE_FILE_NAME);
  const now = options.now ?? Date.now;
  let db: Database.Database;
  try {
    // The file holds node passwords (node entries): only node-mgr's user may read it.
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const isNew = !existsSync(file);
    db = new Database(file, { timeout: options.busyTimeoutMs ?? 5000 });
    if (isNew) chmodSync(file, 0o600);
  } catch (err) {
    throw toStateStoreError(err, file, 'open the database');
  }
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    // Keeps the WAL from staying large after a burst of writes.
    db.pragma('journal_size_limit = 4194304');
    migrate(db, file);
    // A real write: SQLite opens a read-only file without complaint and fails only at the first write.
    db.prepare(`INSERT INTO store_meta (key, value) VALUES ('opened_at', ?)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(new Date(now()).toISOString());
  } catch (err) {
    db.close();
    throw toStateStoreError(err, file, 'prepare the database');
  }
  return new SqliteStateStore(db, file, now);
}

function migrate(db: Database.Database, file: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new StateStoreError(
      `The state file ${file} has schema version ${current}, written by a newer node-mgr; this build knows up to version ${MIGRATIONS.length}. Run the newer node-mgr or move the file aside.`,
      'SCHEMA_TOO_NEW',
      file,
    );
  }
  for (let version = current + 1; version <= MIGRATIONS.length; version++) {
    const migration = MIGRATIONS[version - 1];
    db.transaction(() => {
      db.exec(migration.sql);
      // user_version lives in the file header and commits atomically with the migration.
      db.pragma(`user_version = ${version}`);
    })();
  }
}

// ---------------------------------------------------------------------------------------------
// The store

/** How many job reads the store keeps (the default job retention keeps 1,000 jobs). */
const JOB_READS_KEPT = 2048;

class SqliteStateStore implements StateStore {
  private readonly stmts;
  /** One prepared UPDATE per combination of columns a caller changes (a handful in practice). */
  private readonly updateJobStmts = new Map<string, Database.Statement>();
  /**
   * Jobs as last read, by id (null: no such job), so that a caller polling get_status does not
   * read the file at every request. Every write of a job goes through this store and drops its
   * entry (pruning and interrupting drop them all); records are frozen so no reader can change
   * what the next one gets.
   */
  private readonly jobReads = new Map<string, Readonly<JobRecord> | null>();

  constructor(
    private readonly db: Database.Database,
    readonly file: string,
    private readonly now: () => number,
  ) {
    this.stmts = {
      upsertNode: db.prepare<[{ id: string; port: number; entry: string; wanted: Wanted; source: NodeSource; at: number }]>(`
        INSERT INTO nodes (id, port, entry, wanted, source, restarts, created_at, updated_at)
        VALUES (@id, @port, @entry, @wanted, @source, 0, @at, @at)
        ON CONFLICT (id) DO UPDATE SET port = excluded.port, entry = excluded.entry,
          source = excluded.source, updated_at = excluded.updated_at`),
      getNode: db.prepare<[string], NodeRow>('SELECT * FROM nodes WHERE id = ?'),
      listNodes: db.prepare<[], NodeRow>('SELECT * FROM nodes ORDER BY port'),
      setWanted: db.prepare<[string, number, string]>('UPDATE nodes SET wanted = ?, updated_at = ? WHERE id = ?'),
      setRestarts: db.prepare<[number, number, string]>('UPDATE nodes SET restarts = ?, updated_at = ? WHERE id = ?'),
      removeNode: db.prepare<[string]>('DELETE FROM nodes WHERE id = ?'),
      removeTransitionsOf: db.prepare<[string]>('DELETE FROM transitions WHERE node_id = ?'),

      recordTransition: db.prepare<[string, string | null, string, string, number, string | null]>(
        'INSERT INTO transitions (node_id, from_state, to_state, event, at, detail) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      recentTransitions: db.prepare<[string, number], TransitionRow>(
        'SELECT * FROM transitions WHERE node_id = ? ORDER BY id DESC LIMIT ?',
      ),
      pruneTransitions: db.prepare<[number]>(`
        DELETE FROM transitions WHERE id IN (
          SELECT id FROM (
            SELECT id, ROW_NUMBER() OVER (PARTITION BY node_id ORDER BY id DESC) AS newer
            FROM transitions)
          WHERE newer > ?)`),

      insertJob: db.prepare<[{ id: string; type: string; nodeId: string | null; params: string; hash: string; at: number }]>(`
        INSERT INTO jobs (id, type, node_id, params, params_hash, status, created_at, updated_at)
        VALUES (@id, @type, @nodeId, @params, @hash, 'queued', @at, @at)`),
      getJob: db.prepare<[string], JobRow>('SELECT * FROM jobs WHERE id = ?'),
      listJobs: db.prepare<[{ status: string | null; type: string | null; limit: number }], JobRow>(`
        SELECT * FROM jobs
        WHERE (@status IS NULL OR status = @status) AND (@type IS NULL OR type = @type)
        ORDER BY created_at DESC, rowid DESC LIMIT @limit`),
      interruptUnfinished: db.prepare<[{ info: string; at: number }], { id: string }>(`
        UPDATE jobs SET status = 'interrupted', info = @info, updated_at = @at, finished_at = @at
        WHERE status IN ('queued', 'running') RETURNING id`),
      pruneJobsByAge: db.prepare<[number]>(`
        DELETE FROM jobs WHERE status NOT IN ('queued', 'running') AND finished_at < ?`),
      touchProbe: db.prepare<[string]>(`INSERT INTO store_meta (key, value) VALUES ('ready_probe_at', ?)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value`),
      pruneJobsByCount: db.prepare<[number]>(`
        DELETE FROM jobs WHERE id IN (
          SELECT id FROM jobs WHERE status NOT IN ('queued', 'running')
          ORDER BY finished_at DESC, rowid DESC LIMIT -1 OFFSET ?)`),
    };
  }

  /** Runs one state operation; any failure leaves as a StateStoreError naming the action. */
  private guard<T>(action: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw toStateStoreError(err, this.file, action);
    }
  }

  private nodeFromRow(row: NodeRow): NodeRecord {
    let raw: unknown;
    try {
      raw = JSON.parse(row.entry);
    } catch (err) {
      throw new StateStoreError(`The stored config entry of node ${row.id} in ${this.file} is not JSON.`, 'INVALID_ENTRY', this.file, { cause: err });
    }
    const parsed = nodeEntrySchema.safeParse(raw);
    if (!parsed.success) {
      throw new StateStoreError(
        `The stored config entry of node ${row.id} in ${this.file} is no longer valid: ${parsed.error.issues
          .map((i) => `${i.path.join('.') || '(entry)'}: ${i.message}`)
          .join('; ')}.`,
        'INVALID_ENTRY',
        this.file,
      );
    }
    return {
      id: row.id,
      port: row.port,
      entry: parsed.data,
      wanted: row.wanted,
      restarts: row.restarts,
      source: row.source,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  upsertNode(node: NodeUpsert): NodeRecord {
    return this.guard(`record node ${node.id}`, () => {
      const at = this.now();
      return this.db.transaction(() => {
        this.stmts.upsertNode.run({
          id: node.id,
          port: node.port,
          entry: JSON.stringify(node.entry),
          wanted: node.wanted ?? 'stopped',
          source: node.source,
          at,
        });
        if (node.wanted) this.stmts.setWanted.run(node.wanted, at, node.id);
        return this.nodeFromRow(this.stmts.getNode.get(node.id)!);
      })();
    });
  }

  getNode(id: string): NodeRecord | undefined {
    const row = this.guard(`read node ${id}`, () => this.stmts.getNode.get(id));
    return row && this.nodeFromRow(row);
  }

  listNodes(): NodeRecord[] {
    return this.guard('list nodes', () => this.stmts.listNodes.all()).map((row) => this.nodeFromRow(row));
  }

  setWanted(id: string, wanted: Wanted): void {
    this.guard(`record wanted=${wanted} for node ${id}`, () => {
      if (this.stmts.setWanted.run(wanted, this.now(), id).changes === 0) throw unknownNode(id, this.file);
    });
  }

  setRestarts(id: string, restarts: number): void {
    this.guard(`record the restart count of node ${id}`, () => {
      if (this.stmts.setRestarts.run(restarts, this.now(), id).changes === 0) throw unknownNode(id, this.file);
    });
  }

  removeNode(id: string): boolean {
    return this.guard(`remove node ${id}`, () =>
      this.db.transaction(() => {
        this.stmts.removeTransitionsOf.run(id);
        return this.stmts.removeNode.run(id).changes > 0;
      })(),
    );
  }

  recordTransition(t: TransitionInput): number {
    return this.guard(`record a transition of node ${t.nodeId}`, () =>
      Number(
        this.stmts.recordTransition.run(t.nodeId, t.from, t.to, t.event, t.at ?? this.now(), t.detail ?? null)
          .lastInsertRowid,
      ),
    );
  }

  recentTransitions(nodeId: string, limit: number): TransitionRecord[] {
    return this.guard(`read the transitions of node ${nodeId}`, () =>
      this.stmts.recentTransitions.all(nodeId, limit).map(transitionFromRow),
    );
  }

  pruneTransitions(keepPerNode: number): number {
    return this.guard('prune the transition journal', () => this.stmts.pruneTransitions.run(keepPerNode).changes);
  }

  insertJob(job: JobInsert): JobRecord {
    return this.guard(`record job ${job.id}`, () => {
      const at = job.createdAt ?? this.now();
      this.stmts.insertJob.run({
        id: job.id,
        type: job.type,
        nodeId: job.nodeId ?? null,
        params: JSON.stringify(redactSecrets(job.params ?? null)),
        hash: job.paramsHash,
        at,
      });
      this.jobReads.delete(job.id);
      return jobFromRow(this.stmts.getJob.get(job.id)!);
    });
  }

  getJob(id: string): JobRecord | undefined {
    const known = this.jobReads.get(id);
    if (known !== undefined) return known ?? undefined;
    const row = this.guard(`read job ${id}`, () => this.stmts.getJob.get(id));
    const job = row ? Object.freeze(jobFromRow(row)) : null;
    // Bounded: ids asked for at random (or a flood of them) cost one read each, not memory.
    if (this.jobReads.size >= JOB_READS_KEPT) this.jobReads.delete(this.jobReads.keys().next().value!);
    this.jobReads.set(id, job);
    return job ?? undefined;
  }

  listJobs(query: JobListQuery = {}): JobRecord[] {
    return this.guard('list jobs', () =>
      this.stmts.listJobs.all({ status: query.status ?? null, type: query.type ?? null, limit: query.limit ?? 100 }).map(jobFromRow),
    );
  }

  updateJob(id: string, update: JobUpdate): void {
    // Only the columns named in the update change; the statement is built from a fixed column list.
    const columns: string[] = [];
    const values: (string | number | null)[] = [];
    const set = (column: string, value: string | number | null) => {
      columns.push(`${column} = ?`);
      values.push(value);
    };
    if (update.status !== undefined) set('status', update.status);
    if (update.phase !== undefined) set('phase', update.phase);
    if (update.progress !== undefined) set('progress', jsonOrNull(update.progress));
    if (update.result !== undefined) set('result', jsonOrNull(redactSecrets(update.result)));
    if (update.info !== undefined) set('info', update.info);
    if (update.finishedAt !== undefined) set('finished_at', update.finishedAt);
    set('updated_at', this.now());
    this.jobReads.delete(id);
    this.guard(`update job ${id}`, () => {
      const sql = `UPDATE jobs SET ${columns.join(', ')} WHERE id = ?`;
      let stmt = this.updateJobStmts.get(sql);
      if (!stmt) this.updateJobStmts.set(sql, (stmt = this.db.prepare(sql)));
      const changes = stmt.run(...values, id).changes;
      if (changes === 0) throw new StateStoreError(`Job ${id} is not in the state file ${this.file}.`, 'NO_SUCH_JOB', this.file);
    });
  }

  interruptUnfinishedJobs(info: string, at = this.now()): string[] {
    this.jobReads.clear();
    return this.guard('mark unfinished jobs interrupted', () =>
      this.stmts.interruptUnfinished.all({ info, at }).map((row) => row.id),
    );
  }

  pruneJobs(opts: { finishedBefore: number; keep: number }): number {
    this.jobReads.clear();
    return this.guard('prune finished jobs', () =>
      this.db.transaction(
        () =>
          this.stmts.pruneJobsByAge.run(opts.finishedBefore).changes +
          this.stmts.pruneJobsByCount.run(Math.max(0, opts.keep)).changes,
      )(),
    );
  }

  checkWritable(): void {
    this.guard('write the readiness probe', () => this.stmts.touchProbe.run(new Date(this.now()).toISOString()));
  }

  close(): void {
    if (this.db.open) this.guard('close the database', () => this.db.close());
  }
}

function unknownNode(id: string, file: string): StateStoreError {
  return new StateStoreError(`Node ${id} is not in the state file ${file}.`, 'NO_SUCH_NODE', file);
}

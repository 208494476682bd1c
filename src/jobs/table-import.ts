// The destination half of a table transfer (PROTOCOL §6.3): check that the node can take the table,
// receive the .cfg/.ibd into a staging dir, create the table if missing, DISCARD, place the files
// for the server's user, IMPORT, verify against the source, and on any failure leave the table as
// it was. Used in-process for a local destination and by `POST /v1/recv/table` for a remote one.
//
// Only a missing or empty destination table is filled: an existing one with rows is refused, so
// "as it was" never needs a copy of old data (a table we created is dropped again; an empty one is
// truncated back to empty; one whose tablespace was discarded is discarded again). Every import
// keeps a journal file in the state dir from its first byte to its end; a node-mgr that died
// half-way finds it at start and undoes the import, so a retry starts from a clean destination.
import { randomBytes } from 'node:crypto';
import { chmod, chown, copyFile, mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Config } from '../config/schema.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { mysqlPaths } from '../engines/mysql/paths.ts';
import { NodeCommandError, type Supervisor } from '../supervisor/supervisor.ts';
import { closeSession, ER, errno, openSession, rows, serverFilename, verifyAgainst, type Credentials, type Session } from './node-sql.ts';
import { checkIdentifier, filenameEncode, quoteIdentifier, qualifiedTable, tableFile } from './sql-names.ts';
import { FILE_ORDER, receiveTableStream, type SourceSummary, type SourceTable, type TableFileKind } from './table-stream.ts';
import type { ErrorKind, KindedError } from '../error-kind.ts';

/** A failed step of a transfer, of its kind. */
export class TableTransferError extends Error implements KindedError {
  constructor(
    readonly step: string,
    message: string,
    readonly kind: ErrorKind = 'internal',
  ) {
    super(message);
    this.name = 'TableTransferError';
  }
}

export interface DestinationTable {
  nodeId: string;
  /** MySQL database name (Kunlun names already mapped). */
  database: string;
  table: string;
  creds: Credentials;
}

export type TableCondition = 'missing' | 'empty' | 'discarded';

export interface ImportResult {
  node: string;
  database: string;
  table: string;
  created: boolean;
  rows: string;
  checksum: string;
  /** Create/discard/place/IMPORT, and the CHECKSUM TABLE that verifies it. */
  import_ms: number;
  verify_ms: number;
}

/** The import's journal: enough to undo it after node-mgr died, and nothing secret. */
interface JournalEntry {
  id: string;
  jobId: string;
  nodeId: string;
  database: string;
  table: string;
  stagingDir: string;
  startedAt: string;
  /** The table's condition when the import began to change it; null before that. */
  before: TableCondition | null;
  /** We created the table (it did not exist). */
  created: boolean;
  /** Files are being (or were) moved into the database dir. */
  placing: boolean;
}

const STAGING_PREFIX = 'table-transfer-';

/** The definition the server would give both tables, without the name and the AUTO_INCREMENT counter. */
export function normaliseDefinition(createStatement: string): string {
  const unnamed = createStatement.replace(/^CREATE TABLE `(?:[^`]|``)*`/, 'CREATE TABLE ``');
  const cut = unnamed.lastIndexOf('\n)');
  if (cut < 0) return unnamed;
  return unnamed.slice(0, cut) + unnamed.slice(cut).replace(/ AUTO_INCREMENT=\d+/, '');
}

/** The source's SHOW CREATE TABLE creating `db`.`table` instead. */
export function renameDefinition(createStatement: string, database: string, table: string): string {
  const head = /^CREATE TABLE `(?:[^`]|``)*`/.exec(createStatement);
  if (!head) throw new TableTransferError('creating the table', `the source's SHOW CREATE TABLE does not start with CREATE TABLE \`name\``, 'internal');
  return `CREATE TABLE ${qualifiedTable(database, table)}${createStatement.slice(head[0].length)}`;
}

/** "10.11.19-MariaDB-…" → "MariaDB 10.11": transportable tablespaces move within one release series. */
function releaseSeries(version: string): string {
  const [major, minor] = version.split(/[.-]/);
  return `${/mariadb/i.test(version) ? 'MariaDB' : 'MySQL'} ${major}.${minor}`;
}

export class TableImports {
  private readonly journalDir: string;
  /** Destination tables with an import under way, by `node/db/table`. */
  private readonly busy = new Map<string, string>();
  /** Undo of imports a previous node-mgr left, by node id. */
  private readonly recovering = new Map<string, Promise<void>>();
  /** Settles once the journal left by a previous node-mgr has been read and its undos scheduled. */
  private journalRead: Promise<void> = Promise.resolve();

  constructor(
    config: Config,
    private readonly supervisor: Supervisor,
    private readonly log: Logger,
  ) {
    this.journalDir = path.join(config.stateDir, 'table-transfers');
  }

  // -------------------------------------------------------------------------------------------
  // Checks

  /** A running MySQL node of this host, or a 404/409 that says why not. */
  node(nodeId: string): NodeSpec {
    const spec = this.supervisor.spec(nodeId);
    const view = this.supervisor.get(nodeId);
    if (!spec || !view) throw new TableTransferError('preflight', `no node ${nodeId} on this host`, 'not_found');
    if (spec.kind !== 'mysql') throw new TableTransferError('preflight', `${nodeId} is a ${spec.kind} node; tables are sent between MySQL storage nodes`, 'conflict');
    return spec;
  }

  /** What the destination table is now; throws when it cannot take the source's table. */
  async inspect(conn: Session, spec: NodeSpec, dest: DestinationTable, source: SourceTable): Promise<TableCondition> {
    const fail = (message: string, kind: ErrorKind = 'conflict') => new TableTransferError('preflight', `${spec.id}: ${message}`, kind);
    const [info] = await rows<{ version: string; pageSize: number | string }>(conn, 'SELECT VERSION() AS version, @@innodb_page_size AS pageSize');
    if (releaseSeries(info!.version) !== releaseSeries(source.version)) {
      throw fail(`the server is ${info!.version}, the source ${source.version}: a tablespace moves only within one release series`);
    }
    if (Number(info!.pageSize) !== source.pageSize) throw fail(`innodb_page_size is ${info!.pageSize}, the source's ${source.pageSize}`);
    for (const name of [dest.database, dest.table]) {
      const theirs = await serverFilename(conn, name);
      if (theirs !== null && theirs !== filenameEncode(name)) {
        throw fail(`the server keeps ${JSON.stringify(name)} on disk as ${theirs}, node-mgr computed ${filenameEncode(name)}; refusing to guess a path`, 'conflict');
      }
    }
    const db = quoteIdentifier(dest.database, 'database name');
    try {
      await conn.query(`SHOW CREATE DATABASE ${db}`);
    } catch (err) {
      if (errno(err) === ER.BAD_DB) throw fail(`database ${db} does not exist; create it first (send creates a missing table, not a database)`);
      throw err;
    }
    const name = qualifiedTable(dest.database, dest.table);
    let definition: string;
    try {
      const [row] = await rows<{ 'Create Table': string }>(conn, `SHOW CREATE TABLE ${name}`);
      definition = row!['Create Table'];
    } catch (err) {
      if (errno(err) === ER.NO_SUCH_TABLE) return 'missing';
      throw err;
    }
    if (normaliseDefinition(definition) !== normaliseDefinition(source.createStatement)) {
      const flat = (d: string) => normaliseDefinition(d).replace(/\s*\n\s*/g, ' ');
      throw fail(`table ${name} exists with a different definition than the source's; nothing was changed (source: ${flat(source.createStatement)}; destination: ${flat(definition)})`);
    }
    try {
      const found = await rows(conn, `SELECT 1 FROM ${name} LIMIT 1`);
      if (found.length > 0) throw fail(`table ${name} already holds rows; send fills only a missing or empty table (drop or truncate it first)`);
      return 'empty';
    } catch (err) {
      if (errno(err) !== ER.TABLESPACE_DISCARDED) throw err;
    }
    const waiting = tableFile(spec.dataDir, dest.database, dest.table, '.ibd');
    if (await exists(waiting)) throw fail(`table ${name} has a discarded tablespace and a file is already waiting at ${waiting}; remove it or import it first`);
    return 'discarded';
  }

  /** Preflight of a destination: may it take the table? Changes nothing. */
  async preflight(dest: DestinationTable, source: SourceTable): Promise<{ condition: TableCondition }> {
    const spec = this.node(dest.nodeId);
    checkIdentifier(dest.database, 'destination database name');
    checkIdentifier(dest.table, 'destination table name');
    const conn = await openSession(spec, dest.creds, 'the destination preflight');
    try {
      return { condition: await this.inspect(conn, spec, dest, source) };
    } finally {
      await closeSession(conn);
    }
  }

  // -------------------------------------------------------------------------------------------
  // One import

  /** Starts an import into a staging dir of the destination node; the caller writes the files, then completes or aborts. */
  async begin(dest: DestinationTable, jobId: string): Promise<ImportSession> {
    const spec = this.node(dest.nodeId);
    // A previous node-mgr's half-done import into this node is undone before a new one starts.
    await this.journalRead;
    await this.recovering.get(spec.id);
    const key = `${spec.id}/${dest.database}/${dest.table}`;
    const other = this.busy.get(key);
    if (other) throw new TableTransferError('preflight', `another transfer (job ${other}) is importing into ${qualifiedTable(dest.database, dest.table)} on ${spec.id}`, 'conflict');
    this.busy.set(key, jobId);
    try {
      const id = randomBytes(8).toString('hex');
      const entry: JournalEntry = {
        id,
        jobId,
        nodeId: spec.id,
        database: dest.database,
        table: dest.table,
        stagingDir: path.join(mysqlPaths(spec).tmpDir, STAGING_PREFIX + id),
        startedAt: new Date().toISOString(),
        before: null,
        created: false,
        placing: false,
      };
      // The journal exists before the staging dir, so nothing we create can be left unrecorded.
      await this.save(entry);
      await mkdir(entry.stagingDir, { mode: 0o700 });
      return new ImportSession(this, spec, dest, entry, () => this.busy.delete(key));
    } catch (err) {
      this.busy.delete(key);
      throw err;
    }
  }

  /**
   * Receives a stream from another host's node-mgr and imports it: the whole of step 3 on this
   * side. The node shows `importing` from the header to the verification.
   */
  async receive(input: AsyncIterable<Buffer | string>): Promise<ImportResult & { bytes: number }> {
    let session: ImportSession | undefined;
    let working: { nodeId: string; jobId: string } | undefined;
    try {
      const received = await receiveTableStream(
        input,
        async (header) => {
          const parsed = remoteDestinationSchema.safeParse(header.destination);
          if (!parsed.success) throw new TableTransferError('receiving', `the stream's header has no valid destination: ${parsed.error.issues[0]?.message}`, 'invalid');
          const d = parsed.data;
          const node = this.supervisor.byPort(d.port);
          if (!node) throw new TableTransferError('preflight', `no node on port ${d.port} on this host`, 'not_found');
          const dest: DestinationTable = { nodeId: node.id, database: d.database, table: d.table, creds: { user: d.user, password: d.password } };
          await this.preflight(dest, header.table);
          // The sender's job id labels the work on this side (the node's `importing` state, the journal).
          const jobId = typeof header.jobId === 'string' && header.jobId.length > 0 ? header.jobId.slice(0, 128) : 'remote send';
          this.supervisor.beginWork(node.id, 'importing', jobId);
          working = { nodeId: node.id, jobId };
          session = await this.begin(dest, jobId);
          return session.staging;
        },
        { verifyHashes: true },
      );
      const result = await session!.complete(received.header.table, received.trailer);
      return { ...result, bytes: received.bytes };
    } catch (err) {
      if (session && !session.finished) await session.abort();
      if (err instanceof NodeCommandError) throw new TableTransferError('preflight', err.message, err.kind === 'not_found' ? 'not_found' : 'conflict');
      throw err;
    } finally {
      if (working) this.supervisor.endWork(working.nodeId, working.jobId);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Journal and undo

  async save(entry: JournalEntry): Promise<void> {
    await mkdir(this.journalDir, { recursive: true, mode: 0o700 });
    const file = path.join(this.journalDir, `${entry.id}.json`);
    await writeFile(`${file}.tmp`, JSON.stringify(entry, null, 2), { mode: 0o600 });
    await rename(`${file}.tmp`, file);
  }

  async forget(entry: JournalEntry): Promise<void> {
    await rm(path.join(this.journalDir, `${entry.id}.json`), { force: true });
  }

  /**
   * Puts the destination back as the journal says it was. Decisions come from the server's state
   * where they can (is the tablespace discarded now?), so an undo after a crash at any point is right.
   */
  async undo(entry: JournalEntry, creds: Credentials): Promise<void> {
    const spec = this.supervisor.spec(entry.nodeId);
    if (!spec) throw new Error(`node ${entry.nodeId} is no longer supervised here`);
    const tmp = mysqlPaths(spec).tmpDir;
    if (path.dirname(entry.stagingDir) !== tmp || !path.basename(entry.stagingDir).startsWith(STAGING_PREFIX)) {
      throw new Error(`journal ${entry.id} names staging dir ${entry.stagingDir}, outside ${tmp}; not touching it`);
    }
    await rm(entry.stagingDir, { recursive: true, force: true });
    if (entry.before === null) return;
    const conn = await openSession(spec, creds, 'undoing a table import');
    try {
      const name = qualifiedTable(entry.database, entry.table);
      const now = await currentCondition(conn, name);
      const ibd = tableFile(spec.dataDir, entry.database, entry.table, '.ibd');
      const cfg = tableFile(spec.dataDir, entry.database, entry.table, '.cfg');
      // Files moved in but not imported belong to nobody; a .cfg is never needed after the import.
      if (entry.placing && now === 'discarded') await rm(ibd, { force: true });
      if (entry.placing) await rm(cfg, { force: true });
      if (entry.created) {
        if (now !== 'missing') await conn.query(`DROP TABLE ${name}`);
      } else if (entry.before === 'empty') {
        // TRUNCATE gives a discarded table a fresh, empty tablespace, and empties an imported one.
        if (now !== 'missing') await conn.query(`TRUNCATE TABLE ${name}`);
      } else if (entry.before === 'discarded') {
        if (now === 'live') await conn.query(`ALTER TABLE ${name} DISCARD TABLESPACE`);
      }
      // entry.before === 'missing' without `created`: node-mgr died between CREATE and its journal
      // write; the table it may have created is empty and left alone rather than risk dropping another.
    } finally {
      await closeSession(conn);
    }
  }

  /** At start: undoes every import a previous node-mgr left, as soon as its node runs. */
  startRecovery(): void {
    this.journalRead = this.readJournal().then((entries) => {
      for (const entry of entries) {
        const previous = this.recovering.get(entry.nodeId) ?? Promise.resolve();
        const next = previous.then(() => this.recover(entry));
        this.recovering.set(entry.nodeId, next);
        void next.finally(() => {
          if (this.recovering.get(entry.nodeId) === next) this.recovering.delete(entry.nodeId);
        });
      }
    });
  }

  private async readJournal(): Promise<JournalEntry[]> {
    let names: string[];
    try {
      names = (await readdir(this.journalDir)).filter((n) => n.endsWith('.json'));
    } catch {
      return [];
    }
    const entries: JournalEntry[] = [];
    for (const n of names) {
      try {
        entries.push(JSON.parse(await readFile(path.join(this.journalDir, n), 'utf8')) as JournalEntry);
      } catch (err) {
        this.log.error({ file: n, err: (err as Error).message }, 'unreadable table-transfer journal entry left in place');
      }
    }
    return entries;
  }

  private async recover(entry: JournalEntry, waitMs = 600_000): Promise<void> {
    // Nodes are registered and adopted after the job handlers: wait for this one to run.
    const deadline = Date.now() + waitMs;
    while (!this.supervisor.is(entry.nodeId, 'idle')) {
      if (Date.now() > deadline) {
        this.log.warn({ node: entry.nodeId, job: entry.jobId, journal: entry.id }, 'an interrupted table import could not be undone: its node is not running; will retry at the next start');
        return;
      }
      await sleep(500);
    }
    const spec = this.supervisor.spec(entry.nodeId)!;
    try {
      await this.undo(entry, { user: spec.user, password: spec.password });
      await this.forget(entry);
      this.log.info({ node: entry.nodeId, job: entry.jobId, table: `${entry.database}.${entry.table}`, created: entry.created }, 'undid a table import interrupted by a node-mgr restart');
    } catch (err) {
      this.log.error({ node: entry.nodeId, job: entry.jobId, err: (err as Error).message }, 'undoing an interrupted table import failed; will retry at the next start');
    }
  }
}

/** What a remote stream's header must say about its destination. */
const remoteDestinationSchema = z.object({
  port: z.number().int().min(1).max(65535),
  database: z.string().min(1).max(192),
  table: z.string().min(1).max(192),
  user: z.string().max(256),
  password: z.string().max(256),
});

type Condition = 'missing' | 'discarded' | 'live';

async function currentCondition(conn: Session, name: string): Promise<Condition> {
  try {
    await conn.query(`SELECT 1 FROM ${name} LIMIT 1`);
    return 'live';
  } catch (err) {
    if (errno(err) === ER.TABLESPACE_DISCARDED) return 'discarded';
    if (errno(err) === ER.NO_SUCH_TABLE) return 'missing';
    throw err;
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** Moves a staged file into the database dir; a dataDir on another filesystem gets a copy. */
async function moveInto(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(from, to);
    await unlink(from);
  }
}

export class ImportSession {
  /** Where the stream's files are written. */
  readonly staging: Record<TableFileKind, string>;
  finished = false;

  constructor(
    private readonly imports: TableImports,
    private readonly spec: NodeSpec,
    private readonly dest: DestinationTable,
    private readonly entry: JournalEntry,
    private readonly release: () => void,
  ) {
    this.staging = { cfg: path.join(entry.stagingDir, 'table.cfg'), ibd: path.join(entry.stagingDir, 'table.ibd') };
  }

  /**
   * Creates (if missing) and fills the destination table from the staged files, and checks it
   * against the source. On failure the table is put back as it was and the error names the step.
   * `filesReady` settles when nothing reads the staged files any more; the files are placed after.
   */
  async complete(source: SourceTable, expected: SourceSummary, onPhase?: (phase: string) => void, filesReady?: Promise<unknown>): Promise<ImportResult> {
    const { spec, dest, entry } = this;
    const name = qualifiedTable(dest.database, dest.table);
    let step = 'checking the destination';
    let conn: Session | undefined;
    try {
      conn = await openSession(spec, dest.creds, 'the import');
      const startedAt = Date.now();
      const condition = await this.imports.inspect(conn, spec, dest, source);
      entry.before = condition;
      await this.imports.save(entry);
      onPhase?.('importing');
      if (condition === 'missing') {
        step = 'creating the table';
        await conn.query(renameDefinition(source.createStatement, dest.database, dest.table));
        entry.created = true;
        await this.imports.save(entry);
      }
      if (condition !== 'discarded') {
        step = 'discarding the tablespace';
        await conn.query(`ALTER TABLE ${name} DISCARD TABLESPACE`);
      }
      if (filesReady) {
        // Whatever still reads the staged files (a local send's digest) finishes before IMPORT rewrites them.
        step = 'hashing the staged files';
        await filesReady;
      }
      step = 'placing the files';
      entry.placing = true;
      await this.imports.save(entry);
      for (const kind of FILE_ORDER) {
        // The server opens them as its own user: root-owned files fail the import (error 194).
        await chown(this.staging[kind], spec.runAs.uid, spec.runAs.gid);
        await chmod(this.staging[kind], 0o660);
        await moveInto(this.staging[kind], tableFile(spec.dataDir, dest.database, dest.table, `.${kind}`));
      }
      step = 'importing the tablespace';
      await conn.query(`ALTER TABLE ${name} IMPORT TABLESPACE`);
      await rm(tableFile(spec.dataDir, dest.database, dest.table, '.cfg'), { force: true });
      step = 'verifying';
      onPhase?.('verifying');
      const verifyingAt = Date.now();
      const got: SourceSummary = await verifyAgainst(conn, name, expected);
      await rm(entry.stagingDir, { recursive: true, force: true });
      await this.imports.forget(entry);
      this.finish();
      const importMs = verifyingAt - startedAt;
      return { node: spec.id, database: dest.database, table: dest.table, created: entry.created, ...got, import_ms: importMs, verify_ms: Date.now() - verifyingAt };
    } catch (err) {
      await closeSession(conn);
      conn = undefined;
      const cause = (err as Error).message;
      if (err instanceof TableTransferError && err.step === 'preflight') {
        await this.abort();
        throw err;
      }
      const undone = await this.undoQuietly();
      throw new TableTransferError(step, `${step} on ${spec.id} failed: ${cause}; ${undone}`, 'internal');
    } finally {
      await closeSession(conn);
    }
  }

  /** Gives the import up: staging removed, destination put back. */
  async abort(): Promise<void> {
    if (this.finished) return;
    await this.undoQuietly();
  }

  private async undoQuietly(): Promise<string> {
    try {
      await this.imports.undo(this.entry, this.dest.creds);
      await this.imports.forget(this.entry);
      return this.entry.before === null ? 'the destination was not changed' : `the destination table is as it was (${this.entry.created ? 'dropped again' : this.entry.before})`;
    } catch (err) {
      return `putting the destination back failed too (${(err as Error).message}); node-mgr retries that at its next start`;
    } finally {
      this.finish();
    }
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.release();
  }
}

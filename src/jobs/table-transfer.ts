// `send` + `file_type:"table"`: copy an InnoDB table to another storage node by transportable
// tablespace (PROTOCOL §6). This file is the source half and the job's course; the destination
// half is table-import.ts (in-process for a node of this host, behind the other host's
// `POST /v1/recv/table` otherwise). Both halves exchange the stream of table-stream.ts.
import { constants as fsConstants } from 'node:fs';
import { chmod, copyFile, realpath, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { NodeCommandError, type NodeView, type Supervisor } from '../supervisor/supervisor.ts';
import { z } from 'zod';
import type { JobContext } from './job.ts';
import { portNumber, sourceLogin, sourceTable, text } from './job-params.ts';
import { closeSession, countAndChecksum, ER, errno, isLocalAddress, openSession, rows, serverFilename, type Credentials, type Session } from './node-sql.ts';
import { endConnection } from '../engines/sql-close.ts';
import { checkIdentifier, filenameEncode, kunlunDatabaseName, qualifiedTable, tableFile } from './sql-names.ts';
import { TableTransferError, type DestinationTable, type ImportResult, type TableImports } from './table-import.ts';
import { PeerNodeMgr } from './table-peer.ts';
import { ChunkPool, FILE_ORDER, receiveTableStream, sendRateLimit, tableStream, type SourceSummary, type SourceTable, type StreamHeader, type StreamTrailer, type TableFileKind } from './table-stream.ts';
import { sha256Files } from './file-digest.ts';

/** `send` + `file_type:"table"`: the source table (s_*) and where it goes (d_*: a node of this host or of a configured peer). */
export const sendParams = z.object({
  file_type: z.literal('table'),
  ...sourceLogin,
  ...sourceTable,
  d_ip: text(64),
  d_port: portNumber,
  d_user: text(),
  d_pwd: text(),
  d_dbname: text(192),
  d_table_name: text(192),
});
export type SendParams = z.infer<typeof sendParams>;

export interface SendResult {
  source: { node: string; database: string; table: string };
  destination: { node: string; database: string; table: string; created: boolean; via: 'local' | string };
  bytes: number;
  rows: string;
  checksum: string;
  sha256: StreamTrailer['sha256'];
  /** How long the source table was locked (FLUSH TABLES … FOR EXPORT to UNLOCK TABLES). */
  lock_ms: number;
  /** Where the time went: preflight of both sides, the locked export (copy and source checksum), the destination's import and verification. */
  phases_ms: { preflight: number; export: number; import: number; verify: number };
  /** From the lock: until the last file byte was read, until the files' sha256 was known (a local send's may come after the unlock), and until the source's COUNT + CHECKSUM TABLE were done. */
  locked_ms: { copy: number; sha256: number; checksum: number };
  total_ms: number;
  mb_per_s: number;
}

/**
 * Where the export's files go: a stream (to another node-mgr, or read into staging files), or
 * copied by the kernel straight into a local destination's staging files.
 */
type Delivery = { stream: (stream: AsyncIterable<Buffer>) => Promise<unknown>; pool?: ChunkPool } | { copyTo: Record<TableFileKind, string> };

interface Exported {
  summary: SourceSummary;
  /** The files' sha256 and when it was known (ms from the lock): of what the stream read, or of the copies (may settle after the unlock). */
  sha256: Promise<{ digests: StreamTrailer['sha256']; ms: number }>;
  bytes: number;
  lockMs: number;
  startedAt: number;
  finishedAt: number;
  copyMs: number;
  checksumMs: number;
}

const WILDCARD = new Set(['0.0.0.0', '::', '']);

/** Read buffers of a send to another node-mgr, and their size: enough to keep the socket full while the next read runs. */
const SEND_BUFFERS = 4;
const SEND_CHUNK = 1024 * 1024;

/**
 * Checks the source table and describes it for the destination. Refused: a missing table, another
 * engine, partitions (one file per partition), foreign keys (their names and targets would have to
 * move too), DATA DIRECTORY (the files are not in the data dir).
 */
async function describeSource(conn: Session, spec: NodeSpec, database: string, table: string): Promise<SourceTable> {
  const name = qualifiedTable(database, table);
  let createStatement: string;
  try {
    const [row] = await rows<{ 'Create Table'?: string }>(conn, `SHOW CREATE TABLE ${name}`);
    if (!row?.['Create Table']) throw new TableTransferError('preflight', `${name} on ${spec.id} is a view, not a table`, 'conflict');
    createStatement = row['Create Table'];
  } catch (err) {
    if (errno(err) === ER.NO_SUCH_TABLE || errno(err) === ER.BAD_DB) throw new TableTransferError('preflight', `table ${name} does not exist on ${spec.id}`, 'not_found');
    throw err;
  }
  const refuse = (why: string) => new TableTransferError('preflight', `table ${name} on ${spec.id} ${why}; send moves plain file-per-table InnoDB tables`, 'conflict');
  const engine = /\)\s*ENGINE=(\w+)/.exec(createStatement)?.[1];
  if (engine?.toLowerCase() !== 'innodb') throw refuse(`uses ${engine ?? 'an unknown engine'}, not InnoDB`);
  if (/\bPARTITION BY\b/.test(createStatement)) throw refuse('is partitioned');
  if (/\bFOREIGN KEY\b/.test(createStatement)) throw refuse('has foreign keys');
  if (/\bDATA DIRECTORY=/.test(createStatement)) throw refuse('lives in a DATA DIRECTORY outside the data dir');
  const [info] = await rows<{ version: string; pageSize: number | string; datadir: string; filePerTable: number | string }>(
    conn,
    'SELECT VERSION() AS version, @@innodb_page_size AS pageSize, @@datadir AS datadir, @@innodb_file_per_table AS filePerTable',
  );
  // The files are read from the data dir node-mgr configured; make sure the server agrees.
  const [ours, theirs] = await Promise.all([realpath(spec.dataDir), realpath(info!.datadir).catch(() => info!.datadir)]);
  if (path.resolve(ours) !== path.resolve(theirs)) {
    throw new TableTransferError('preflight', `${spec.id} serves data dir ${info!.datadir}, node-mgr expects ${spec.dataDir}`, 'conflict');
  }
  for (const n of [database, table]) {
    const enc = await serverFilename(conn, n);
    if (enc !== null && enc !== filenameEncode(n)) {
      throw new TableTransferError('preflight', `${spec.id} keeps ${JSON.stringify(n)} on disk as ${enc}, node-mgr computed ${filenameEncode(n)}`, 'conflict');
    }
  }
  if (!(await stat(tableFile(spec.dataDir, database, table, '.ibd')).catch(() => null))) {
    throw refuse(`has no tablespace file at ${tableFile(spec.dataDir, database, table, '.ibd')} (innodb_file_per_table was ${Number(info!.filePerTable) ? 'on' : 'off'}: is it in the system tablespace?)`);
  }
  return { createStatement, version: info!.version, pageSize: Number(info!.pageSize) };
}

/** The node of this host that `ip:port` names, if any. */
function localNode(supervisor: Supervisor, ip: string, port: number): NodeView | undefined {
  const n = supervisor.byPort(port);
  if (!n) return undefined;
  return n.ip === ip || (WILDCARD.has(n.ip) && isLocalAddress(ip)) ? n : undefined;
}

const hostKey = (host: string) => host.replace(/^\[|\]$/g, '').replace(/^::ffff:/i, '').toLowerCase();

/**
 * The other host's node-mgr for `ip`, if the config lists it in `peers`, with that peer's own token
 * (never ours: a token is the credential of the node-mgr that checks it). The URL defaults to our
 * own scheme and port (every node-mgr of a cluster on one port, as the original); the cluster's CA
 * vouches for an https peer.
 */
function configuredPeer(config: Config, ip: string): PeerNodeMgr | undefined {
  const entry = config.peers.find((p) => hostKey(p.host) === hostKey(ip));
  if (!entry) return undefined;
  const tls = config.listen.tls;
  let url = entry.url;
  if (!url) {
    const port = config.listen.port;
    if (!port) throw new TableTransferError('preflight', `node-mgr listens on an ephemeral port, so peer ${entry.host}'s node-mgr port is unknown: give the peer a url`, 'conflict');
    url = `${tls ? 'https' : 'http'}://${ip.includes(':') ? `[${hostKey(ip)}]` : ip}:${port}`;
  }
  const ca = tls?.ca ? readFileSync(tls.ca, 'utf8') : undefined;
  return new PeerNodeMgr(url, entry.token, ca);
}

/**
 * Where a send's `d_ip:d_port` goes: a node of this host, or a peer node-mgr from the config.
 * Anything else is refused before any connection is made: node-mgr sends the destination's
 * password and the table's definition, so it must know whom it is talking to.
 */
export function sendDestination(config: Config, supervisor: Supervisor, ip: string, port: number): { local: NodeView } | { peer: PeerNodeMgr } {
  const local = localNode(supervisor, ip, port);
  if (local) return { local };
  const peer = configuredPeer(config, ip);
  if (peer) return { peer };
  if (isLocalAddress(ip)) throw new TableTransferError('preflight', `no node on port ${port} at ${ip} on this host, and ${ip} is not a configured peer`, 'not_found');
  throw new TableTransferError('preflight', `d_ip ${ip} is not an address of this host, and ${ip} is not a configured peer (config "peers"); a table is sent only to known node-mgrs`, 'invalid');
}

export class TableTransfer {
  constructor(
    private readonly config: Config,
    private readonly supervisor: Supervisor,
    private readonly imports: TableImports,
  ) {}

  async run(ctx: JobContext, req: SendParams): Promise<SendResult> {
    const started = Date.now();
    let step = 'preflight';
    try {
      ctx.progress({ phase: 'preflight' });
      if (!ctx.nodeId) throw new TableTransferError('preflight', 'the job names no source node', 'invalid');
      if (!isLocalAddress(req.s_ip)) throw new TableTransferError('preflight', `s_ip ${req.s_ip} is not an address of this host: send runs on the source's host`, 'invalid');
      const src = this.imports.node(ctx.nodeId);
      const source = { database: kunlunDatabaseName(req.s_dbname), table: checkIdentifier(req.s_table_name, 'source table name') };
      const dest = { database: kunlunDatabaseName(req.d_dbname), table: checkIdentifier(req.d_table_name, 'destination table name') };
      const srcCreds: Credentials = { user: req.s_user, password: req.s_pwd };
      const destCreds: Credentials = { user: req.d_user, password: req.d_pwd };
      const target = sendDestination(this.config, this.supervisor, req.d_ip, req.d_port);
      if ('local' in target && target.local.id === src.id && source.database === dest.database && source.table === dest.table) {
        throw new TableTransferError('preflight', `source and destination are the same table ${qualifiedTable(source.database, source.table)} on ${src.id}`, 'invalid');
      }

      step = 'the source preflight';
      const conn = await openSession(src, srcCreds, 'the source preflight');
      let table: SourceTable;
      try {
        table = await describeSource(conn, src, source.database, source.table);
      } finally {
        await closeSession(conn);
      }

      let imported: ImportResult;
      let exported: Exported;
      let sha256: StreamTrailer['sha256'];
      let via: string;
      const header = { v: 1 as const, jobId: ctx.id, source: `${src.id} ${qualifiedTable(source.database, source.table)}`, table };
      if ('local' in target) {
        const localDest = target.local;
        via = 'local';
        step = 'the destination preflight';
        const destination: DestinationTable = { nodeId: localDest.id, ...dest, creds: destCreds };
        await this.imports.preflight(destination, table);
        const session = await this.imports.begin(destination, ctx.id);
        try {
          step = 'exporting';
          // The kernel copies (copy_file_range or a reflink, as cp does) unless a rate limit asks for the metered stream.
          const delivery: Delivery = sendRateLimit()
            ? { stream: (stream) => receiveTableStream(stream, async () => session.staging, { verifyHashes: false }) }
            : { copyTo: session.staging };
          exported = await this.export(ctx, src, source, srcCreds, header, delivery);
          step = 'importing';
          ctx.progress({ phase: 'importing' });
          // After the export: a send between two tables of one node marks it exporting, then importing.
          this.supervisor.beginWork(localDest.id, 'importing', ctx.id);
          try {
            // The copies are hashed meanwhile; IMPORT, which rewrites them, waits for the digest.
            imported = await session.complete(table, exported.summary, (phase) => ctx.progress({ phase }), exported.sha256);
          } finally {
            this.supervisor.endWork(localDest.id, ctx.id);
          }
        } finally {
          await session.abort();
        }
      } else {
        const { peer } = target;
        via = peer.url;
        step = 'the destination preflight';
        const remote = { port: req.d_port, ...dest, user: req.d_user, password: req.d_pwd };
        await peer.preflight({ destination: remote, table }, ctx.signal);
        step = 'exporting';
        // The POST opens only once the source is locked and the stream is ready.
        let upload: ReturnType<PeerNodeMgr['upload']> | undefined;
        // A few read buffers, each reused once the socket has taken its bytes.
        const pool = new ChunkPool(SEND_BUFFERS, SEND_CHUNK);
        exported = await this.export(ctx, src, source, srcCreds, { ...header, destination: remote }, {
          pool,
          stream: (stream) => {
            upload = peer.upload(ctx.signal);
            return upload.send(stream, pool);
          },
        });
        step = `importing at ${peer.url}`;
        ctx.progress({ phase: 'importing' });
        imported = await upload!.result;
        // The destination checked against the trailer; the source checks the destination's word too.
        if (imported.rows !== exported.summary.rows || imported.checksum !== exported.summary.checksum) {
          throw new TableTransferError(step, `${peer.url} reports ${imported.rows} rows with checksum ${imported.checksum}; the source had ${exported.summary.rows} with ${exported.summary.checksum}`, 'internal');
        }
      }
      const hashed = await exported.sha256;
      sha256 = hashed.digests;
      const totalMs = Date.now() - started;
      const exportMs = exported.finishedAt - exported.startedAt;
      return {
        source: { node: src.id, database: source.database, table: source.table },
        destination: { node: imported.node, database: imported.database, table: imported.table, created: imported.created, via },
        bytes: exported.bytes,
        rows: imported.rows,
        checksum: imported.checksum,
        sha256,
        lock_ms: exported.lockMs,
        phases_ms: { preflight: exported.startedAt - started, export: exportMs, import: imported.import_ms, verify: imported.verify_ms },
        locked_ms: { copy: exported.copyMs, sha256: hashed.ms, checksum: exported.checksumMs },
        total_ms: totalMs,
        mb_per_s: Math.round((exported.bytes / 1048576 / (totalMs / 1000)) * 10) / 10,
      };
    } catch (err) {
      // Preflight refusals say what is wrong; the job's sentence also says which preflight.
      if (err instanceof TableTransferError && err.step === 'preflight') throw new TableTransferError('preflight', `${step} failed: ${err.message}`, err.kind);
      if (err instanceof TableTransferError) throw err;
      if (err instanceof NodeCommandError) throw new TableTransferError(step, `${step}: ${err.message}`, 'conflict');
      throw new TableTransferError(step, `${step} failed: ${(err as Error).message}`, 'internal');
    }
  }

  /**
   * Step 2 of §6, in one session: FLUSH TABLES … FOR EXPORT, the files handed to `deliver` as a
   * stream, UNLOCK TABLES — always, also on error (and if the session broke, the lock went with it).
   * The row count and CHECKSUM TABLE run on two more sessions meanwhile: the lock lets others
   * read, so they see exactly the exported data, and the lock is held for the longest of the three,
   * not their sum.
   */
  private async export(
    ctx: JobContext,
    src: NodeSpec,
    t: { database: string; table: string },
    creds: Credentials,
    header: Omit<StreamHeader, 'files'>,
    delivery: Delivery,
  ): Promise<Exported> {
    const startedAt = Date.now();
    const name = qualifiedTable(t.database, t.table);
    const lockConn = await openSession(src, creds, 'FLUSH TABLES … FOR EXPORT');
    const summaryConns: Session[] = [];
    const stopHashing = new AbortController();
    let stream: AsyncGenerator<Buffer> | undefined;
    try {
      this.supervisor.beginWork(src.id, 'exporting', ctx.id);
    } catch (err) {
      await closeSession(lockConn);
      throw err;
    }
    try {
      for (let i = 0; i < 2; i++) summaryConns.push(await openSession(src, creds, 'COUNT and CHECKSUM TABLE'));
      ctx.progress({ phase: 'exporting' });
      await lockConn.query(`FLUSH TABLES ${name} FOR EXPORT`);
      const lockedAt = Date.now();
      const paths = { cfg: tableFile(src.dataDir, t.database, t.table, '.cfg'), ibd: tableFile(src.dataDir, t.database, t.table, '.ibd') };
      const cfg = await stat(paths.cfg).catch(() => null);
      if (!cfg) throw new TableTransferError('exporting', `FLUSH TABLES ${name} FOR EXPORT wrote no ${paths.cfg}: the table is not where node-mgr expects its files`, 'internal');
      const ibd = await stat(paths.ibd);
      const total = cfg.size + ibd.size;
      let checksumMs = 0;
      let copyMs = 0;
      const summary = countAndChecksum(summaryConns[0]!, summaryConns[1]!, name).then((s) => ((checksumMs = Date.now() - lockedAt), s));
      summary.catch(() => undefined);
      const onBytes = (done: number) => {
        ctx.progress({ phase: 'copying', bytesDone: done, bytesTotal: total });
        if (done === total) copyMs = Date.now() - lockedAt;
      };
      let sha256: Exported['sha256'];
      if ('copyTo' in delivery) {
        await copyTableFiles(paths, delivery.copyTo, { cfg: cfg.size, ibd: ibd.size }, onBytes, ctx.signal);
        // The copies are hashed in a worker from here on, beside the rest of the lock and the
        // import's first steps: the lock does not wait for it, the IMPORT does.
        sha256 = sha256Files(FILE_ORDER.map((kind) => delivery.copyTo[kind]), AbortSignal.any([ctx.signal, stopHashing.signal])).then(([cfgDigest, ibdDigest]) => ({
          digests: { cfg: cfgDigest!, ibd: ibdDigest! },
          ms: Date.now() - lockedAt,
        }));
        sha256.catch(() => undefined);
      } else {
        let trailer: StreamTrailer | undefined;
        let hashMs = 0;
        stream = tableStream({ ...header, files: [{ kind: 'cfg', size: cfg.size }, { kind: 'ibd', size: ibd.size }] }, paths, summary, {
          signal: ctx.signal,
          maxBytesPerSec: sendRateLimit(),
          pool: delivery.pool,
          onBytes,
          onHashed: () => {
            hashMs = Date.now() - lockedAt;
          },
          onTrailer: (t) => {
            trailer = t;
          },
        });
        await delivery.stream(stream);
        if (!trailer) throw new TableTransferError('copying', 'the stream ended without its trailer', 'internal');
        sha256 = Promise.resolve({ digests: trailer.sha256, ms: hashMs });
      }
      const done = await summary;
      return { summary: done, sha256, bytes: total, lockMs: Date.now() - lockedAt, startedAt, finishedAt: Date.now(), copyMs, checksumMs };
    } catch (err) {
      // A failed export stops the worker hashing the copies.
      stopHashing.abort();
      throw err;
    } finally {
      // COM_QUIT when idle (no "Aborted connection" in the server's log); one still busy with a
      // CHECKSUM of a failed send is destroyed after 500 ms. Not awaited: the unlock must not wait.
      for (const c of summaryConns) void endConnection(c, 500);
      // A consumer that failed half-way leaves the generator suspended with a file open.
      if (stream) void stream.return(undefined).catch(() => undefined);
      try {
        await lockConn.query('UNLOCK TABLES');
        await closeSession(lockConn);
      } catch {
        lockConn.destroy();
      }
      this.supervisor.endWork(src.id, ctx.id);
    }
  }
}

/**
 * Copies the exported files into the destination's staging files with the kernel's copy (a reflink
 * where the filesystem has them): no byte passes through node-mgr. Progress comes from the growing
 * size of the copy, read every 250 ms. A cancelled job stops between the two files.
 */
async function copyTableFiles(
  from: Record<TableFileKind, string>,
  to: Record<TableFileKind, string>,
  sizes: Record<TableFileKind, number>,
  onBytes: (done: number) => void,
  signal: AbortSignal,
): Promise<void> {
  let before = 0;
  for (const kind of FILE_ORDER) {
    signal.throwIfAborted();
    let copying = true;
    const timer = setInterval(() => {
      void stat(to[kind]).then(
        (s) => copying && onBytes(before + Math.min(s.size, sizes[kind])),
        () => undefined,
      );
    }, 250);
    try {
      await copyFile(from[kind], to[kind], fsConstants.COPYFILE_EXCL | fsConstants.COPYFILE_FICLONE);
      // As the stream's staging files: the owner's only until the importer hands them to the server's user.
      await chmod(to[kind], 0o600);
    } finally {
      copying = false;
      clearInterval(timer);
    }
    // The files cannot change under FLUSH TABLES … FOR EXPORT; a different size means something else is wrong.
    const copied = (await stat(to[kind])).size;
    if (copied !== sizes[kind]) throw new TableTransferError('copying', `${from[kind]} was copied as ${copied} bytes, ${sizes[kind]} were expected`, 'internal');
    before += copied;
    onBytes(before);
  }
}

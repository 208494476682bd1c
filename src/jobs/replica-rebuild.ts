// `rebuild_node` / `POST /v1/nodes/:port/rebuild`: makes a storage node a fresh replica of a named
// primary of its shard. Everything that can refuse does so before the node is touched: the node is
// a MariaDB storage or meta node here, the primary is a MySQL node of the same cluster and shard (a
// node of this host, or one a configured peer node-mgr lists) that answers SQL and writes binlogs,
// and the shard has a usable backup. Then: the ordinary restore from that backup (which gives the
// node the backup's GTID position), replication from the primary with MASTER_USE_GTID=slave_pos,
// a bounded wait until it has caught up, and CHECKSUM TABLE compared on both sides at one GTID.
import { listBackups, backupDirFor } from '../backup/catalog.ts';
import type { BackupPosition } from '../backup/manifest.ts';
import type { BackupStore } from '../backup/store.ts';
import type { Config } from '../config/schema.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { compareChecksums, followPrimary, probePrimary, replicationState, tablesUnder, waitCaughtUp, type CatchUpStart, type Endpoint, type Login } from '../engines/mysql/replication.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import { StepError } from './cold-backup.ts';
import { coldRestore } from './cold-restore.ts';
import type { JobContext } from './job.ts';
import { isLocalAddress } from './node-sql.ts';

export interface RebuildRequest {
  /** `host:port` of the primary. */
  primary: string;
  /** `db.table` to compare; else every table of the primary no bigger than max_table_mb. */
  tables?: string[];
  max_table_mb?: number;
  /** Bound on the catch-up wait. */
  timeout_s?: number;
  /** The backup to start from; else the newest usable one of the shard. */
  file?: string;
  /** The login the replica replicates with; the node's admin login when absent. */
  repl_user?: string;
  repl_password?: string;
}

/** What node-mgr knows about the primary: where it is and which cluster/shard it serves. */
export interface PrimaryNode {
  kind: string;
  cluster?: string;
  shard?: string;
  role: string;
}

export interface RebuildDeps {
  config: Config;
  supervisor: Supervisor;
  /** Looks a node up on another host's node-mgr (a configured peer); null when the host is not a peer. */
  peerNode(host: string, port: number, signal: AbortSignal): Promise<PrimaryNode | null>;
}

export const DEFAULT_MAX_TABLE_MB = 256;
export const DEFAULT_CATCH_UP_S = 600;

export function parseHostPort(text: string): Endpoint {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text.trim());
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535) throw new Error(`primary ${JSON.stringify(text)} is not host:port`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

async function resolvePrimary(spec: NodeSpec, at: Endpoint, deps: RebuildDeps, signal: AbortSignal): Promise<PrimaryNode> {
  if (isLocalAddress(at.host)) {
    if (at.port === spec.port) throw new Error(`the primary ${at.host}:${at.port} is the node being rebuilt`);
    const n = deps.supervisor.byPort(at.port);
    if (!n) throw new Error(`no node on port ${at.port} on this host to be the primary`);
    return n;
  }
  const remote = await deps.peerNode(at.host, at.port, signal);
  if (!remote) throw new Error(`the primary's host ${at.host} is neither this host nor a configured peer (config "peers"): node-mgr cannot tell which cluster its node serves`);
  return remote;
}

export async function rebuildReplica(ctx: JobContext, spec: NodeSpec, req: RebuildRequest, store: BackupStore, deps: RebuildDeps, creds?: Login) {
  const admin: Login = creds ?? { user: spec.user, password: spec.password };
  const repl: Login = req.repl_user !== undefined ? { user: req.repl_user, password: req.repl_password ?? '' } : { user: spec.user, password: spec.password };
  const refuse = (why: string) => new StepError('checking', `rebuild of ${spec.id} from ${req.primary} refused: ${why}; the node was not touched`);
  const started = Date.now();

  // 1. Everything that can refuse, before the node is touched.
  ctx.progress({ phase: 'checking' });
  if (spec.kind !== 'mysql' || spec.binaries.mysqlFlavor !== 'mariadb') throw refuse(`${spec.id} is a ${spec.kind} node; a rebuild makes MariaDB replicas`);
  let at: Endpoint;
  let primaryFacts;
  let backupFile: string;
  /** The backup's GTID position and its coordinate in the binlog of the server it was taken from. */
  let start: CatchUpStart;
  try {
    at = parseHostPort(req.primary);
    const primary = await resolvePrimary(spec, at, deps, ctx.signal);
    if (primary.kind !== 'mysql') throw new Error(`the primary ${req.primary} is a ${primary.kind} node, not a MySQL node`);
    if (primary.cluster !== spec.cluster || primary.shard !== spec.shard) {
      throw new Error(`the primary ${req.primary} serves ${primary.cluster ?? '(no cluster)'}/${primary.shard ?? '(no shard)'}, ${spec.id} ${spec.cluster ?? '(no cluster)'}/${spec.shard ?? '(no shard)'}`);
    }
    primaryFacts = await probePrimary(at, repl);
    const dir = backupDirFor(spec);
    const usable = (await listBackups(store, dir)).filter((b) => b.verify?.result === 'ok' && b.verify.position?.kind === 'binlog' && b.verify.engine?.kind === 'mysql');
    const chosen = req.file !== undefined ? usable.find((b) => b.path === req.file) : usable[0];
    if (!chosen) throw new Error(req.file !== undefined ? `${req.file} is not a usable backup of ${dir}` : `${dir} holds no MariaDB backup whose last check passed`);
    const pos = chosen.verify!.position as Extract<BackupPosition, { kind: 'binlog' }>;
    if (!pos.gtid) throw new Error(`${chosen.path} records no GTID position to replicate from`);
    backupFile = chosen.path;
    start = { gtid: pos.gtid, at: { file: pos.file, position: pos.position } };
  } catch (err) {
    if (err instanceof StepError) throw err;
    throw refuse((err as Error).message);
  }

  // 2. The restore (journaled; any failure leaves the old data).
  const restored = await coldRestore(ctx, spec, backupFile, store, { supervisor: deps.supervisor, creds: admin });

  // 3. Replication from the backup's GTID position, then the wait. The node is a replica from here
  // on: a failure is reported with replication's own error, and the node keeps the restored data.
  const fail = (step: string, err: unknown) =>
    new StepError(step, `rebuild of ${spec.id} from ${req.primary} failed while ${step}: ${(err as Error).message}; the node has the data of ${backupFile}`, { cause: err });
  try {
    ctx.progress({ phase: 'starting replication' });
    await followPrimary(spec, admin, at, repl, start.gtid);
  } catch (err) {
    throw fail('starting replication', err);
  }
  let caughtUp;
  try {
    const timeoutMs = (req.timeout_s ?? DEFAULT_CATCH_UP_S) * 1000;
    // One phase name for the whole wait (the target is in the result): a phase that changed with
    // every report would restart the runner's rate, so it could never give an ETA.
    caughtUp = await waitCaughtUp(spec, admin, at, repl, start, timeoutMs, ctx.signal, ({ target: _target, ...p }) => ctx.progress({ phase: 'catching up', ...p }));
  } catch (err) {
    throw fail('catching up', err);
  }

  // 4. The same tables on both sides.
  let compared;
  let skipped: string[] = [];
  try {
    ctx.progress({ phase: 'comparing checksums' });
    let tables = req.tables;
    if (!tables) {
      const listed = await tablesUnder(at, repl, (req.max_table_mb ?? DEFAULT_MAX_TABLE_MB) * 1024 * 1024);
      tables = listed.tables;
      skipped = listed.skipped;
    }
    compared = await compareChecksums(spec, admin, at, repl, tables, (req.timeout_s ?? DEFAULT_CATCH_UP_S) * 1000);
  } catch (err) {
    throw fail('comparing checksums', err);
  }
  const state = await replicationState(spec, admin);
  const differ = compared.tables.filter((t) => !t.match);
  if (differ.length) {
    throw new StepError('comparing checksums', `rebuild of ${spec.id} from ${req.primary}: CHECKSUM TABLE differs at GTID ${compared.gtid} for ${differ.map((t) => `${t.table} (primary ${t.primary}, replica ${t.replica})`).join(', ')}; replication is running`);
  }
  if (state.io_running !== 'Yes' || state.sql_running !== 'Yes') {
    throw new StepError('checking replication', `rebuild of ${spec.id} from ${req.primary}: replication is not running after the checksums (IO ${state.io_running}, SQL ${state.sql_running}${state.error ? `: ${state.error}` : ''})`);
  }
  return {
    node: spec.id,
    primary: `${at.host}:${at.port}`,
    primary_server_id: primaryFacts.serverId,
    backup: backupFile,
    gtid_start: start.gtid,
    caught_up_to: caughtUp.gtid,
    catch_up_s: caughtUp.seconds,
    behind_at_start: { seconds: caughtUp.behindAtStart.secondsBehind, transactions: caughtUp.behindAtStart.transactionsBehind, bytes: caughtUp.behindAtStart.bytesBehind },
    checksums_at: compared.gtid,
    tables: compared.tables,
    ...(skipped.length ? { skipped_tables: skipped } : {}),
    replication: state,
    restore: { duration_s: restored.duration_s, downtime_s: restored.downtime_s, phases: restored.phases },
    duration_s: Math.round((Date.now() - started) / 100) / 10,
  };
}

// MariaDB replication for a replica rebuild: what the primary is (reachable, writing binlogs), how
// a restored node is pointed at it (GTID, MASTER_USE_GTID=slave_pos), how long it takes to catch
// up, and whether both sides then hold the same tables (CHECKSUM TABLE at one GTID position).
import { setTimeout as sleep } from 'node:timers/promises';
import type mysql from 'mysql2/promise';
import { connectMysql } from './driver.ts';
import { clientHost } from '../../host/address.ts';
import type { NodeSpec } from '../node-spec.ts';
import { endConnection } from '../sql-close.ts';

export interface Login {
  user: string;
  password: string;
}

export interface Endpoint {
  host: string;
  port: number;
}

const SYSTEM_SCHEMAS = ['mysql', 'information_schema', 'performance_schema', 'sys'];

async function open(at: Endpoint, login: Login): Promise<mysql.Connection> {
  return connectMysql({ host: at.host, port: at.port, user: login.user, password: login.password, connectTimeout: 10_000 });
}

const local = (spec: NodeSpec): Endpoint => ({ host: clientHost(spec), port: spec.port });

async function one<T>(c: mysql.Connection, sql: string, args: unknown[] = []): Promise<T | undefined> {
  return ((await c.query(sql, args)) as unknown as [T[]])[0][0];
}

export interface PrimaryFacts {
  serverId: number;
  gtidBinlogPos: string;
  version: string;
}

/** The primary answers SQL and writes binlogs with GTIDs; throws a sentence otherwise. */
export async function probePrimary(at: Endpoint, login: Login): Promise<PrimaryFacts> {
  let c: mysql.Connection;
  try {
    c = await open(at, login);
  } catch (err) {
    throw new Error(`the primary ${at.host}:${at.port} is not reachable as ${login.user}: ${(err as Error).message}`);
  }
  try {
    const r = (await one<{ log_bin: number; server_id: number; pos: string; version: string }>(c, 'SELECT @@log_bin AS log_bin, @@server_id AS server_id, @@gtid_binlog_pos AS pos, VERSION() AS version'))!;
    if (!/mariadb/i.test(r.version)) throw new Error(`the primary ${at.host}:${at.port} runs ${r.version}, not MariaDB: a rebuild follows MariaDB GTIDs`);
    if (!Number(r.log_bin)) throw new Error(`the primary ${at.host}:${at.port} does not write binary logs (log_bin is off): a replica cannot follow it`);
    return { serverId: Number(r.server_id), gtidBinlogPos: r.pos, version: r.version };
  } finally {
    await endConnection(c, 2000);
  }
}

/** Points the restored node at the primary from `gtid` and starts replication. */
export async function followPrimary(spec: NodeSpec, admin: Login, primary: Endpoint, repl: Login, gtid: string): Promise<void> {
  const c = await open(local(spec), admin);
  try {
    await c.query('STOP SLAVE');
    await c.query('RESET SLAVE ALL');
    await c.query('SET GLOBAL gtid_slave_pos = ?', [gtid]);
    // mysql2 escapes the values client-side into literals; CHANGE MASTER takes no placeholders server-side.
    await c.query('CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, MASTER_USE_GTID = slave_pos', [primary.host, primary.port, repl.user, repl.password]);
    await c.query('START SLAVE');
  } finally {
    await endConnection(c, 2000);
  }
}

interface SlaveStatus {
  Slave_IO_Running: string;
  Slave_SQL_Running: string;
  Seconds_Behind_Master: number | null;
  Last_IO_Error: string;
  Last_SQL_Error: string;
  Gtid_IO_Pos: string;
  /** The primary's binlog coordinates of the last event the SQL thread applied. */
  Relay_Master_Log_File: string;
  Exec_Master_Log_Pos: number | string;
  Gtid_Slave_Pos?: string;
}

/** Sequence number per domain of a MariaDB GTID list (`d-s-n,…`); the highest where a domain appears twice. */
function seqByDomain(list: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const g of list.split(',')) {
    const m = /^\s*(\d+)-\d+-(\d+)\s*$/.exec(g);
    if (m) out.set(m[1]!, Math.max(out.get(m[1]!) ?? 0, Number(m[2])));
  }
  return out;
}

/**
 * Transactions a server at GTID position `from` still has to apply to reach `to`: per replication
 * domain, how far `to`'s sequence number is ahead (MariaDB numbers each domain's transactions in order).
 */
export function gtidDistance(from: string, to: string): number {
  const have = seqByDomain(from);
  let behind = 0;
  for (const [domain, seq] of seqByDomain(to)) behind += Math.max(0, seq - (have.get(domain) ?? 0));
  return behind;
}

export interface BinlogCoordinate {
  file: string;
  position: number;
}

/**
 * Bytes of the primary's binlog between two coordinates, from the sizes of its files (SHOW BINARY
 * LOGS); null when a file is not in the list (purged, or not known yet).
 */
export function binlogDistance(files: readonly { name: string; size: number }[], from: BinlogCoordinate, to: BinlogCoordinate): number | null {
  const a = files.findIndex((f) => f.name === from.file);
  const b = files.findIndex((f) => f.name === to.file);
  if (a < 0 || b < 0) return null;
  if (a > b || (a === b && from.position >= to.position)) return 0;
  if (a === b) return to.position - from.position;
  let bytes = Math.max(0, files[a]!.size - from.position) + to.position;
  for (let i = a + 1; i < b; i++) bytes += files[i]!.size;
  return bytes;
}

/**
 * Where a replica starts following: its GTID position, and the coordinate a backup recorded for it,
 * in the binlog of the server the backup was taken from (the primary's, or another's).
 */
export interface CatchUpStart {
  gtid: string;
  at: BinlogCoordinate;
}

/**
 * What a catch-up waits for: the primary's GTID position, and where that is in its binlog (null
 * without the privilege to list them); `start` is where the replica began in the same binlog, kept
 * only when the primary confirms that coordinate is the replica's start GTID.
 */
interface CatchUpTarget {
  gtid: string;
  binlog: { at: BinlogCoordinate; files: { name: string; size: number }[]; start: BinlogCoordinate | null } | null;
}

/** A GTID list as a comparable text: its `d-s-n` entries sorted. */
const gtidSet = (list: string) => list.split(',').map((g) => g.trim()).filter(Boolean).sort().join(',');

async function catchUpTarget(primary: Endpoint, login: Login, from: CatchUpStart): Promise<CatchUpTarget> {
  const gtid = (await probePrimary(primary, login)).gtidBinlogPos;
  let binlog: CatchUpTarget['binlog'] = null;
  try {
    const c = await open(primary, login);
    try {
      const [master] = ((await c.query('SHOW MASTER STATUS')) as unknown as [{ File: string; Position: number | string }[]])[0];
      const [list] = (await c.query('SHOW BINARY LOGS')) as unknown as [{ Log_name: string; File_size: number | string }[]];
      if (master) {
        // The start's coordinate counts only if the primary's BINLOG_GTID_POS puts the start GTID
        // there: a backup of another server of the shard has a coordinate in that server's binlog.
        const there = await one<{ g: string | null }>(c, 'SELECT BINLOG_GTID_POS(?, ?) AS g', [from.at.file, from.at.position]).catch(() => undefined);
        const start = there?.g != null && gtidSet(there.g) === gtidSet(from.gtid) ? from.at : null;
        binlog = { at: { file: master.File, position: Number(master.Position) }, files: list.map((r) => ({ name: r.Log_name, size: Number(r.File_size) })), start };
      }
    } finally {
      await endConnection(c, 2000);
    }
  } catch {
    // Without BINLOG MONITOR (REPLICATION CLIENT) on the primary the lag is told in transactions and seconds only.
  }
  return { gtid, binlog };
}

/** How far a replica is behind the catch-up's target. */
export interface ReplicaLag {
  secondsBehind: number | null;
  transactionsBehind: number | null;
  bytesBehind: number | null;
}

function lagOf(status: SlaveStatus | undefined, slavePos: string | null, target: CatchUpTarget): ReplicaLag {
  const sbm = status?.Seconds_Behind_Master;
  let bytesBehind: number | null = null;
  // Until the SQL thread has applied an event it names no coordinate (an empty file): it is still at the start.
  const applied = status?.Relay_Master_Log_File ? { file: status.Relay_Master_Log_File, position: Number(status.Exec_Master_Log_Pos) } : (target.binlog?.start ?? null);
  if (target.binlog && applied) bytesBehind = binlogDistance(target.binlog.files, applied, target.binlog.at);
  return {
    secondsBehind: sbm === null || sbm === undefined ? null : Number(sbm),
    transactionsBehind: slavePos === null ? null : gtidDistance(slavePos, target.gtid),
    bytesBehind,
  };
}

async function slaveStatus(c: mysql.Connection): Promise<SlaveStatus | undefined> {
  return one<SlaveStatus>(c, 'SHOW SLAVE STATUS');
}

function replicationError(s: SlaveStatus | undefined): string | null {
  if (!s) return 'replication is not configured';
  if (s.Last_SQL_Error) return `the SQL thread stopped: ${s.Last_SQL_Error}`;
  if (s.Last_IO_Error && s.Slave_IO_Running !== 'Yes') return `the IO thread cannot read from the primary: ${s.Last_IO_Error}`;
  return null;
}

export interface CatchUp {
  /** The primary's GTID position the replica reached. */
  gtid: string;
  seconds: number;
  /** How far behind the replica was when the wait began. */
  behindAtStart: ReplicaLag;
}

/** What the catch-up reports as it goes: the lag, and the bytes (or, without them, transactions) made up since the wait began. */
export interface CatchUpProgress extends ReplicaLag {
  target: string;
  bytesDone?: number;
  bytesTotal?: number;
  /** From the rate at which the transactions behind went down, when the bytes are not known. */
  etaS?: number;
}

/**
 * Waits until the replica has applied everything the primary had written when the wait began
 * (MASTER_GTID_WAIT), a second at a time so that a broken replication fails at once, up to `timeoutMs`.
 * Each second it reports the lag (SHOW SLAVE STATUS against the primary's position at the start).
 */
export async function waitCaughtUp(
  spec: NodeSpec,
  admin: Login,
  primary: Endpoint,
  primaryLogin: Login,
  from: CatchUpStart,
  timeoutMs: number,
  signal: AbortSignal,
  progress: (p: CatchUpProgress) => void,
): Promise<CatchUp> {
  const started = Date.now();
  const target = await catchUpTarget(primary, primaryLogin, from);
  const c = await open(local(spec), admin);
  let first: { lag: ReplicaLag; at: number } | null = null;
  let bytesTotal = 0;
  const report = (lag: ReplicaLag) => {
    const now = Date.now();
    first ??= { lag, at: now };
    const p: CatchUpProgress = { target: target.gtid, ...lag };
    if (lag.bytesBehind !== null) {
      // The distance only shrinks toward a fixed target; the largest seen is the whole way.
      bytesTotal = Math.max(bytesTotal, lag.bytesBehind);
      p.bytesDone = bytesTotal - lag.bytesBehind;
      p.bytesTotal = bytesTotal;
    } else if (lag.transactionsBehind !== null && first.lag.transactionsBehind !== null && now - first.at >= 1000) {
      const rate = (first.lag.transactionsBehind - lag.transactionsBehind) / ((now - first.at) / 1000);
      if (rate > 0) p.etaS = lag.transactionsBehind / rate;
    }
    progress(p);
  };
  try {
    for (;;) {
      signal.throwIfAborted();
      const status = await slaveStatus(c);
      const broken = replicationError(status);
      if (broken) throw new Error(broken);
      const slavePos = status?.Gtid_Slave_Pos ?? (await one<{ pos: string }>(c, 'SELECT @@gtid_slave_pos AS pos'))?.pos ?? null;
      report(lagOf(status, slavePos, target));
      const left = timeoutMs - (Date.now() - started);
      if (left <= 0) throw new Error(`the replica did not reach the primary's position ${target.gtid} within ${Math.round(timeoutMs / 1000)} s (${status?.Seconds_Behind_Master ?? '?'} s behind); replication keeps running`);
      const r = await one<{ r: number }>(c, 'SELECT MASTER_GTID_WAIT(?, ?) AS r', [target.gtid, Math.min(1, left / 1000)]);
      if (Number(r?.r) === 0) {
        report({ secondsBehind: 0, transactionsBehind: 0, bytesBehind: target.binlog ? 0 : null });
        return { gtid: target.gtid, seconds: Math.round((Date.now() - started) / 100) / 10, behindAtStart: first!.lag };
      }
    }
  } finally {
    await endConnection(c, 2000);
  }
}

export interface TableChecksum {
  table: string;
  primary: string | null;
  replica: string | null;
  match: boolean;
}

/** `db.table` of the primary's base tables no bigger than maxBytes (and those skipped as bigger). */
export async function tablesUnder(primary: Endpoint, login: Login, maxBytes: number): Promise<{ tables: string[]; skipped: string[] }> {
  const c = await open(primary, login);
  try {
    const [rows] = (await c.query(
      `SELECT table_schema AS s, table_name AS t, COALESCE(data_length, 0) + COALESCE(index_length, 0) AS b FROM information_schema.tables
       WHERE table_type = 'BASE TABLE' AND table_schema NOT IN (?) ORDER BY 1, 2`,
      [SYSTEM_SCHEMAS],
    )) as unknown as [{ s: string; t: string; b: number }[]];
    const tables: string[] = [];
    const skipped: string[] = [];
    for (const r of rows) (Number(r.b) <= maxBytes ? tables : skipped).push(`${r.s}.${r.t}`);
    return { tables, skipped };
  } finally {
    await endConnection(c, 2000);
  }
}

const quoteIdent = (name: string) => `\`${name.replace(/`/g, '``')}\``;

function quoteTable(table: string): string {
  const dot = table.indexOf('.');
  if (dot <= 0 || dot === table.length - 1) throw new Error(`table ${JSON.stringify(table)} is not named db.table`);
  return `${quoteIdent(table.slice(0, dot))}.${quoteIdent(table.slice(dot + 1))}`;
}

async function checksums(c: mysql.Connection, tables: string[]): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  for (const t of tables) {
    const r = await one<{ Checksum: string | number | null }>(c, `CHECKSUM TABLE ${quoteTable(t)}`);
    out.set(t, r?.Checksum === null || r?.Checksum === undefined ? null : String(r.Checksum));
  }
  return out;
}

/**
 * CHECKSUM TABLE of `tables` on both sides at one GTID position: the primary's sums are taken
 * between two equal reads of its position (retried while it writes), then the replica is run up
 * to exactly that position (START SLAVE UNTIL master_gtid_pos), summed, and started again.
 */
export async function compareChecksums(spec: NodeSpec, admin: Login, primary: Endpoint, primaryLogin: Login, tables: string[], timeoutMs: number): Promise<{ gtid: string; tables: TableChecksum[] }> {
  const p = await open(primary, primaryLogin);
  let atPrimary: Map<string, string | null> | undefined;
  let gtid = '';
  try {
    for (let attempt = 0; attempt < 10 && !atPrimary; attempt++) {
      const before = (await one<{ pos: string }>(p, 'SELECT @@gtid_binlog_pos AS pos'))!.pos;
      const sums = await checksums(p, tables);
      const after = (await one<{ pos: string }>(p, 'SELECT @@gtid_binlog_pos AS pos'))!.pos;
      if (before === after) {
        atPrimary = sums;
        gtid = after;
      } else await sleep(200);
    }
  } finally {
    await endConnection(p, 2000);
  }
  if (!atPrimary) throw new Error('the primary wrote during each of 10 checksum passes: the tables cannot be compared at one position; try again when it is quieter');
  const r = await open(local(spec), admin);
  try {
    await r.query('STOP SLAVE');
    await r.query('START SLAVE UNTIL master_gtid_pos = ?', [gtid]);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await slaveStatus(r);
      if (s?.Slave_SQL_Running === 'No') {
        if (s.Last_SQL_Error) throw new Error(`the SQL thread stopped: ${s.Last_SQL_Error}`);
        break;
      }
      if (Date.now() > deadline) throw new Error(`the replica did not reach ${gtid} to compare checksums within ${Math.round(timeoutMs / 1000)} s`);
      await sleep(100);
    }
    const atReplica = await checksums(r, tables);
    await r.query('START SLAVE');
    return {
      gtid,
      tables: tables.map((t) => ({ table: t, primary: atPrimary!.get(t) ?? null, replica: atReplica.get(t) ?? null, match: atPrimary!.get(t) === atReplica.get(t) })),
    };
  } finally {
    await endConnection(r, 2000);
  }
}

/**
 * Replication's state for the job's result, once both threads run (a restarted IO thread is
 * `Connecting` for a moment) or `waitMs` has passed or it has stopped on an error.
 */
export async function replicationState(spec: NodeSpec, admin: Login, waitMs = 30_000): Promise<{ io_running: string; sql_running: string; seconds_behind: number | null; gtid_slave_pos: string; error?: string }> {
  const c = await open(local(spec), admin);
  try {
    const deadline = Date.now() + waitMs;
    let s = await slaveStatus(c);
    while (!(s?.Slave_IO_Running === 'Yes' && s.Slave_SQL_Running === 'Yes') && !replicationError(s) && Date.now() < deadline) {
      await sleep(100);
      s = await slaveStatus(c);
    }
    const error = replicationError(s);
    if (error) {
      const pos = (await one<{ pos: string }>(c, 'SELECT @@gtid_slave_pos AS pos'))!.pos;
      return { io_running: s?.Slave_IO_Running ?? 'No', sql_running: s?.Slave_SQL_Running ?? 'No', seconds_behind: s?.Seconds_Behind_Master ?? null, gtid_slave_pos: pos, error };
    }
    const pos = (await one<{ pos: string }>(c, 'SELECT @@gtid_slave_pos AS pos'))!.pos;
    return { io_running: s?.Slave_IO_Running ?? 'No', sql_running: s?.Slave_SQL_Running ?? 'No', seconds_behind: s?.Seconds_Behind_Master ?? null, gtid_slave_pos: pos };
  } finally {
    await endConnection(c, 2000);
  }
}

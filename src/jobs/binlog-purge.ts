// `delete` + `file_type:"binlog"`: purge the binary logs of a local storage node that nothing needs
// any more. Never the current one, never one a replica has not read and applied, never one the
// newest verified cold backup needs for point-in-time recovery. The original node_mgr deleted the
// server's error log here; we touch nothing but what `PURGE BINARY LOGS` removes.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { NodeSpec } from '../engines/node-spec.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import { closeSession, isLocalAddress, openSession, rows, type Credentials, type Session, type SqlTarget } from './node-sql.ts';

export interface PurgeRequest {
  creds: Credentials;
  /** Purge only binlogs before this one (it is kept), like `PURGE BINARY LOGS TO`. */
  to?: string;
  /** Purge only binlogs last written before this ISO time, like `PURGE BINARY LOGS BEFORE`. */
  before?: string;
  dryRun?: boolean;
}

export interface PurgeDeps {
  supervisor: Supervisor;
  log: Logger;
  /**
   * The binlog file the newest verified cold backup of the node starts from, or null when it has
   * none: point-in-time recovery replays the binlogs from that file on, so they are kept.
   */
  newestBackupBinlog: (nodeId: string) => Promise<string | null>;
  /**
   * What the node's binlog archive holds, or null when archiving is off for the node. Throws when
   * the archive cannot be read: the purge then keeps everything rather than guess.
   */
  binlogArchive?: (nodeId: string) => Promise<ArchiveCoverage | null>;
}

/** The binlog files in a node's archive, as the purge needs them. */
export interface ArchiveCoverage {
  /** Where the archive is, for the reasons (`<store>:<dir>`). */
  where: string;
  /** Files committed to the archive (an INDEX line). */
  files: ReadonlySet<string>;
  /** Files up to this sequence number were archived and then removed by retention. */
  retiredThrough: number | null;
}

export interface BinlogFile {
  name: string;
  size: number;
  /** Last modification, when known (needed for `before`). */
  mtimeMs: number | null;
}

/** What one replica still needs from this node: `needs` null when its position could not be read. */
export interface ReplicaNeed {
  replica: string;
  needs: string | null;
  /** How it was learnt, or why it could not be. */
  detail: string;
}

export interface PurgeConstraints {
  current: string;
  replicas: ReplicaNeed[];
  backup: string | null;
  to?: string;
  before?: Date;
  /** With binlog archiving on: a file not archived yet is never purged. */
  archive?: ArchiveCoverage | null;
}

export interface BinlogVerdict {
  file: string;
  size: number;
  action: 'purge' | 'keep';
  reason: string;
}

/** `binlog.000012` → 12; null for a name without a numeric extension. */
function sequence(name: string): number | null {
  const m = /\.(\d+)$/.exec(name);
  return m ? Number(m[1]) : null;
}

/**
 * Index in `files` of `name`; a name not in the index is placed by its sequence number (0 when it
 * is older than every file we have: what it needs is already gone, so it holds nothing back).
 */
function positionOf(files: BinlogFile[], name: string): number {
  const i = files.findIndex((f) => f.name === name);
  if (i >= 0) return i;
  const seq = sequence(name);
  if (seq === null) return 0;
  const later = files.findIndex((f) => (sequence(f.name) ?? Infinity) > seq);
  return later < 0 ? files.length : later;
}

/**
 * Decides, file by file, what may go. Pure: the gathering is done by purgeBinlogs. A file is kept
 * when any rule keeps it; each kept file says every rule that keeps it.
 */
export function planPurge(files: BinlogFile[], c: PurgeConstraints): BinlogVerdict[] {
  const rules: Array<{ from: number; reason: string }> = [];
  rules.push({ from: positionOf(files, c.current), reason: 'the current binlog' });
  for (const r of c.replicas) {
    if (r.needs === null) rules.push({ from: 0, reason: `replica ${r.replica} is connected but what it still needs is unknown (${r.detail})` });
    else rules.push({ from: positionOf(files, r.needs), reason: `replica ${r.replica} still needs it (it is at ${r.needs})` });
  }
  if (c.backup !== null) rules.push({ from: positionOf(files, c.backup), reason: `the newest verified cold backup needs it for point-in-time recovery (from ${c.backup})` });
  if (c.to !== undefined) rules.push({ from: positionOf(files, c.to), reason: `not before "to" (${c.to})` });
  if (c.before !== undefined) {
    const first = files.findIndex((f) => f.mtimeMs === null || f.mtimeMs >= c.before!.getTime());
    rules.push({ from: first < 0 ? files.length : first, reason: `not last written before "before" (${c.before.toISOString()})` });
  }
  // PURGE … TO removes every file before the first kept one: an unarchived file holds back all after it.
  const archive = c.archive;
  const isArchived = (f: BinlogFile) => archive!.files.has(f.name) || (archive!.retiredThrough !== null && (sequence(f.name) ?? Infinity) <= archive!.retiredThrough);
  const firstUnarchived = archive ? files.findIndex((f) => !isArchived(f)) : -1;
  const purgedBecause = [
    'older than the current binlog',
    c.replicas.length > 0 ? 'read and applied by every replica' : 'no replica is connected',
    ...(c.backup !== null ? ['older than the newest verified backup'] : []),
    ...(c.to !== undefined ? [`before "to"`] : []),
    ...(c.before !== undefined ? [`last written before "before"`] : []),
    ...(archive ? [`archived (${archive.where})`] : []),
  ].join(', ');
  return files.map((f, i) => {
    const keeping = rules.filter((r) => i >= r.from).map((r) => r.reason);
    if (archive && firstUnarchived >= 0 && i >= firstUnarchived) {
      keeping.push(
        !isArchived(f)
          ? `not archived yet (binlog archiving is on for this node: ${archive.where})`
          : `${files[firstUnarchived]!.name}, older than it, is not archived yet (binlog archiving is on for this node)`,
      );
    }
    return keeping.length > 0
      ? { file: f.name, size: f.size, action: 'keep' as const, reason: keeping.join('; ') }
      : { file: f.name, size: f.size, action: 'purge' as const, reason: `no longer needed: ${purgedBecause}` };
  });
}

export interface PurgeResult {
  node: string;
  dry_run: boolean;
  current: string;
  replicas: ReplicaNeed[];
  backup: string | null;
  binlogs: Array<{ file: string; size: number; action: 'purged' | 'kept' | 'would purge'; reason: string }>;
}

export async function purgeBinlogs(node: NodeSpec, req: PurgeRequest, deps: PurgeDeps): Promise<PurgeResult> {
  const before = req.before === undefined ? undefined : new Date(req.before);
  if (before !== undefined && Number.isNaN(before.getTime())) throw new Error(`"before" ${JSON.stringify(req.before)} is not an ISO date-time`);
  const conn = await openSession(node, req.creds, 'purging binlogs');
  try {
    const [vars] = await rows<{ on: number; base: string | null }>(conn, 'SELECT @@log_bin AS `on`, @@log_bin_basename AS base');
    if (!vars || !Number(vars.on)) throw new Error(`binary logging is off on ${node.id}: there are no binlogs to purge`);
    const files = await listBinlogs(conn, vars.base);
    const [master] = await rows<{ File: string }>(conn, 'SHOW MASTER STATUS');
    if (!master) throw new Error(`${node.id} shows no current binlog (SHOW MASTER STATUS is empty)`);
    if (req.to !== undefined && !files.some((f) => f.name === req.to)) {
      throw new Error(`binlog ${JSON.stringify(req.to)} is not in the binlog index of ${node.id} (it has ${files[0]?.name} … ${files.at(-1)?.name})`);
    }
    const replicas = await replicaNeeds(conn, node, req.creds, deps);
    const backup = await deps.newestBackupBinlog(node.id);
    const archive = (await deps.binlogArchive?.(node.id)) ?? null;
    const plan = planPurge(files, { current: master.File, replicas, backup, to: req.to, before, archive });
    const doomed = plan.filter((v) => v.action === 'purge');
    const result: PurgeResult = { node: node.id, dry_run: Boolean(req.dryRun), current: master.File, replicas, backup, binlogs: [] };
    if (req.dryRun || doomed.length === 0) {
      result.binlogs = plan.map((v) => ({ file: v.file, size: v.size, action: v.action === 'purge' ? 'would purge' : 'kept', reason: v.reason }));
      return result;
    }
    // PURGE … TO removes every file before the named one: the first file we keep.
    const firstKept = plan.find((v) => v.action === 'keep')!.file;
    deps.log.info({ node: node.id, to: firstKept, files: doomed.map((v) => v.file) }, 'purging binlogs');
    await conn.query('PURGE BINARY LOGS TO ?', [firstKept]);
    const left = new Set((await listBinlogs(conn, null)).map((f) => f.name));
    result.binlogs = plan.map((v) => {
      if (v.action === 'keep') return { file: v.file, size: v.size, action: 'kept', reason: v.reason };
      // The server keeps a file a binlog reader still has open, whatever we planned.
      if (left.has(v.file)) return { file: v.file, size: v.size, action: 'kept', reason: 'the server did not purge it (a binlog reader may still have it open)' };
      return { file: v.file, size: v.size, action: 'purged', reason: v.reason };
    });
    return result;
  } finally {
    await closeSession(conn);
  }
}

async function listBinlogs(conn: Session, base: string | null): Promise<BinlogFile[]> {
  const list = await rows<{ Log_name: string; File_size: number | string }>(conn, 'SHOW BINARY LOGS');
  const dir = base ? path.dirname(base) : null;
  return Promise.all(
    list.map(async (r) => ({
      name: r.Log_name,
      size: Number(r.File_size),
      mtimeMs: dir ? await stat(path.join(dir, r.Log_name)).then((s) => s.mtimeMs, () => null) : null,
    })),
  );
}

interface SlaveStatusRow {
  Master_Host: string;
  Master_Port: number | string;
  Master_Log_File: string;
  Relay_Master_Log_File: string;
  Connection_name?: string;
}

/** The older of the file the IO thread reads and the file the SQL thread executes: lost relay logs are re-read from there. */
function neededFrom(row: SlaveStatusRow): string | null {
  const files = [row.Relay_Master_Log_File, row.Master_Log_File].filter((f) => typeof f === 'string' && f.length > 0);
  if (files.length === 0) return null;
  return files.sort((a, b) => (sequence(a) ?? 0) - (sequence(b) ?? 0))[0]!;
}

/** Replication rows of a server that point at this node (its port on one of this host's addresses). */
async function rowsPointingAt(conn: Session, node: NodeSpec): Promise<SlaveStatusRow[]> {
  let status: SlaveStatusRow[];
  try {
    // MariaDB: every connection of a multi-source replica.
    status = await rows<SlaveStatusRow>(conn, 'SHOW ALL SLAVES STATUS');
  } catch {
    status = await rows<SlaveStatusRow>(conn, 'SHOW SLAVE STATUS');
  }
  return status.filter((r) => Number(r.Master_Port) === node.port && (r.Master_Host === node.ip || isLocalAddress(r.Master_Host)));
}

/** The oldest file any of the rows needs; null when none says. */
function oldestNeed(found: SlaveStatusRow[]): string | null {
  const needs = found.map(neededFrom).filter((f): f is string => f !== null);
  return needs.sort((a, b) => (sequence(a) ?? 0) - (sequence(b) ?? 0))[0] ?? null;
}

/**
 * What every replica still needs. Connected replicas come from SHOW SLAVE HOSTS (host and port)
 * and the binlog dump threads of SHOW PROCESSLIST; each is asked for its own SHOW SLAVE STATUS,
 * with the node's admin credentials when this node-mgr supervises it, else with the caller's.
 * Replicas on this host that point at the node are asked even when disconnected (IO thread
 * stopped): a disconnected replica elsewhere is invisible, which the README says.
 */
async function replicaNeeds(conn: Session, node: NodeSpec, creds: Credentials, deps: PurgeDeps): Promise<ReplicaNeed[]> {
  const hosts = await rows<{ Server_id: number; Host: string; Port: number }>(conn, 'SHOW SLAVE HOSTS');
  const dumps = (await rows<{ Command: string; Host: string }>(conn, 'SHOW PROCESSLIST')).filter((p) => /^Binlog Dump/i.test(p.Command));
  const dumpIps = dumps.map((d) => d.Host.replace(/:\d+$/, ''));
  const needs: ReplicaNeed[] = [];
  const asked = new Set<string>();

  const ask = async (target: SqlTarget, tryCreds: Credentials[], via: string): Promise<ReplicaNeed> => {
    let lastError = 'no credentials to ask it with';
    for (const c of tryCreds) {
      let replica: Session | undefined;
      try {
        replica = await openSession(target, c, 'reading its replication position');
        const found = await rowsPointingAt(replica, node);
        const file = oldestNeed(found);
        if (found.length === 0) return { replica: target.id, needs: null, detail: `${via}, but its SHOW SLAVE STATUS shows no connection to port ${node.port}` };
        if (file === null) return { replica: target.id, needs: null, detail: `${via}, but its SHOW SLAVE STATUS shows no binlog position` };
        return { replica: target.id, needs: file, detail: `${via}; Relay_Master_Log_File/Master_Log_File from its SHOW SLAVE STATUS` };
      } catch (err) {
        lastError = (err as Error).message;
      } finally {
        await closeSession(replica);
      }
    }
    return { replica: target.id, needs: null, detail: `${via}, but its position could not be read: ${lastError}` };
  };

  const local = (host: string, port: number) => {
    const n = deps.supervisor.byPort(port);
    return n && n.kind === 'mysql' && (n.ip === host || isLocalAddress(host)) ? deps.supervisor.spec(n.id) : undefined;
  };

  for (const h of hosts) {
    // Without report_host MariaDB shows the replica's address; an empty Host leaves only the dump threads'.
    const host = h.Host || (new Set(dumpIps).size === 1 ? dumpIps[0]! : '');
    const id = `${host || '?'}:${h.Port} (server_id ${h.Server_id})`;
    if (!host) {
      needs.push({ replica: id, needs: null, detail: 'listed by SHOW SLAVE HOSTS without an address to reach it at' });
      continue;
    }
    const spec = local(host, Number(h.Port));
    const target: SqlTarget = { id, host, port: Number(h.Port) };
    const tryCreds = spec ? [{ user: spec.user, password: spec.password }, creds] : [creds];
    needs.push(await ask(target, tryCreds, 'connected (SHOW SLAVE HOSTS)'));
    asked.add(`${host}:${h.Port}`);
    if (spec) asked.add(`local:${spec.id}`);
  }
  // A binlog reader that did not register as a replica (or one more than SHOW SLAVE HOSTS lists) may need anything.
  if (dumps.length > hosts.length) {
    needs.push({ replica: `binlog reader(s) from ${[...new Set(dumpIps)].join(', ')}`, needs: null, detail: `${dumps.length} binlog dump thread(s) but ${hosts.length} registered replica(s)` });
  }
  for (const other of deps.supervisor.list()) {
    if (other.kind !== 'mysql' || other.id === node.id || !deps.supervisor.is(other.id, 'idle') || asked.has(`local:${other.id}`)) continue;
    const spec = deps.supervisor.spec(other.id)!;
    let replica: Session | undefined;
    try {
      replica = await openSession(spec, { user: spec.user, password: spec.password }, 'reading its replication position');
      const found = await rowsPointingAt(replica, node);
      if (found.length > 0) {
        needs.push({ replica: spec.id, needs: oldestNeed(found), detail: 'a replica on this host (found through its SHOW SLAVE STATUS, connected or not)' });
      }
    } catch (err) {
      deps.log.warn({ node: other.id, err: (err as Error).message }, 'could not ask a local node whether it replicates from the purged node');
    } finally {
      await closeSession(replica);
    }
  }
  return needs;
}

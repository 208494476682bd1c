// The backup job types: `coldbackup` and `coldrestore` (PROTOCOL §3–§4, also from the REST face),
// `verify_backup` and `prune_backups`. The legacy edge has parsed the request and resolved the node
// by s_port into the job's nodeId; REST requests carry the same fields without the s_* login.
import type { Config } from '../config/schema.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { engineFor } from '../engines/index.ts';
import { storeNamed } from '../backup/index.ts';

export { storeNamed };
import { backupDirFor, pruneBackups, verifyAndRecord, listBackups, type PruneResult, type RetentionPolicy, type VerifyRecord } from '../backup/catalog.ts';
import path from 'node:path';
import { cleanUpAfterBackup, readBackupJournals } from '../backup/backup-journal.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import type { NodeMgrMetrics } from '../metrics/metrics.ts';
import { coldBackup } from './cold-backup.ts';
import { coldRestore } from './cold-restore.ts';
import { pointInTimeRestore } from './point-in-time-restore.ts';
import { rebuildReplica, type RebuildRequest } from './replica-rebuild.ts';
import { sendDestination } from './table-transfer.ts';
import { isLocalAddress } from './node-sql.ts';
import type { JobContext } from './job.ts';
import type { JobRunner } from './runner.ts';

/** Params of a coldbackup job: the legacy request, or the REST one (no s_* fields). */
export interface ColdBackupParams {
  s_ip?: string;
  s_port?: number;
  s_user?: string;
  s_pwd?: string;
  /** `local` or `hdfs`/`webhdfs`; the configured store when absent. */
  store?: string;
}

export interface ColdRestoreParams extends ColdBackupParams {
  /** The backup; with restore_time optional (the newest usable one before that time). */
  file?: string;
  /** Restore to this time: ISO 8601, or `YYYY-MM-DD HH:MM:SS` in the server's time zone. */
  restore_time?: string;
}

/** Params of rebuild_node: the REST body (primary) or the seed-style one (s_*, primary_ip/primary_port). */
export interface RebuildNodeParams extends ColdBackupParams, Omit<RebuildRequest, 'primary'> {
  primary?: string;
  primary_ip?: string;
  primary_port?: number;
}

export interface VerifyBackupParams {
  /** One backup, by its store path. */
  file?: string;
  /** Or every backup of this node's directory. */
  port?: number;
  store?: string;
}

export interface PruneBackupsParams {
  /** One node's directory; every local node's when absent. */
  port?: number;
  dry_run?: boolean;
  /** Override backup.keep / backup.keepDays for this run. */
  keep?: number;
  keep_days?: number;
  store?: string;
}

export const STORE_NAMES = ['local', 'hdfs', 'webhdfs'] as const;

/** The job's node, which must be able to hold a backup, named by a local s_ip when one is given. */
function jobNode(ctx: JobContext, supervisor: Supervisor, sIp?: string): NodeSpec {
  const spec = ctx.nodeId ? supervisor.spec(ctx.nodeId) : undefined;
  if (!spec) throw new Error(`the job's node ${ctx.nodeId ?? '(none)'} is not supervised here`);
  if (!engineFor(spec.kind).backup) throw new Error(`${spec.id} is a ${spec.kind} node: it has no data to back up or restore`);
  if (sIp !== undefined && !isLocalAddress(sIp)) throw new Error(`s_ip ${sIp} is not an address of this host; the job runs on the node's own host`);
  return spec;
}

/** The directories whose backups `prune_backups` looks after: one node's, or every local node's. */
function pruneTargets(supervisor: Supervisor, port?: number): { node: string; dir: string }[] {
  const nodes = supervisor.list().filter((n) => (port === undefined || n.port === port) && engineFor(n.kind).backup);
  if (port !== undefined && nodes.length === 0) throw new Error(`no node with backups on port ${port} on this host`);
  const dirs = new Map<string, string>();
  for (const n of nodes) {
    try {
      dirs.set(backupDirFor(n), n.id);
    } catch {
      // A node without cluster/shard has no backup directory: nothing to prune for it.
    }
  }
  return [...dirs].map(([dir, node]) => ({ node, dir }));
}

export function registerBackupJobs(jobs: JobRunner, config: Config, supervisor: Supervisor, opts: { metrics?: Pick<NodeMgrMetrics, 'observeBackup'> } = {}): void {
  jobs.register('coldbackup', async (ctx) => {
    const req = ctx.params as ColdBackupParams;
    const spec = jobNode(ctx, supervisor, req.s_ip);
    // The caller's login when given (the seed sends one), else the node's configured admin.
    const creds = req.s_user !== undefined ? { user: req.s_user, password: req.s_pwd ?? '' } : { user: spec.user, password: spec.password };
    return coldBackup(ctx, spec, creds, storeNamed(config, req.store), { config, supervisor, metrics: opts.metrics });
  }, { holdsNode: 'backing up' });

  jobs.register('coldrestore', async (ctx) => {
    const req = ctx.params as ColdRestoreParams;
    const spec = jobNode(ctx, supervisor, req.s_ip);
    const creds = req.s_user !== undefined ? { user: req.s_user, password: req.s_pwd ?? '' } : undefined;
    const store = storeNamed(config, req.store);
    if (req.restore_time !== undefined) return pointInTimeRestore(ctx, spec, { restore_time: req.restore_time, file: req.file }, store, { supervisor, creds });
    if (req.file === undefined) throw new Error('coldrestore needs "file" (a backup) or "restore_time"');
    return coldRestore(ctx, spec, req.file, store, { supervisor, creds });
  }, { holdsNode: 'restoring' });

  jobs.register('rebuild_node', async (ctx) => {
    const req = ctx.params as RebuildNodeParams;
    const spec = jobNode(ctx, supervisor, req.s_ip);
    const creds = req.s_user !== undefined ? { user: req.s_user, password: req.s_pwd ?? '' } : undefined;
    const primary = req.primary ?? (req.primary_ip !== undefined && req.primary_port !== undefined ? `${req.primary_ip.includes(':') ? `[${req.primary_ip}]` : req.primary_ip}:${req.primary_port}` : undefined);
    if (!primary) throw new Error('rebuild_node needs "primary" (host:port) or primary_ip and primary_port');
    return rebuildReplica(ctx, spec, { ...req, primary }, storeNamed(config, req.store), {
      config,
      supervisor,
      peerNode: async (host, port, signal) => {
        let dest;
        try {
          dest = sendDestination(config, supervisor, host, port);
        } catch {
          return null;
        }
        return 'peer' in dest ? dest.peer.node(port, signal) : dest.local;
      },
    }, creds);
  }, { holdsNode: 'rebuilding' });

  jobs.register('verify_backup', async (ctx) => {
    const req = ctx.params as VerifyBackupParams;
    const store = storeNamed(config, req.store);
    let files: string[];
    if (req.file !== undefined) files = [req.file];
    else {
      const node = req.port !== undefined ? supervisor.byPort(req.port) : undefined;
      if (!node) throw new Error(`verify_backup needs "file" or the "port" of a node on this host`);
      files = (await listBackups(store, backupDirFor(node))).map((b) => b.path);
    }
    const results: { file: string; result: VerifyRecord['result']; error?: string; files?: number; bytes?: number }[] = [];
    let done = 0;
    for (const file of files) {
      ctx.progress({ phase: `verifying ${file}`, bytesDone: 0 });
      try {
        const r = await verifyAndRecord(store, file, { signal: ctx.signal, onBytes: (d, total) => ctx.progress({ phase: `verifying ${file}`, bytesDone: d, bytesTotal: total }) });
        results.push({ file, result: 'ok', files: r.files, bytes: r.bytes });
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        results.push({ file, result: 'failed', error: (err as Error).message });
      }
      done++;
    }
    const failed = results.filter((r) => r.result === 'failed');
    // One backup asked for: its failure is the job's. Several: the job reports each.
    if (req.file !== undefined && failed.length) throw new Error(failed[0]!.error);
    return { verified: done, failed: failed.length, backups: results };
  }, { waitsForHolder: true });

  jobs.register('prune_backups', async (ctx) => {
    const req = ctx.params as PruneBackupsParams;
    const store = storeNamed(config, req.store);
    const policy: RetentionPolicy = {
      keep: req.keep ?? config.backup.keep,
      keepDays: req.keep_days ?? config.backup.keepDays,
    };
    // Backups that did not end and are not running now: their uploads go whatever their age.
    const { journals } = await readBackupJournals(config.stateDir);
    const interrupted = journals.filter((j) => {
      const status = jobs.get(j.job)?.status;
      return j.store === store.name && status !== 'running' && status !== 'queued';
    });
    const results: (PruneResult & { node: string })[] = [];
    for (const { node, dir } of pruneTargets(supervisor, req.port)) {
      ctx.progress({ phase: `pruning ${dir}` });
      const mine = interrupted.filter((j) => path.posix.dirname(j.final) === dir);
      results.push({ node, ...(await pruneBackups(store, dir, policy, { dryRun: req.dry_run, interrupted: mine })) });
      // Their staging dirs and journals go too, once the store holds nothing of them.
      if (!req.dry_run) for (const j of mine) await cleanUpAfterBackup(config.stateDir, j, store).catch(() => undefined);
    }
    return { policy, dirs: results };
  }, { waitsForHolder: true });
}

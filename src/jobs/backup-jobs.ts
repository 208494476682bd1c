// The backup job types: `coldbackup` and `coldrestore` (PROTOCOL §3–§4, also from the REST face),
// `verify_backup` and `prune_backups`. The legacy edge has parsed the request and resolved the node
// by s_port into the job's nodeId; REST requests carry the same fields without the s_* login.
import path from 'node:path';
import { z } from 'zod';
import type { Config } from '../config/schema.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { engineFor } from '../engines/index.ts';
import { checkStorePath, storeNamed } from '../backup/index.ts';
import { backupDirFor, pruneBackups, verifyAndRecord, listBackups, type PruneResult, type RetentionPolicy, type VerifyRecord } from '../backup/catalog.ts';
import { cleanUpAfterBackup, readBackupJournals } from '../backup/backup-journal.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import type { NodeMgrMetrics } from '../metrics/metrics.ts';
import { coldBackup } from './cold-backup.ts';
import { coldRestore } from './cold-restore.ts';
import { pointInTimeRestore } from './point-in-time-restore.ts';
import { rebuildReplica } from './replica-rebuild.ts';
import { sendDestination } from './table-transfer.ts';
import { isLocalAddress } from './node-sql.ts';
import type { JobContext } from './job.ts';
import { portNumber, sourceLogin, text } from './job-params.ts';
import type { JobRunner } from './runner.ts';

/**
 * The store by name (STORE_NAMES), the configured one when absent. The job resolves it with
 * storeNamed, so an unknown name fails the job saying so; the REST face narrows it to STORE_NAMES.
 */
const storeName = text(64);

/** A backup's path in the store (PROTOCOL §4): refused before a job exists when it could climb out. */
export const storePath = text(1024).refine(
  (p) => {
    try {
      checkStorePath(p);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'must be an absolute path in the backup store, without "." or ".." segments or control characters' },
);

/** A backup archive by its path in the store, as the REST face names one. */
export const backupArchive = z
  .string()
  .min(2)
  .max(1024)
  .regex(/^\/.*\.tgz$/)
  .meta({ description: 'the backup archive, e.g. /coldbackup/clust1/shard1/coldback_20211122_234303.tgz' });

/**
 * coldbackup: the seed's request names the node and the login (s_*); the REST one names the node by
 * its URL and leaves the login to the node's configured admin.
 */
export const coldBackupParams = z.object({
  s_ip: sourceLogin.s_ip.optional(),
  s_port: sourceLogin.s_port.optional(),
  s_user: sourceLogin.s_user.optional(),
  s_pwd: sourceLogin.s_pwd.optional(),
  store: storeName.optional(),
});
export type ColdBackupParams = z.infer<typeof coldBackupParams>;

/** ISO 8601, or `YYYY-MM-DD HH:MM:SS` in the server's time zone; the job reads it (point-in-time.ts). */
const restoreTime = z
  .string()
  .max(64)
  .regex(/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?$/, 'must be ISO 8601 (2026-12-04T10:15:00Z) or YYYY-MM-DD HH:MM:SS')
  .meta({
    description:
      "restore to this time: ISO 8601 (2026-12-04T10:15:00Z), or YYYY-MM-DD HH:MM:SS in the server's time zone; the newest usable backup before it is replayed forward with the archived binlogs",
  });

/**
 * coldrestore: as coldbackup, and what to restore: a backup (`file`), a time (`restore_time`: the
 * newest usable backup before it, replayed forward), or a backup to a time. One of the two is needed
 * (namesBackupOrTime), which each face checks on its whole body.
 */
export const coldRestoreParams = coldBackupParams.extend({ file: storePath.optional(), restore_time: restoreTime.optional() });
export type ColdRestoreParams = z.infer<typeof coldRestoreParams>;

/** A restore names a backup, a time, or both. */
export function namesBackupOrTime(p: { file?: string; restore_time?: string }): boolean {
  return p.file !== undefined || p.restore_time !== undefined;
}

/** `host:port` (an IPv6 host in brackets). */
const hostPort = z
  .string()
  .min(3)
  .max(300)
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/)
  .meta({ description: 'host:port of a MySQL node of the same cluster and shard' });

/**
 * rebuild_node: as coldbackup (the seed's s_* login, the store), the primary to follow — `primary`
 * (host:port), or the seed-style `primary_ip` and `primary_port` (namesPrimary; each face checks it
 * on its whole body) — and the bounds of the catch-up and the comparison.
 */
export const rebuildNodeParams = coldBackupParams.extend({
  primary: hostPort.optional(),
  primary_ip: text(64).optional(),
  primary_port: portNumber.optional(),
  tables: z
    .array(z.string().min(3).max(385).regex(/^[^.]+\.[^.]+$/, 'must be db.table'))
    .max(1000)
    .meta({ description: 'db.table to compare; every table up to max_table_mb when absent' })
    .optional(),
  max_table_mb: z.number().gt(0).meta({ description: 'tables compared when none are named: those no bigger (default 256)' }).optional(),
  timeout_s: z.number().int().min(1).max(86_400).meta({ description: 'bound on the catch-up wait (default 600)' }).optional(),
  file: storePath.optional(),
  repl_user: z.string().min(1).max(80).meta({ description: "the replica's login on the primary; the node's admin login when absent" }).optional(),
  repl_password: z.string().max(256).optional(),
});
export type RebuildNodeParams = z.infer<typeof rebuildNodeParams>;

/** A rebuild names its primary as host:port, or by primary_ip and primary_port. */
export function namesPrimary(p: { primary?: string; primary_ip?: string; primary_port?: number }): boolean {
  return p.primary !== undefined || (p.primary_ip !== undefined && p.primary_port !== undefined);
}

function primaryOf(p: RebuildNodeParams): string {
  if (p.primary !== undefined) return p.primary;
  if (p.primary_ip === undefined || p.primary_port === undefined) throw new Error('rebuild_node needs "primary" (host:port) or primary_ip and primary_port');
  return `${p.primary_ip.includes(':') ? `[${p.primary_ip}]` : p.primary_ip}:${p.primary_port}`;
}

export const verifyBackupParams = z.object({
  /** One backup, by its store path. */
  file: backupArchive.optional(),
  /** Or every backup of this node's directory. */
  port: portNumber.optional(),
  store: storeName.optional(),
});
export type VerifyBackupParams = z.infer<typeof verifyBackupParams>;

export const pruneBackupsParams = z.object({
  /** One node's directory; every local node's when absent. */
  port: portNumber.optional(),
  dry_run: z.boolean().optional(),
  /** Override backup.keep / backup.keepDays for this run. */
  keep: z.number().int().min(1).optional(),
  keep_days: z.number().gt(0).optional(),
  store: storeName.optional(),
});
export type PruneBackupsParams = z.infer<typeof pruneBackupsParams>;

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
  jobs.register('coldbackup', async (ctx: JobContext<ColdBackupParams>) => {
    const req = ctx.params;
    const spec = jobNode(ctx, supervisor, req.s_ip);
    // The caller's login when given (the seed sends one), else the node's configured admin.
    const creds = req.s_user !== undefined ? { user: req.s_user, password: req.s_pwd ?? '' } : { user: spec.user, password: spec.password };
    return coldBackup(ctx, spec, creds, storeNamed(config, req.store), { config, supervisor, metrics: opts.metrics });
  }, { holdsNode: 'backing up' });

  jobs.register('coldrestore', async (ctx: JobContext<ColdRestoreParams>) => {
    const req = ctx.params;
    const spec = jobNode(ctx, supervisor, req.s_ip);
    const creds = req.s_user !== undefined ? { user: req.s_user, password: req.s_pwd ?? '' } : undefined;
    const store = storeNamed(config, req.store);
    if (req.restore_time !== undefined) return pointInTimeRestore(ctx, spec, { restore_time: req.restore_time, file: req.file }, store, { supervisor, creds });
    if (req.file === undefined) throw new Error('coldrestore needs "file" (a backup) or "restore_time"');
    return coldRestore(ctx, spec, req.file, store, { supervisor, creds });
  }, { holdsNode: 'restoring' });

  jobs.register('rebuild_node', async (ctx: JobContext<RebuildNodeParams>) => {
    const req = ctx.params;
    const spec = jobNode(ctx, supervisor, req.s_ip);
    const creds = req.s_user !== undefined ? { user: req.s_user, password: req.s_pwd ?? '' } : undefined;
    return rebuildReplica(ctx, spec, { ...req, primary: primaryOf(req) }, storeNamed(config, req.store), {
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

  jobs.register('verify_backup', async (ctx: JobContext<VerifyBackupParams>) => {
    const req = ctx.params;
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

  jobs.register('prune_backups', async (ctx: JobContext<PruneBackupsParams>) => {
    const req = ctx.params;
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

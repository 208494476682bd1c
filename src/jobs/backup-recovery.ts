// At node-mgr start: the cold backups and restores a killed node-mgr left unfinished. The job
// runner has already marked their records `interrupted`; here the debris goes and each record is
// finished with what really happened.
//
// - A restore: the restore journal puts the data dir in order (restore-journal.ts), and the record
//   then says whether the node has the restored data (succeeded) or kept its previous data (failed).
//   Cut off after the swap but before the job set the binlog GTID position, the node gets it once
//   it runs again.
// - A backup: the backup journal names its staging dir and its `._COPYING_` upload; both are
//   removed and the record says so. The store may be slow or down, so that part runs after start;
//   what it cannot remove stays in the journal for prune_backups and the node's next backup.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Config, NodeEntry } from '../config/schema.ts';
import { LocalDirStore, storeNamed } from '../backup/index.ts';
import { cleanUpAfterBackup, describeCleanUp, readBackupJournals, type BackupJournal } from '../backup/backup-journal.ts';
import { recoverRestore, type RecoveredRestore } from '../backup/restore-journal.ts';
import { describePosition } from '../backup/manifest.ts';
import { engineFor } from '../engines/index.ts';
import { resolveSpec } from '../engines/node-spec.ts';
import { lookupRunAs } from '../host/run-as.ts';
import type { StateStore } from '../state/store.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import { INTERRUPTED_INFO } from './job.ts';

export interface BackupRecovery {
  restores: RecoveredRestore[];
  /** Settles when every interrupted backup's clean-up has been tried (never rejects). */
  backupsCleaned: Promise<void>;
  /**
   * Once the actors are loaded: gives each node whose restore was cut off after the swap, before
   * the job set its log position (the binlog GTID state), that position as soon as it runs.
   * Never rejects; the job's record says how it went.
   */
  finishLogPositions(supervisor: Supervisor): Promise<void>;
}

/**
 * Run at node-mgr start, before the node actors adopt or start anything: finishes every restore a
 * killed node-mgr left half done, and says how each ended. A node it cannot put in order is logged
 * and left alone (its actor then finds whatever is there).
 */
async function recoverInterruptedRestores(config: Config, store: { listNodes(): { entry: NodeEntry }[] }, log: Logger): Promise<RecoveredRestore[]> {
  const recovered: RecoveredRestore[] = [];
  const entries = new Map<number, NodeEntry>();
  for (const row of store.listNodes()) entries.set(row.entry.port, row.entry);
  for (const entry of config.nodes) entries.set(entry.port, entry);
  let runAs;
  try {
    runAs = lookupRunAs(config.runAs);
  } catch {
    return recovered; // the supervisor reports a missing runAs user
  }
  for (const entry of entries.values()) {
    const spec = resolveSpec(config, entry, runAs);
    try {
      const r = await recoverRestore(spec, engineFor(spec.kind), log);
      if (r) recovered.push(r);
    } catch (err) {
      log.error({ node: spec.id, err: String(err) }, 'an interrupted restore could not be put in order');
    }
  }
  return recovered;
}

/** Before any node actor adopts or starts anything. */
export async function recoverInterruptedBackupJobs(config: Config, store: StateStore, log: Logger): Promise<BackupRecovery> {
  const restores = await recoverInterruptedRestores(config, store, log.child({ component: 'restore-recovery' }));
  for (const r of restores) finishRestoreRecord(store, r, log);
  const { journals, unreadable } = await readBackupJournals(config.stateDir);
  for (const file of unreadable) log.error({ file }, 'a backup journal cannot be read; remove it by hand once its upload and staging dir are checked');
  const backupsCleaned = (async () => {
    for (const j of journals) await cleanUpInterruptedBackup(config, store, j, log);
    await sweepLocalStoreTemps(config, log);
  })().catch((err: unknown) => log.error({ err: String(err) }, 'cleaning up after interrupted backups failed'));
  return {
    restores,
    backupsCleaned,
    finishLogPositions: (supervisor) =>
      Promise.all(restores.filter(needsLogPosition).map((r) => finishLogPosition(store, supervisor, r, log))).then(() => undefined),
  };
}

/**
 * The local store's hidden temp files of writes a killed node-mgr never finished (a backup's, an
 * archived binlog's): no journal names them, and only a temp no process holds open is removed, so
 * an upload that starts meanwhile is safe (LocalDirStore.sweepTempFiles).
 */
async function sweepLocalStoreTemps(config: Config, log: Logger): Promise<void> {
  const swept = await new LocalDirStore(config.backup.localDir).sweepTempFiles();
  if (swept.removed.length) log.warn({ removed: swept.removed }, `removed ${swept.removed.length} temp file(s) of unfinished writes from the local backup store`);
  for (const f of swept.failed) log.error({ path: f.path, err: f.error }, 'a temp file of an unfinished write in the local backup store could not be removed');
}

function needsLogPosition(r: RecoveredRestore): boolean {
  return r.outcome === 'restored' && r.journal.step !== 'positioned' && r.journal.position !== undefined;
}

/** How long a restored node may take to be running again before its log position is given up on. */
const RUNNING_WAIT_MS = 10 * 60_000;

async function finishLogPosition(store: StateStore, supervisor: Supervisor, r: RecoveredRestore, log: Logger): Promise<void> {
  const j = r.journal;
  let note: string;
  let set: Record<string, string> = {};
  try {
    const spec = supervisor.spec(j.node);
    const restoreLogPosition = spec ? engineFor(spec.kind).backup?.restoreLogPosition : undefined;
    if (!spec || !restoreLogPosition) return;
    const deadline = Date.now() + RUNNING_WAIT_MS;
    while (!supervisor.is(j.node, 'idle')) {
      if (Date.now() > deadline) throw new Error(`the node was not running within ${RUNNING_WAIT_MS / 60_000} min`);
      await sleep(500, undefined, { ref: false }); // never what keeps a stopping node-mgr alive
    }
    set = await restoreLogPosition(spec, { position: j.position!, creds: { user: spec.user, password: spec.password }, previousDataDir: null });
    note = set.gtid_binlog_pos ? `its binlog GTID position was set back to ${set.gtid_binlog_pos} (${set.binlog_file})` : `its binlog continues at ${set.binlog_file}`;
    log.warn({ node: j.node, job: j.job, ...set }, `after the interrupted restore of ${j.node}: ${note}`);
  } catch (err) {
    note = `setting its binlog position back to the backup's (${describePosition(j.position!)}) failed: ${(err as Error).message}`;
    log.error({ node: j.node, job: j.job }, note);
  }
  try {
    const job = store.getJob(j.job);
    if (job?.status !== 'succeeded') return;
    store.updateJob(j.job, { info: `${job.info}; ${note}`, result: { ...(job.result as Record<string, unknown>), ...set } });
  } catch (err) {
    log.error({ job: j.job, err: String(err) }, 'recording the log position of an interrupted restore failed');
  }
}

function interruptedJob(store: StateStore, id: string) {
  const job = store.getJob(id);
  return job?.status === 'interrupted' ? job : undefined;
}

function finishRestoreRecord(store: StateStore, r: RecoveredRestore, log: Logger): void {
  const j = r.journal;
  const job = interruptedJob(store, j.job);
  if (!job) return;
  const during = `node-mgr was killed while the restore was ${j.step}`;
  const result = { file: j.file, node: j.node, outcome: r.outcome, interrupted_in: j.step, pid: r.running };
  try {
    if (r.outcome === 'restored') {
      const server = r.running !== null ? `its server runs on it (pid ${r.running})` : 'the node starts on it';
      store.updateJob(j.job, { status: 'succeeded', result, info: `restored ${j.node} from ${j.file}: ${during}; at its restart the restored data dir was in place, and ${server}` });
    } else {
      const kept = r.outcome === 'old' ? 'the node keeps its previous data; nothing was restored' : 'the node had no data before the restore and has none now';
      store.updateJob(j.job, { status: 'failed', result, info: `coldrestore of ${j.node} from ${j.file} did not complete: ${during}; ${kept}` });
    }
  } catch (err) {
    log.error({ job: j.job, err: String(err) }, 'recording the outcome of an interrupted restore failed');
  }
}

async function cleanUpInterruptedBackup(config: Config, store: StateStore, j: BackupJournal, log: Logger): Promise<void> {
  let info: string;
  let result: Record<string, unknown>;
  try {
    const done = await cleanUpAfterBackup(config.stateDir, j, storeNamed(config, j.store));
    info = describeCleanUp(done);
    result = { file: j.final, committed: done.committed, removed: done.removed, left: done.left };
    log.warn({ job: j.job, node: j.node, ...result }, `cleaned up after the interrupted backup ${j.job} of ${j.node}: ${info}`);
  } catch (err) {
    info = `could not clean up its upload ${j.copying} and staging dir ${j.staging}: ${(err as Error).message}; prune_backups or the node's next backup tries again`;
    result = { file: j.final, committed: false, removed: [], left: [{ path: j.copying, error: (err as Error).message }] };
    log.error({ job: j.job, node: j.node, err: (err as Error).message }, `cleaning up after the interrupted backup ${j.job} of ${j.node} failed`);
  }
  const job = interruptedJob(store, j.job);
  if (!job) return;
  try {
    store.updateJob(j.job, { result, info: `${INTERRUPTED_INFO}${job.phase ? ` while ${job.phase}` : ''}; ${info}` });
  } catch (err) {
    log.error({ job: j.job, err: String(err) }, 'recording the clean-up of an interrupted backup failed');
  }
}

// `coldrestore` (PROTOCOL §4): replaces a node's data dir with a cold backup from the store.
//
// The archive is unpacked next to the data dir while the node still runs, every digest checked on
// the way (sidecar, then each file against MANIFEST.json); only a backup that passed all checks
// gets the node stopped. Then the data dir is swapped by two renames on one filesystem, and the
// node started on the restored data. Any failure after the stop puts the old data dir back and
// starts the node again; the job says which step failed. The restore journal (restore-journal.ts)
// lets a node-mgr killed half-way put things in order at its next start.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, existsSync } from 'node:fs';
import { chmod, chown, mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import type { TarEntry } from '../backup/archive.ts';
import { checkStorePath, type BackupStore } from '../backup/store.ts';
import { okRecord, recordIfCorrupt, verifyBackup, writeVerifyRecord, type VerifiedBackup } from '../backup/catalog.ts';
import { describePosition, type BackupPosition, type Manifest } from '../backup/manifest.ts';
import { durableRename, removeJournal, writeJournal, type RestoreJournal, type RestoreStep } from '../backup/restore-journal.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { engineFor } from '../engines/index.ts';
import type { BackupCredentials, PhysicalBackup } from '../engines/physical-backup.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import { StepError } from './cold-backup.ts';
import type { JobContext } from './job.ts';

export interface ColdRestoreResult {
  file: string;
  node: string;
  pid: number | null;
  files: number;
  data_bytes: number;
  archive_bytes: number;
  server_version: string;
  position: string;
  source: string;
  duration_s: number;
  /** Seconds the node was down (stop, swap, start). */
  downtime_s: number;
  phases: Record<string, number>;
  /** MariaDB: the binlog file the restored server writes now, and the GTID position it was given. */
  binlog_file?: string;
  gtid_binlog_pos?: string;
  log_position_error?: string;
}

/** A path from an archive, as a path under `root`; refuses anything that could lead out of it. */
function targetPath(root: string, rel: string): string {
  const parts = rel.split('/');
  if (rel === '' || rel.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..') || rel.includes('\0')) {
    throw new Error(`the archive holds an entry named ${JSON.stringify(rel)}, which cannot be placed inside a data dir`);
  }
  return path.join(root, ...parts);
}

/**
 * Writes each archive entry under `root`, owned by the node's OS user, with the archived modes,
 * and remembers what it wrote in `written` (for syncTree).
 */
function unpackInto(root: string, spec: NodeSpec, written: string[]): (entry: TarEntry) => Promise<void> {
  const { uid, gid } = spec.runAs;
  return async (entry) => {
    const target = targetPath(root, entry.path);
    if (entry.type === 'symlink') {
      // Tablespaces outside the data dir (pg_tblspc links) would restore into paths nobody checked.
      throw new Error(`the archive holds a symbolic link ${entry.path} → ${entry.linkTarget}; restoring links (tablespaces outside the data dir) is not supported`);
    }
    await mkdir(path.dirname(target), { recursive: true });
    if (entry.type === 'dir') {
      await mkdir(target, { recursive: true });
      await chown(target, uid, gid);
      await chmod(target, entry.mode & 0o7777);
      written.push(target);
      return;
    }
    const fh = await open(target, 'wx', 0o600);
    try {
      for await (const chunk of entry.body) await fh.write(chunk);
      await fh.chown(uid, gid);
      await fh.chmod(entry.mode & 0o7777);
    } finally {
      await fh.close();
    }
    written.push(target);
  };
}

/**
 * fsyncs every file and directory written, once all are written: the restored data dir must
 * survive a power cut before the old one may go. One pass at the end rather than an fsync per
 * file while unpacking, which would stall the download on each one; by now the kernel has
 * written most of it back already.
 */
async function syncTree(paths: string[]): Promise<void> {
  for (const p of paths) {
    const fh = await open(p, fsConstants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}

export interface ColdRestoreDeps {
  supervisor: Supervisor;
  /** The login for SQL on the restored server (the request's, else the node's admin). */
  creds?: BackupCredentials;
}

/**
 * What a point-in-time restore adds to the restore, all of it before the node is touched: the
 * archived logs fetched and checked, then replayed into the unpacked backup.
 */
export interface RestoreHooks {
  /** Directories the hooks fill, named in the journal so that the next start removes them after a kill. */
  scratchDirs: string[];
  /** Runs first (fetch and check the logs): a failure refuses the restore with the node untouched. */
  beforeUnpack(): Promise<void>;
  /**
   * Runs on the unpacked, prepared backup in `dir`: returns the log position the data is at now
   * (the restored server continues from it) and fields for the job's result. `serverPid` records
   * a private server it runs on `dir`, which a killed node-mgr's next start must stop.
   */
  beforeSwap(dir: string, manifest: Manifest, serverPid: (pid: number | null) => Promise<void>): Promise<{ position: BackupPosition; result: Record<string, unknown> }>;
}

/**
 * A node in its restart loop (preflight, starting, crashed, backoff, held), or one whose data dir is
 * being made (initializing), takes a STOP but not a restore: it is stopped first. The chart answers, so a new state of the loop needs no list here.
 */
function mustStopFirst(supervisor: Supervisor, id: string, jobId: string): boolean {
  return supervisor.accepts(id, { type: 'STOP' }) && !supervisor.accepts(id, { type: 'RESTORE_STARTED', jobId });
}

export async function coldRestore(ctx: JobContext, spec: NodeSpec, file: string, store: BackupStore, deps: ColdRestoreDeps, hooks?: RestoreHooks): Promise<ColdRestoreResult & Record<string, unknown>> {
  const { supervisor } = deps;
  const physical: PhysicalBackup | undefined = engineFor(spec.kind).backup;
  if (!physical) throw new StepError('checking', `node ${spec.id} is a ${spec.kind} node: it has no data dir to restore`);
  const backup = checkStorePath(file);
  if (!backup.endsWith('.tgz')) throw new StepError('checking', `${backup} is not a cold backup archive (.tgz)`);

  const started = Date.now();
  const phases: Record<string, number> = {};
  let phaseStart = started;
  const mark = (name: string) => {
    const now = Date.now();
    phases[name] = Math.round((now - phaseStart) / 100) / 10;
    phaseStart = now;
  };
  const token = randomBytes(4).toString('hex');
  const dirs = {
    dataDir: spec.dataDir,
    newDir: `${spec.dataDir}.restore-${token}`,
    oldDir: `${spec.dataDir}.old-${token}`,
    failedDir: `${spec.dataDir}.failed-${token}`,
  };
  const hadData = existsSync(spec.dataDir);
  let position: RestoreJournal['position'];
  let replayPid: number | null = null;
  const scratchDirs = hooks?.scratchDirs ?? [];
  const journal = (step: RestoreStep): Promise<RestoreJournal> =>
    writeJournal(spec, {
      job: ctx.id,
      node: spec.id,
      file: backup,
      ...dirs,
      hadData,
      step,
      ...(position ? { position } : {}),
      ...(scratchDirs.length ? { scratchDirs } : {}),
      ...(replayPid !== null ? { replayPid } : {}),
    });
  const dropScratch = () => Promise.all(scratchDirs.map((d) => rm(d, { recursive: true, force: true }).catch(() => undefined)));
  const fail = (stepName: string, err: unknown, after: string): StepError =>
    new StepError(stepName, `coldrestore of ${spec.id} from ${backup} failed while ${stepName}: ${(err as Error).message ?? String(err)}; ${after}`, { cause: err });

  // 1. Download, unpack next to the data dir and check every digest. The node is not touched.
  let verified: VerifiedBackup;
  let doing = 'downloading and checking the backup';
  const written: string[] = [];
  let replayed: { position: BackupPosition; result: Record<string, unknown> } | undefined;
  try {
    if (!hadData) await physical.prepareNodeDirs(spec);
    await journal('unpacking');
    if (hooks) {
      doing = 'fetching and checking the archived binlogs';
      await hooks.beforeUnpack();
      doing = 'downloading and checking the backup';
    }
    await mkdir(dirs.newDir, { mode: physical.dataDirMode });
    await chown(dirs.newDir, spec.runAs.uid, spec.runAs.gid);
    ctx.progress({ phase: 'downloading', bytesDone: 0 });
    verified = await verifyBackup(store, backup, {
      sink: unpackInto(dirs.newDir, spec, written),
      signal: ctx.signal,
      onBytes: (done, total) => ctx.progress({ phase: 'downloading', bytesDone: done, bytesTotal: total }),
    });
    const m = verified.manifest;
    if (m.engine.kind !== spec.kind) throw new Error(`it is a backup of a ${m.engine.kind} node (${m.source.node} on ${m.source.host}); ${spec.id} is a ${spec.kind} node`);
    if (spec.kind === 'mysql' && m.engine.flavour !== spec.binaries.mysqlFlavor) {
      throw new Error(`it was taken from a ${m.engine.flavour} server; ${spec.id} runs ${spec.binaries.mysqlFlavor}`);
    }
    mark('download');
    doing = 'preparing the restored files';
    ctx.progress({ phase: 'preparing' });
    await physical.finishUnpacked(spec, dirs.newDir, m, ctx.signal);
    await chmod(dirs.newDir, physical.dataDirMode);
    await syncTree([...written, dirs.newDir]);
    mark('prepare');
    if (hooks) {
      doing = 'replaying the archived binlogs';
      await journal('replaying');
      replayed = await hooks.beforeSwap(dirs.newDir, verified.manifest, async (pid) => {
        replayPid = pid;
        await journal('replaying');
      });
      await dropScratch();
      mark('replay');
    }
  } catch (err) {
    await rm(dirs.newDir, { recursive: true, force: true }).catch(() => undefined);
    await dropScratch();
    await removeJournal(spec).catch(() => undefined);
    // A backup found corrupt is no longer verified, whatever an earlier check said.
    await recordIfCorrupt(store, backup, 'restore', err);
    throw fail(doing, err, 'the node was not touched');
  }
  // The backup was read back in full and every digest matched: that is a verification too.
  await writeVerifyRecord(store, backup, okRecord('restore', verified)).catch(() => undefined);

  // 2. Take the node down through its actor.
  position = replayed?.position ?? verified.manifest.position;
  const downAt = Date.now();
  try {
    await journal('stopping');
    ctx.progress({ phase: 'stopping' });
    // A crash-looping node is the typical one to restore: stop its restart loop first.
    if (mustStopFirst(supervisor, spec.id, ctx.id)) await supervisor.command(spec.id, 'STOP');
    await supervisor.beginRestore(spec.id, ctx.id);
    mark('stop');
  } catch (err) {
    await rm(dirs.newDir, { recursive: true, force: true }).catch(() => undefined);
    const back = await bringBack(supervisor, spec, ctx.id);
    await removeJournal(spec).catch(() => undefined);
    throw fail('stopping the node', err, `the data dir was not touched; ${back}`);
  }

  // 3. Swap: two renames on one filesystem.
  try {
    await journal('swapping');
    ctx.progress({ phase: 'swapping' });
    if (hadData) await durableRename(dirs.dataDir, dirs.oldDir);
    await durableRename(dirs.newDir, dirs.dataDir);
    await journal('swapped');
    mark('swap');
  } catch (err) {
    if (!existsSync(dirs.dataDir) && existsSync(dirs.oldDir)) await durableRename(dirs.oldDir, dirs.dataDir).catch(() => undefined);
    await rm(dirs.newDir, { recursive: true, force: true }).catch(() => undefined);
    const back = await bringBack(supervisor, spec, ctx.id);
    await removeJournal(spec).catch(() => undefined);
    throw fail('swapping the data dir', err, `the previous data dir is in place; ${back}`);
  }

  // 4. Start on the restored data; if it does not come up, put the old data dir back.
  let pid: number | null;
  try {
    ctx.progress({ phase: 'starting' });
    pid = (await supervisor.finishRestore(spec.id, ctx.id)).pid;
    mark('start');
  } catch (err) {
    const back = await rollBack(supervisor, spec, ctx.id, dirs, hadData, journal);
    throw fail('starting the node on the restored data', err, back);
  }
  const downtime = (Date.now() - downAt) / 1000;

  // 5. The log position the data files do not carry (the binlog's GTID state). The data is
  // restored and serving by now: a failure here is reported, not rolled back.
  let logPosition: Record<string, string> = {};
  let logPositionError: string | undefined;
  if (physical.restoreLogPosition) {
    ctx.progress({ phase: 'restoring the log position' });
    try {
      logPosition = await physical.restoreLogPosition(spec, {
        position,
        creds: deps.creds ?? { user: spec.user, password: spec.password },
        previousDataDir: hadData ? dirs.oldDir : null,
      });
      await journal('positioned');
    } catch (err) {
      logPositionError = `the data is restored, but its binlog position (${describePosition(position)}) could not be set back: ${(err as Error).message}`;
      ctx.log.error({ err: (err as Error).message }, logPositionError);
    }
    mark('log_position');
  }

  // 6. Done: the old data dir goes.
  ctx.progress({ phase: 'cleaning' });
  await removeJournal(spec);
  if (hadData) await rm(dirs.oldDir, { recursive: true, force: true });
  mark('clean');
  const m = verified.manifest;
  return {
    file: backup,
    node: spec.id,
    pid,
    files: m.files.length,
    data_bytes: m.total_bytes,
    archive_bytes: verified.bytes,
    server_version: m.engine.server_version,
    position: describePosition(m.position),
    source: `${m.source.node} on ${m.source.host}, ${m.created}`,
    duration_s: Math.round((Date.now() - started) / 100) / 10,
    downtime_s: Math.round(downtime * 10) / 10,
    phases,
    ...(replayed?.result ?? {}),
    ...logPosition,
    ...(logPositionError ? { log_position_error: logPositionError } : {}),
  };
}

/** Ends the restore state without a swap: the node starts on the data dir it had. */
async function bringBack(supervisor: Supervisor, spec: NodeSpec, jobId: string): Promise<string> {
  if (!supervisor.accepts(spec.id, { type: 'RESTORE_FINISHED', jobId })) return `the node is ${supervisor.get(spec.id)?.state ?? 'unknown'}`;
  try {
    const back = await supervisor.finishRestore(spec.id, jobId);
    return `the node is running again (pid ${back.pid})`;
  } catch (err) {
    return `starting the node again failed too: ${(err as Error).message}`;
  }
}

/** After a failed start on the restored data: down again, the old data dir back, up again. */
async function rollBack(
  supervisor: Supervisor,
  spec: NodeSpec,
  jobId: string,
  dirs: { dataDir: string; oldDir: string; failedDir: string },
  hadData: boolean,
  journal: (step: RestoreStep) => Promise<RestoreJournal>,
): Promise<string> {
  try {
    // Not restoring any more (it crashed, or runs on the restored data): down again through its actor.
    if (!supervisor.accepts(spec.id, { type: 'RESTORE_FINISHED', jobId })) {
      if (!supervisor.accepts(spec.id, { type: 'RESTORE_STARTED', jobId })) await supervisor.command(spec.id, 'STOP');
      await supervisor.beginRestore(spec.id, jobId);
    }
    await journal('rolling_back');
    await durableRename(dirs.dataDir, dirs.failedDir);
    if (hadData) await durableRename(dirs.oldDir, dirs.dataDir);
  } catch (err) {
    return `putting the previous data dir back failed: ${(err as Error).message}; see ${spec.dir}/.restore-journal.json (node-mgr completes the rollback at its next start)`;
  }
  await removeJournal(spec).catch(() => undefined);
  await rm(dirs.failedDir, { recursive: true, force: true }).catch(() => undefined);
  if (!hadData) {
    await bringBack(supervisor, spec, jobId).catch(() => undefined);
    return 'the node had no data before the restore and is left without any';
  }
  return `the previous data dir was put back and ${await bringBack(supervisor, spec, jobId)}`;
}

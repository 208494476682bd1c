// `coldrestore` with `restore_time`: the node back to how it was at a time, from the newest usable
// backup before it plus the archived binlogs after it. The plan (point-in-time.ts) is made from the
// store alone; then, all before the node is touched, every archived binlog needed is fetched into
// a scratch dir next to the data dir and its size and sha256 checked against the archive's index,
// the backup is unpacked and checked as for any restore, and the binlogs are replayed into it by
// the engine (a private server on the unpacked dir). Only then does the ordinary restore stop the
// node, swap the directories and start it, with the GTID position the replay ended at. The restore
// journal names the scratch dir and the replay server, so a node-mgr killed at any point leaves the
// node on its old data or the fully restored one.
import { createHash, randomBytes } from 'node:crypto';
import { chown, mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { archivedBinlogPath } from '../backup/binlog-archive.ts';
import { planPointInTime, parseRestoreTime, RestoreTimeRefused, toWholeSecond, type PointInTimePlan } from '../backup/point-in-time.ts';
import type { BackupStore } from '../backup/store.ts';
import { BackupStoreError } from '../backup/store.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { engineFor } from '../engines/index.ts';
import type { BinlogReplay, ReplayFile } from '../engines/physical-backup.ts';
import { StepError } from './cold-backup.ts';
import { coldRestore, type ColdRestoreDeps } from './cold-restore.ts';
import type { JobContext } from './job.ts';

/** An archived binlog whose bytes are not what its index line says. */
export class ArchivedBinlogCorrupt extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchivedBinlogCorrupt';
  }
}

const iso = (d: Date) => d.toISOString().replace('.000Z', 'Z');

/** restore_time as an instant: with a zone as given; without, in the node's server's time zone (the host's when it does not answer). */
async function resolveRestoreTime(text: string, spec: NodeSpec, replay: BinlogReplay, creds: { user: string; password: string }): Promise<Date> {
  const parsed = parseRestoreTime(text);
  if (parsed.instant) return toWholeSecond(parsed.instant);
  const local = parsed.local!;
  const byServer = await replay.serverTime(spec, creds, local);
  if (byServer) return byServer;
  const [d, t] = local.split(' ');
  const [y, mo, day] = d!.split('-').map(Number);
  const [h, mi, s] = t!.split(':').map(Number);
  return new Date(y!, mo! - 1, day!, h!, mi!, s!);
}

/** Downloads each planned binlog into `dir`, checking size and sha256 against the index, owned by the node's user. */
async function fetchBinlogs(ctx: JobContext, spec: NodeSpec, store: BackupStore, plan: PointInTimePlan, dir: string): Promise<ReplayFile[]> {
  await mkdir(dir, { mode: 0o750 });
  await chown(dir, spec.runAs.uid, spec.runAs.gid);
  const total = plan.files.reduce((s, f) => s + f.size, 0);
  let done = 0;
  let lastReport = 0;
  const out: ReplayFile[] = [];
  for (const [i, f] of plan.files.entries()) {
    const report = (force = false) => {
      if (!force && Date.now() - lastReport < 250) return;
      lastReport = Date.now();
      ctx.progress({ phase: 'fetching binlogs', bytesDone: done, bytesTotal: total, filesDone: i, filesTotal: plan.files.length });
    };
    report(true);
    const target = path.join(dir, f.file);
    const from = archivedBinlogPath(plan.archiveDir, f.file);
    const hash = createHash('sha256');
    let size = 0;
    const fh = await open(target, 'wx', 0o640);
    try {
      let stream;
      try {
        stream = await store.read(from, { signal: ctx.signal });
      } catch (err) {
        if (err instanceof BackupStoreError && err.code === 'not_found') throw new ArchivedBinlogCorrupt(`archived binlog ${from} is listed in the index but missing from the ${store.name} store`);
        throw err;
      }
      try {
        for await (const chunk of stream) {
          const b = chunk as Buffer;
          hash.update(b);
          size += b.length;
          done += b.length;
          await fh.write(b);
          report();
        }
      } catch (err) {
        stream.destroy();
        if (err instanceof BackupStoreError && err.code === 'damaged') throw new ArchivedBinlogCorrupt(`archived binlog ${from} is damaged in the store: ${err.message}`);
        throw err;
      }
      await fh.sync();
      await fh.chown(spec.runAs.uid, spec.runAs.gid);
    } finally {
      await fh.close();
    }
    if (size !== f.size) throw new ArchivedBinlogCorrupt(`archived binlog ${from} has ${size} bytes, its index line says ${f.size}`);
    const digest = hash.digest('hex');
    if (digest !== f.sha256) throw new ArchivedBinlogCorrupt(`archived binlog ${from} is corrupt: its sha256 is ${digest}, its index line says ${f.sha256}`);
    out.push({ name: f.file, path: target, size });
  }
  ctx.progress({ phase: 'fetching binlogs', bytesDone: done, bytesTotal: total, filesDone: plan.files.length, filesTotal: plan.files.length });
  return out;
}

export interface PointInTimeRequest {
  restore_time: string;
  /** A backup to start from instead of the newest usable one before restore_time. */
  file?: string;
}

export async function pointInTimeRestore(ctx: JobContext, spec: NodeSpec, req: PointInTimeRequest, store: BackupStore, deps: ColdRestoreDeps) {
  const creds = deps.creds ?? { user: spec.user, password: spec.password };
  const replay = engineFor(spec.kind).backup?.logReplay;
  const refuse = (why: string) => new StepError('checking', `coldrestore of ${spec.id} to ${req.restore_time} refused: ${why}; the node was not touched`);
  if (!replay || spec.binaries.mysqlFlavor !== 'mariadb') {
    throw refuse(`restore to a time replays MariaDB binlogs; ${spec.id} is a ${spec.kind === 'mysql' ? 'MySQL 8' : spec.kind} node, for which it is not implemented (README, "Restore to a time")`);
  }
  ctx.progress({ phase: 'planning' });
  let plan: PointInTimePlan;
  try {
    const stopAt = await resolveRestoreTime(req.restore_time, spec, replay, creds);
    plan = await planPointInTime(store, spec, stopAt, { file: req.file, signal: ctx.signal });
  } catch (err) {
    if (err instanceof RestoreTimeRefused) throw refuse(err.message);
    throw new StepError('checking', `coldrestore of ${spec.id} to ${req.restore_time} failed while planning (reading the store): ${(err as Error).message}; the node was not touched`, { cause: err });
  }
  ctx.log.info({ backup: plan.backup.path, binlogs: plan.files.map((f) => f.file), stop_at: iso(plan.stopAt) }, 'restore to a time planned');

  const scratch = path.join(spec.dir, `.pitr-binlogs-${randomBytes(4).toString('hex')}`);
  let files: ReplayFile[] = [];
  let replayed: Awaited<ReturnType<BinlogReplay['replay']>> | undefined;
  const result = await coldRestore(ctx, spec, plan.backup.path, store, deps, {
    scratchDirs: [scratch],
    beforeUnpack: async () => {
      files = await fetchBinlogs(ctx, spec, store, plan, scratch);
    },
    beforeSwap: async (dir, manifest, serverPid) => {
      if (manifest.position.kind !== 'binlog' || manifest.position.file !== plan.start.file || manifest.position.position !== plan.start.position) {
        throw new Error(`the backup's manifest says position ${JSON.stringify(manifest.position)}, its record ${plan.start.file}:${plan.start.position}`);
      }
      // The bytes to replay: the files from the backup's position on (what the engine's reports count).
      const bytesTotal = Math.max(0, files.reduce((sum, f) => sum + f.size, 0) - manifest.position.position);
      ctx.progress({ phase: 'replaying', bytesDone: 0, bytesTotal, filesDone: 0, filesTotal: files.length, events: 0 });
      replayed = await replay.replay(spec, dir, {
        files,
        start: manifest.position,
        stopAt: plan.stopAt,
        creds,
        signal: ctx.signal,
        onServer: serverPid,
        progress: (p) => ctx.progress({ phase: 'replaying', ...p }),
      });
      await rm(scratch, { recursive: true, force: true });
      return {
        position: replayed.position,
        result: {
          restore_time: iso(plan.stopAt),
          backup_completed: plan.backupCreated,
          binlog_archive: plan.archiveDir,
          binlogs: plan.files.map((f) => f.file),
          binlog_bytes: replayed.bytes,
          events: replayed.events,
          last_event: replayed.last,
        },
      };
    },
  });
  return result;
}

// `coldbackup` (PROTOCOL §4): a hot physical backup of a running storage, meta or computing node,
// packed as coldback_<time>.tgz with MANIFEST.json and streamed to the store. The server keeps
// serving (the node shows `backing_up`). Commit: upload to `<name>._COPYING_`, read it back and
// check its size and sha256, write the sidecar, rename to the final name, record the check, then
// append the path to the record file. A backup that is not complete is never under its final name.
import { randomBytes } from 'node:crypto';
import { chown, mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { engineFor } from '../engines/index.ts';
import { COLD_BACKUP_STAGING_PREFIX } from '../engines/node-layout.ts';
import type { BackupCredentials, PhysicalBackupRun } from '../engines/physical-backup.ts';
import { Digest, digesting, packArchive } from '../backup/archive.ts';
import {
  COPYING_SUFFIX,
  backupDirFor,
  backupFileName,
  okRecord,
  recordFileFor,
  sidecarPath,
  sidecarText,
  writeVerifyRecord,
} from '../backup/catalog.ts';
import { buildManifest, describePosition, serialiseManifest, type Manifest } from '../backup/manifest.ts';
import type { BackupStore } from '../backup/store.ts';
import { cleanUpAfterBackup, describeCleanUp, readBackupJournals, removeBackupJournal, writeBackupJournal } from '../backup/backup-journal.ts';
import { storeNamed } from '../backup/index.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import type { NodeMgrMetrics } from '../metrics/metrics.ts';
import type { JobContext } from './job.ts';

export interface ColdBackupDeps {
  config: Config;
  supervisor: Supervisor;
  metrics?: Pick<NodeMgrMetrics, 'observeBackup'>;
}

export interface ColdBackupResult {
  file: string;
  store: string;
  bytes: number;
  sha256: string;
  files: number;
  data_bytes: number;
  server_version: string;
  position: string;
  duration_s: number;
  /** Seconds per phase: the copy (or stream) of the server, the read-back check, the commit. */
  phases: Record<string, number>;
  /** Data bytes per second over the whole job. */
  throughput_mb_s: number;
}

/** A step of a job that failed: the message names the step, the node and the cause. */
export class StepError extends Error {
  constructor(
    readonly step: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StepError';
  }
}

const STAGING_PREFIX = COLD_BACKUP_STAGING_PREFIX;

/** Where a node's staging dirs go: under backup.stagingDir when configured, else in the node dir. */
function stagingParent(config: Config, spec: NodeSpec): { dir: string; prefix: string } {
  return config.backup.stagingDir
    ? { dir: path.resolve(config.backup.stagingDir), prefix: `${spec.id}${STAGING_PREFIX}` }
    : { dir: spec.dir, prefix: STAGING_PREFIX };
}

/**
 * A fresh staging dir owned by the node's OS user (the backup tool runs as it). Staging dirs a
 * killed node-mgr left behind are removed first: jobs of one node never run at the same time.
 */
async function makeStaging(config: Config, spec: NodeSpec, staging: string): Promise<void> {
  const { dir, prefix } = stagingParent(config, spec);
  await mkdir(dir, { recursive: true });
  for (const name of await readdir(dir)) {
    if (name.startsWith(prefix)) await rm(path.join(dir, name), { recursive: true, force: true });
  }
  await mkdir(staging, { mode: 0o700 });
  await chown(staging, spec.runAs.uid, spec.runAs.gid);
}

/**
 * What earlier backups of this node left and never cleaned up (node-mgr was killed, or the store
 * was unreachable): removed before this one starts. Jobs of one node never run at the same time,
 * so every journal of the node but this job's is over.
 */
async function cleanUpEarlierBackups(ctx: JobContext, spec: NodeSpec, deps: ColdBackupDeps): Promise<void> {
  const { journals } = await readBackupJournals(deps.config.stateDir);
  for (const j of journals.filter((x) => x.node === spec.id && x.job !== ctx.id)) {
    try {
      const done = await cleanUpAfterBackup(deps.config.stateDir, j, storeNamed(deps.config, j.store));
      ctx.log.warn({ job: j.job, ...done }, `cleaned up after the earlier backup ${j.job} of ${spec.id}: ${describeCleanUp(done)}`);
    } catch (err) {
      ctx.log.warn({ job: j.job, err: (err as Error).message }, `cleaning up after the earlier backup ${j.job} of ${spec.id} failed`);
    }
  }
}

function seconds(ms: number): number {
  return Math.round(ms / 100) / 10;
}

/** Runs `fn` as the named step: its failure becomes a StepError that says so. */
async function step<T>(name: string, spec: NodeSpec, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StepError) throw err;
    throw new StepError(name, `coldbackup of ${spec.id} failed while ${name}: ${(err as Error).message ?? String(err)}`, { cause: err });
  }
}

export async function coldBackup(ctx: JobContext, spec: NodeSpec, creds: BackupCredentials, store: BackupStore, deps: ColdBackupDeps): Promise<ColdBackupResult> {
  const physical = engineFor(spec.kind).backup;
  if (!physical) throw new StepError('checking', `node ${spec.id} is a ${spec.kind} node: it holds no data to back up`);
  const dir = backupDirFor(spec);
  const recordFile = recordFileFor(spec.role);
  const started = Date.now();
  const final = `${dir}/${backupFileName(new Date(started))}`;
  const copying = `${final}${COPYING_SUFFIX}`;
  const phases: Record<string, number> = {};
  let phaseStart = started;
  const mark = (name: string) => {
    const now = Date.now();
    phases[name] = seconds(now - phaseStart);
    phaseStart = now;
  };
  let uploaded = 0;
  let committed = false;

  await step('checking the store', spec, async () => {
    if (await store.stat(final)) throw new Error(`${final} already exists (a backup of this shard was taken in the same second)`);
  });
  const parent = stagingParent(deps.config, spec);
  const staging = path.join(parent.dir, `${parent.prefix}${randomBytes(4).toString('hex')}`);
  await cleanUpEarlierBackups(ctx, spec, deps);
  // Written before anything is made: whatever this job leaves, a later node-mgr knows where.
  await step('writing the backup journal', spec, () =>
    writeBackupJournal(deps.config.stateDir, { job: ctx.id, node: spec.id, store: store.name, storeLocation: store.location, final, copying, staging }),
  );
  deps.supervisor.beginWork(spec.id, 'backing_up', ctx.id);
  let run: PhysicalBackupRun | undefined;
  let leftovers = false;
  try {
    await step('preparing the staging directory', spec, () => makeStaging(deps.config, spec, staging));
    run = await step('taking the backup', spec, () => physical.take(spec, { creds, stagingDir: staging, signal: ctx.signal, progress: ctx.progress }));
    mark('copy');
    const backup = run;
    const total = backup.estimatedBytes ?? undefined;
    let dataBytes = 0;
    let lastReport = 0;
    ctx.progress({ phase: 'uploading', bytesDone: 0, bytesTotal: total });
    let manifest: Manifest | undefined;
    const archive = packArchive(
      backup.files(),
      (tree) => {
        manifest = buildManifest({
          engine: backup.engine,
          source: { node: spec.id, role: spec.role, port: spec.port, ...(spec.cluster ? { cluster: spec.cluster } : {}), ...(spec.shard ? { shard: spec.shard } : {}) },
          position: backup.position(),
          prepared: backup.prepared,
          tree,
        });
        return serialiseManifest(manifest);
      },
      {
        onRawBytes: (n) => {
          dataBytes += n;
          const now = Date.now();
          if (now - lastReport >= 250) {
            lastReport = now;
            ctx.progress({ phase: 'uploading', bytesDone: dataBytes, bytesTotal: total === undefined ? undefined : Math.max(total, dataBytes) });
          }
        },
      },
    );
    const digest = new Digest();
    await step(`uploading to ${copying} (${store.name} store ${store.location})`, spec, async () => {
      try {
        await store.write(copying, digesting(archive, digest), { signal: ctx.signal });
      } finally {
        archive.destroy();
      }
      const st = await store.stat(copying);
      if (st?.size !== digest.bytes) throw new Error(`the store holds ${st?.size ?? 'no'} bytes of the ${digest.bytes} uploaded`);
    });
    uploaded = digest.bytes;
    const sha256 = digest.hex();
    mark('upload');

    // The store must hold exactly the bytes that were streamed: read them back, size and sha256.
    // (Decoding the archive and checking every file is verify_backup's, and every restore's.)
    ctx.progress({ phase: 'verifying', bytesDone: 0, bytesTotal: uploaded });
    await step(`verifying the upload ${copying}`, spec, async () => {
      const back = new Digest();
      let lastReport = 0;
      for await (const chunk of await store.read(copying, { signal: ctx.signal })) {
        back.update(chunk as Buffer);
        if (Date.now() - lastReport >= 250) {
          lastReport = Date.now();
          ctx.progress({ phase: 'verifying', bytesDone: back.bytes, bytesTotal: uploaded });
        }
      }
      if (back.bytes !== uploaded) throw new Error(`read back ${back.bytes} bytes of the ${uploaded} uploaded`);
      const got = back.hex();
      if (got !== sha256) throw new Error(`the stored bytes have sha256 ${got}, the uploaded ones ${sha256}`);
    });
    const verified = { manifest: manifest!, sha256, bytes: uploaded };
    mark('verify');

    ctx.progress({ phase: 'committing' });
    await step(`committing ${final}`, spec, async () => {
      await store.write(sidecarPath(final), [Buffer.from(sidecarText(sha256, final))], { signal: ctx.signal });
      await store.rename(copying, final);
      committed = true;
    });
    // Committed: what follows records it; a failure there leaves a valid backup behind.
    await step(`recording ${final}`, spec, async () => {
      await writeVerifyRecord(store, final, okRecord('commit', verified));
      await store.appendLine(recordFile, final);
    });
    mark('commit');
    const durationS = (Date.now() - started) / 1000;
    deps.metrics?.observeBackup({ kind: 'cold', bytes: uploaded, seconds: durationS, result: 'succeeded' });
    return {
      file: final,
      store: store.name,
      bytes: uploaded,
      sha256,
      files: verified.manifest.files.length,
      data_bytes: verified.manifest.total_bytes,
      server_version: verified.manifest.engine.server_version,
      position: describePosition(verified.manifest.position),
      duration_s: seconds(Date.now() - started),
      phases,
      throughput_mb_s: Math.round((verified.manifest.total_bytes / 1e6 / Math.max(durationS, 0.001)) * 10) / 10,
    };
  } catch (err) {
    // Before the commit, nothing may stay: not the upload, not a sidecar without its archive.
    if (!committed) {
      try {
        await store.delete(copying);
        await store.delete(sidecarPath(final));
      } catch (cleanUpErr) {
        // The journal stays: the next start, prune_backups or the next backup removes them.
        leftovers = true;
        ctx.log.warn({ err: (cleanUpErr as Error).message }, `could not remove the unfinished upload ${copying}`);
      }
    }
    deps.metrics?.observeBackup({ kind: 'cold', bytes: uploaded, seconds: (Date.now() - started) / 1000, result: ctx.signal.aborted ? 'cancelled' : 'failed' });
    throw err;
  } finally {
    await run?.close().catch(() => undefined);
    await rm(staging, { recursive: true, force: true }).catch(() => {
      leftovers = true;
    });
    if (!leftovers) await removeBackupJournal(deps.config.stateDir, ctx.id).catch(() => undefined);
    deps.supervisor.endWork(spec.id, ctx.id);
  }
}

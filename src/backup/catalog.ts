// The cold backups in a store: where a node's backups live (PROTOCOL §4 layout), their names,
// sidecar digests and record lines, verification (every digest re-checked by reading the backup
// back) and its recorded result, retention, and the binlog position the newest verified backup
// of a node needs kept.
import { hostname } from 'node:os';
import path from 'node:path';
import type { Config, NodeRole } from '../config/schema.ts';
import { ArchiveError, readArchive, type TarEntry } from './archive.ts';
import { checkAgainstManifest, ManifestError, parseManifest, type Manifest } from './manifest.ts';
import { openStore } from './index.ts';
import { BackupStoreError, checkStorePath, type BackupStore } from './store.ts';
import { retireArchivedBinlogs } from './binlog-retention.ts';

export { BACKUP_ROOT, COPYING_SUFFIX, STALE_UPLOAD_MS, CatalogError, backupDirFor, type BackupOwner } from './layout.ts';
import { BACKUP_ROOT, COPYING_SUFFIX, STALE_UPLOAD_MS, CatalogError, backupDirFor, type BackupOwner } from './layout.ts';
const NAME = /^coldback_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})\.tgz$/;

/** A backup that fails its checks. The message says which and how. */
export class BackupCorruptError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackupCorruptError';
  }
}

/** The record file a committed backup's path is appended to. */
export function recordFileFor(role: NodeRole): string {
  switch (role) {
    case 'storage':
      return `${BACKUP_ROOT}/storage.txt`;
    case 'meta':
      return `${BACKUP_ROOT}/meta.txt`;
    case 'computer':
      return `${BACKUP_ROOT}/computer.txt`;
    default:
      throw new CatalogError(`a ${role} node has no backup record file`);
  }
}

const two = (n: number) => String(n).padStart(2, '0');

/** `coldback_<YYYYMMDD_HHMMSS>.tgz` in UTC: hosts in different time zones sort into one order. */
export function backupFileName(at: Date): string {
  return `coldback_${at.getUTCFullYear()}${two(at.getUTCMonth() + 1)}${two(at.getUTCDate())}_${two(at.getUTCHours())}${two(at.getUTCMinutes())}${two(at.getUTCSeconds())}.tgz`;
}

/** The time in a backup's name, or null for a name that is not a backup's. */
export function backupTime(name: string): Date | null {
  const m = NAME.exec(name);
  if (!m) return null;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  const t = new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!));
  return Number.isNaN(t.getTime()) ? null : t;
}

export const sidecarPath = (backup: string) => `${backup}.sha256`;
export const verifyRecordPath = (backup: string) => `${backup}.verify.json`;

/** The sidecar in `sha256sum` format, so `sha256sum -c` checks a downloaded copy. */
export function sidecarText(sha256: string, backup: string): string {
  return `${sha256}  ${path.posix.basename(backup)}\n`;
}

async function readSmall(store: BackupStore, p: string, limit = 1024 * 1024): Promise<Buffer | null> {
  let stream;
  try {
    stream = await store.read(p);
  } catch (err) {
    if (err instanceof BackupStoreError && err.code === 'not_found') return null;
    throw err;
  }
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      stream.destroy();
      throw new CatalogError(`${p} is larger than ${limit} bytes: it is not what node-mgr writes there`);
    }
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

/** The archive digest its sidecar holds. */
export async function readSidecar(store: BackupStore, backup: string): Promise<string> {
  const raw = await readSmall(store, sidecarPath(backup), 4096);
  if (raw === null) throw new BackupCorruptError(`${backup} has no sidecar digest ${sidecarPath(backup)}: it was not committed by node-mgr, or the sidecar was lost`);
  const hex = /^([0-9a-f]{64})\b/.exec(raw.toString('utf8').trim())?.[1];
  if (!hex) throw new BackupCorruptError(`the sidecar ${sidecarPath(backup)} does not hold a sha256 digest`);
  return hex;
}

// ---------------------------------------------------------------------------------------------
// Verification

/**
 * The recorded result of the last check of a backup, kept next to it in the store (so that it
 * travels with the backup, is seen by every node-mgr sharing the shard's directory, and goes when
 * the backup goes).
 */
export interface VerifyRecord {
  result: 'ok' | 'failed';
  /** ISO time of the check. */
  at: string;
  /** The node-mgr host that checked. */
  by: string;
  /**
   * `commit`: the upload was read back and its size and sha256 matched what was streamed (the store
   * holds exactly the bytes produced). `verify` (a verify_backup job) and `restore`: the archive was
   * also decoded and every file checked against MANIFEST.json. Only these two make it *verified*.
   */
  how: 'commit' | 'verify' | 'restore';
  error?: string;
  sha256?: string;
  bytes?: number;
  files?: number;
  /** From the manifest, so listings and the binlog purge need not read the archive. */
  engine?: Manifest['engine'];
  source?: Manifest['source'];
  position?: Manifest['position'];
  created?: string;
}

export async function readVerifyRecord(store: BackupStore, backup: string): Promise<VerifyRecord | null> {
  const raw = await readSmall(store, verifyRecordPath(backup)).catch(() => null);
  if (!raw) return null;
  try {
    return JSON.parse(raw.toString('utf8')) as VerifyRecord;
  } catch {
    return null;
  }
}

export async function writeVerifyRecord(store: BackupStore, backup: string, record: VerifyRecord): Promise<void> {
  await store.write(verifyRecordPath(backup), [Buffer.from(`${JSON.stringify(record)}\n`)]);
}

/** Verified: read back and every digest (archive and files) checked. An upload check is not enough. */
export function isVerified(record: VerifyRecord | null | undefined): boolean {
  return record?.result === 'ok' && record.how !== 'commit';
}

export function okRecord(how: VerifyRecord['how'], v: VerifiedBackup): VerifyRecord {
  return {
    result: 'ok',
    at: new Date().toISOString(),
    by: hostname(),
    how,
    sha256: v.sha256,
    bytes: v.bytes,
    files: v.manifest.files.length,
    engine: v.manifest.engine,
    source: v.manifest.source,
    position: v.manifest.position,
    created: v.manifest.created,
  };
}

export interface VerifiedBackup {
  manifest: Manifest;
  sha256: string;
  bytes: number;
}

/**
 * Reads a backup from the store and checks everything: the archive's size and sha256 against the
 * store's size and the sidecar, that it is a readable gzip'd tar, and every file's size and sha256
 * (and every directory) against MANIFEST.json. `sink` receives each entry as it streams by (the
 * restore unpacks there); nothing it did may be used unless this resolves.
 */
export async function verifyBackup(
  store: BackupStore,
  backup: string,
  opts: {
    sink?: (entry: TarEntry) => Promise<void>;
    signal?: AbortSignal;
    onBytes?: (done: number, total: number) => void;
  } = {},
): Promise<VerifiedBackup> {
  const p = checkStorePath(backup);
  const st = await store.stat(p);
  if (!st) throw new BackupStoreError('not_found', `backup ${p} does not exist in the ${store.name} store (${store.location})`, p);
  if (st.type !== 'file') throw new BackupStoreError('not_a_file', `backup ${p} is a directory, not a backup archive`, p);
  const expected = await readSidecar(store, p);
  let done = 0;
  const stream = await store.read(p, { signal: opts.signal });
  let read;
  try {
    read = await readArchive(stream, opts.sink ?? null, {
      onCompressedBytes: (n) => {
        done += n;
        opts.onBytes?.(done, st.size);
      },
    });
  } catch (err) {
    stream.destroy();
    if (err instanceof ArchiveError) throw new BackupCorruptError(`backup ${p} is corrupt: ${err.message}`, { cause: err });
    if (err instanceof BackupStoreError && err.code === 'damaged') throw new BackupCorruptError(`backup ${p} is corrupt: ${err.message}`, { cause: err });
    throw err;
  }
  if (read.bytes !== st.size) throw new BackupCorruptError(`backup ${p}: read ${read.bytes} bytes, the store says the file has ${st.size}`);
  if (read.sha256 !== expected) {
    throw new BackupCorruptError(`backup ${p} is corrupt: its sha256 is ${read.sha256}, its sidecar says ${expected}`);
  }
  let manifest: Manifest;
  try {
    manifest = parseManifest(read.manifest);
    checkAgainstManifest(manifest, read.tree);
  } catch (err) {
    if (err instanceof ManifestError) throw new BackupCorruptError(`backup ${p}: ${err.message}`, { cause: err });
    throw err;
  }
  return { manifest, sha256: read.sha256, bytes: read.bytes };
}

/** Runs verifyBackup and records the outcome next to the backup; rejects like verifyBackup. */
export async function verifyAndRecord(store: BackupStore, backup: string, opts: { signal?: AbortSignal; onBytes?: (done: number, total: number) => void } = {}): Promise<VerifyRecord> {
  try {
    const verified = await verifyBackup(store, backup, opts);
    const record = okRecord('verify', verified);
    await writeVerifyRecord(store, backup, record);
    return record;
  } catch (err) {
    await recordIfCorrupt(store, backup, 'verify', err);
    throw err;
  }
}

/**
 * Records a failed check when `err` is a verdict on the backup (BackupCorruptError): prune and the
 * binlog purge must stop trusting it. A store that could not be read says nothing about the backup.
 */
export async function recordIfCorrupt(store: BackupStore, backup: string, how: 'verify' | 'restore', err: unknown): Promise<void> {
  if (!(err instanceof BackupCorruptError)) return;
  const failed: VerifyRecord = { result: 'failed', at: new Date().toISOString(), by: hostname(), how, error: err.message };
  await writeVerifyRecord(store, backup, failed).catch(() => undefined);
}

// ---------------------------------------------------------------------------------------------
// Listing and retention

export interface BackupListing {
  path: string;
  name: string;
  /** The time in the name (ISO). */
  time: string;
  size: number;
  verify: VerifyRecord | null;
}

/** The committed backups in `dir`, newest first. A directory that does not exist has none. */
export async function listBackups(store: BackupStore, dir: string): Promise<BackupListing[]> {
  let entries;
  try {
    entries = await store.list(dir);
  } catch (err) {
    if (err instanceof BackupStoreError && err.code === 'not_found') return [];
    throw err;
  }
  const out: BackupListing[] = [];
  for (const e of entries) {
    const time = e.type === 'file' ? backupTime(e.name) : null;
    if (!time) continue;
    const p = `${dir}/${e.name}`;
    out.push({ path: p, name: e.name, time: time.toISOString(), size: e.size, verify: await readVerifyRecord(store, p) });
  }
  return out.sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
}

export interface RetentionPolicy {
  /** Keep the newest N backups of each node. */
  keep?: number;
  /** Keep backups younger than this many days. */
  keepDays?: number;
}

export interface RetentionDecision {
  path: string;
  action: 'keep' | 'delete';
  reason: string;
}

/**
 * Which backups retention keeps, newest first. A backup is kept if any rule keeps it: one of the
 * newest `keep`, younger than `keepDays`, or the newest verified one (never deleted, whatever
 * the policy: it is what a restore and the binlog purge rely on). With no rule configured
 * everything is kept.
 */
export function planRetention(backups: BackupListing[], policy: RetentionPolicy, now = new Date()): RetentionDecision[] {
  const newestVerified = backups.find((b) => isVerified(b.verify))?.path;
  const configured = policy.keep !== undefined || policy.keepDays !== undefined;
  return backups.map((b, i) => {
    const keep = (reason: string): RetentionDecision => ({ path: b.path, action: 'keep', reason });
    if (!configured) return keep('no retention is configured (backup.keep, backup.keepDays)');
    if (policy.keep !== undefined && i < policy.keep) return keep(`one of the newest ${policy.keep}`);
    const ageDays = (now.getTime() - Date.parse(b.time)) / 86_400_000;
    if (policy.keepDays !== undefined && ageDays < policy.keepDays) return keep(`younger than ${policy.keepDays} days`);
    if (b.path === newestVerified) return keep('the newest verified backup');
    const rules = [policy.keep !== undefined ? `beyond the newest ${policy.keep}` : null, policy.keepDays !== undefined ? `older than ${policy.keepDays} days` : null];
    return { path: b.path, action: 'delete', reason: rules.filter(Boolean).join(' and ') };
  });
}

export interface PruneResult {
  dir: string;
  dry_run: boolean;
  backups: RetentionDecision[];
  /** Leftovers removed (or that would be): abandoned uploads, sidecars of deleted backups. */
  leftovers: { path: string; reason: string }[];
  /** Archived binlogs removed (or that would be): older than the oldest kept backup. */
  binlogs: { path: string; reason: string }[];
}

/** Applies retention to one node's directory: deletes each pruned backup with its sidecar and record. */
export async function pruneBackups(
  store: BackupStore,
  dir: string,
  policy: RetentionPolicy,
  opts: {
    dryRun?: boolean;
    now?: Date;
    /** Uploads of backups that did not end (from their journals): leftovers whatever their age. */
    interrupted?: { copying: string; final: string; job: string }[];
  } = {},
): Promise<PruneResult> {
  const now = opts.now ?? new Date();
  const backups = await listBackups(store, dir);
  const decisions = planRetention(backups, policy, now);
  const result: PruneResult = { dir, dry_run: Boolean(opts.dryRun), backups: decisions, leftovers: [], binlogs: [] };
  const committed = new Set(backups.map((b) => b.name));
  const entries = await store.list(dir).catch((err: unknown) => {
    if (err instanceof BackupStoreError && err.code === 'not_found') return [];
    throw err;
  });
  for (const e of entries) {
    if (e.type !== 'file') continue;
    const p = `${dir}/${e.name}`;
    const cut = opts.interrupted?.find((u) => u.copying === p || (sidecarPath(u.final) === p && !committed.has(path.posix.basename(u.final))));
    if (cut) {
      result.leftovers.push({ path: p, reason: `left by backup job ${cut.job}, which did not end (node-mgr was killed, or the store was unreachable for its clean-up)` });
      continue;
    }
    if (e.name.endsWith(COPYING_SUFFIX) && now.getTime() - e.mtime.getTime() > STALE_UPLOAD_MS) {
      result.leftovers.push({ path: p, reason: `an upload abandoned ${Math.round((now.getTime() - e.mtime.getTime()) / 3600_000)} h ago` });
    }
    const owner = /^(coldback_.*\.tgz)\.(sha256|verify\.json)$/.exec(e.name)?.[1];
    // A sidecar whose backup is gone (and is not being uploaded right now).
    if (owner && !committed.has(owner) && !entries.some((x) => x.name === `${owner}${COPYING_SUFFIX}`)) {
      result.leftovers.push({ path: p, reason: `${owner} no longer exists` });
    }
  }
  // The archived binlogs older than the oldest kept backup serve no restore any more. With no
  // retention configured everything is kept, binlogs too; with no backup kept nothing says where to cut.
  const kept = decisions.filter((d) => d.action === 'keep').map((d) => Date.parse(backups.find((b) => b.path === d.path)!.time));
  const configured = policy.keep !== undefined || policy.keepDays !== undefined;
  if (configured && kept.length > 0) {
    result.binlogs = await retireArchivedBinlogs(store, dir, new Date(Math.min(...kept)), { dryRun: opts.dryRun, now });
  }
  if (opts.dryRun) return result;
  for (const d of decisions) {
    if (d.action !== 'delete') continue;
    // The archive first: a sidecar without its archive is a leftover the next prune removes.
    await store.delete(d.path);
    await store.delete(sidecarPath(d.path));
    await store.delete(verifyRecordPath(d.path));
  }
  for (const l of result.leftovers) await store.delete(l.path);
  return result;
}

// ---------------------------------------------------------------------------------------------
// For the binlog purge

/**
 * The binlog file the newest verified backup *of this node* starts from (its manifest's binlog
 * position), or null when there is none. A shard's directory also holds its other replicas'
 * backups, whose binlog names mean nothing here: only backups taken of this host's node count.
 * Throws when the store cannot be read: a purge must then keep everything rather than guess.
 */
export async function newestVerifiedBackupBinlog(config: Pick<Config, 'backup'>, store: BackupStore | null, node: BackupOwner): Promise<string | null> {
  const s = store ?? openStore(config);
  const me = hostname();
  for (const b of await listBackups(s, backupDirFor(node))) {
    const v = b.verify;
    if (!isVerified(v) || v!.source?.host !== me || v!.source.port !== node.port) continue;
    return v!.position?.kind === 'binlog' ? v!.position.file : null;
  }
  return null;
}

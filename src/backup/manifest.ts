// MANIFEST.json: what a cold backup archive holds and where it came from. Written last into the
// archive (the digests are known only once the files have streamed through) and checked, file
// by file, before a restore touches anything.
import { hostname } from 'node:os';
import { z } from 'zod';
import type { PackedTree } from './archive.ts';

export const MANIFEST_FORMAT = 'node-mgr-coldbackup/1';

const positionSchema = z.union([
  z.strictObject({
    kind: z.literal('binlog'),
    file: z.string(),
    position: z.number().int().nonnegative(),
    gtid: z.string().optional(),
  }),
  z.strictObject({
    kind: z.literal('wal'),
    /** START WAL LOCATION of backup_label. */
    lsn: z.string(),
    /** The WAL segment file that holds it. */
    file: z.string(),
    timeline: z.number().int().positive(),
  }),
  z.strictObject({ kind: z.literal('none'), reason: z.string() }),
]);

export const manifestSchema = z.strictObject({
  format: z.literal(MANIFEST_FORMAT),
  created: z.string(),
  engine: z.strictObject({
    kind: z.enum(['mysql', 'postgres']),
    /** `mariadb`, `mysql8`, `postgres`. */
    flavour: z.string(),
    /** The program that took the backup (mariabackup, xtrabackup, pg_basebackup). */
    tool: z.string(),
    server_version: z.string(),
  }),
  source: z.strictObject({
    host: z.string(),
    node: z.string(),
    role: z.string(),
    port: z.number().int(),
    cluster: z.string().optional(),
    shard: z.string().optional(),
  }),
  position: positionSchema,
  /** True when the files are a data dir a server can start from as they are (no --prepare left). */
  prepared: z.boolean(),
  total_bytes: z.number().int().nonnegative(),
  files: z.array(z.strictObject({ path: z.string(), size: z.number().int().nonnegative(), mode: z.number().int(), sha256: z.string().regex(/^[0-9a-f]{64}$/) })),
  dirs: z.array(z.strictObject({ path: z.string(), mode: z.number().int() })),
  symlinks: z.array(z.strictObject({ path: z.string(), target: z.string() })).default([]),
});

export type Manifest = z.infer<typeof manifestSchema>;
export type BackupPosition = Manifest['position'];
export type ManifestEngine = Manifest['engine'];
export type ManifestSource = Manifest['source'];

export function buildManifest(parts: { engine: ManifestEngine; source: Omit<ManifestSource, 'host'>; position: BackupPosition; prepared: boolean; tree: PackedTree; created?: Date }): Manifest {
  return {
    format: MANIFEST_FORMAT,
    created: (parts.created ?? new Date()).toISOString(),
    engine: parts.engine,
    source: { host: hostname(), ...parts.source },
    position: parts.position,
    prepared: parts.prepared,
    total_bytes: parts.tree.files.reduce((sum, f) => sum + f.size, 0),
    files: parts.tree.files,
    dirs: parts.tree.dirs,
    symlinks: parts.tree.symlinks,
  };
}

export function serialiseManifest(m: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(m, null, 1)}\n`, 'utf8');
}

export class ManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestError';
  }
}

export function parseManifest(raw: Buffer | null): Manifest {
  if (raw === null) throw new ManifestError('the archive has no MANIFEST.json: it is not a node-mgr cold backup, or it was cut short');
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new ManifestError(`MANIFEST.json is not valid JSON: ${(err as Error).message}`);
  }
  const r = manifestSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ManifestError(`MANIFEST.json field "${issue.path.join('.') || '(root)'}" is invalid: ${issue.message}`);
  }
  return r.data;
}

/**
 * Compares what an archive was found to hold with what its manifest says: the same files with the
 * same sizes and digests, the same directories, nothing more. Throws a sentence naming the first
 * few differences.
 */
export function checkAgainstManifest(m: Manifest, found: PackedTree): void {
  const problems: string[] = [];
  const seen = new Map(found.files.map((f) => [f.path, f]));
  for (const f of m.files) {
    const got = seen.get(f.path);
    if (!got) problems.push(`${f.path} is missing`);
    else if (got.size !== f.size) problems.push(`${f.path} has ${got.size} bytes, the manifest says ${f.size}`);
    else if (got.sha256 !== f.sha256) problems.push(`${f.path} has sha256 ${got.sha256.slice(0, 12)}…, the manifest says ${f.sha256.slice(0, 12)}…`);
    seen.delete(f.path);
  }
  for (const extra of seen.keys()) problems.push(`${extra} is not in the manifest`);
  const dirs = new Set(found.dirs.map((d) => d.path));
  for (const d of m.dirs) if (!dirs.has(d.path)) problems.push(`directory ${d.path}/ is missing`);
  const links = new Map(found.symlinks.map((s) => [s.path, s.target]));
  for (const s of m.symlinks) if (links.get(s.path) !== s.target) problems.push(`symlink ${s.path} is missing or points elsewhere`);
  if (problems.length) {
    const shown = problems.slice(0, 5).join('; ');
    throw new ManifestError(`the archive does not match its manifest: ${shown}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`);
  }
}

/** One line for messages: `binlog.000003:1234` or `WAL 0/3000028`. */
export function describePosition(p: BackupPosition): string {
  switch (p.kind) {
    case 'binlog':
      return `${p.file}:${p.position}${p.gtid ? ` (GTID ${p.gtid})` : ''}`;
    case 'wal':
      return `WAL ${p.lsn} (${p.file}, timeline ${p.timeline})`;
    case 'none':
      return `none (${p.reason})`;
  }
}

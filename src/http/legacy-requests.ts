// Request bodies of the seed's job types (PROTOCOL §2–§5), parsed once at the edge.
// Extra keys are ignored (callers send e.g. node_ipN); wrong types are refused.
import { z } from 'zod';
import { badRequest } from './errors.ts';
import { checkStorePath } from '../backup/store.ts';

const str = (max = 256) => z.string().max(max);
const port = z.number().int().min(1).max(65535);
const jobId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.:@-]+$/, 'job_id may hold only letters, digits and _ . : @ -');

const common = {
  ver: str(32).optional(),
  version: str(32).optional(),
  job_type: z.string(),
  job_id: jobId.optional(),
};

/** A backup's path in the store (PROTOCOL §4): refused here, before a job exists, when it could climb out. */
const storePath = str(1024).refine(
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

/** ISO 8601, or `YYYY-MM-DD HH:MM:SS` in the server's time zone; the job reads it (point-in-time.ts). */
const restoreTime = z
  .string()
  .max(64)
  .regex(/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?$/, 'must be ISO 8601 (2026-12-04T10:15:00Z) or YYYY-MM-DD HH:MM:SS');

export const NODE_TYPES = ['meta_node', 'storage_node', 'computer_node'] as const;
const nodeType = z.enum(NODE_TYPES);

const source = {
  s_ip: str(64),
  s_port: port,
  s_user: str(),
  s_pwd: str(),
};

export const legacyRequests = {
  get_node: z.object({ ...common, node_type: nodeType.optional() }),
  get_info: z.object({ ...common }),
  get_status: z.object({ ...common, job_id: jobId }),
  auto_pullup: z.object({ ...common, minutes: z.number().int().min(-1).max(10_080), port: port.optional() }),
  update_node: z.object({ ...common, node_type: nodeType.optional() }),
  mysql_cmd: z.object({ ...common, cmd: str(4096) }),
  pgsql_cmd: z.object({ ...common, cmd: str(4096) }),
  cluster_cmd: z.object({ ...common, cmd: str(4096) }),
  delete: z.discriminatedUnion('file_type', [
    z.object({ ...common, file_type: z.literal('table'), ...source, s_dbname: str(192), s_table_name: str(192) }),
    z.object({
      ...common,
      file_type: z.literal('binlog'),
      ...source,
      to: str(512).optional(),
      before: str(64).optional(),
      dry_run: z.boolean().optional(),
    }),
  ]),
  send: z.object({
    ...common,
    file_type: z.literal('table'),
    ...source,
    s_dbname: str(192),
    s_table_name: str(192),
    d_ip: str(64),
    d_port: port,
    d_user: str(),
    d_pwd: str(),
    d_dbname: str(192),
    d_table_name: str(192),
  }),
  coldbackup: z.object({ ...common, ...source, store: str(64).optional() }),
  coldrestore: z
    .object({ ...common, ...source, store: str(64).optional(), file: storePath.optional(), restore_time: restoreTime.optional() })
    .refine((r) => r.file !== undefined || r.restore_time !== undefined, { message: 'is required (a backup path), unless restore_time is given', path: ['file'] }),
  rebuild_node: z.object({
    ...common,
    ...source,
    primary_ip: str(64),
    primary_port: port,
    tables: z.array(str(385)).max(1000).optional(),
    max_table_mb: z.number().positive().optional(),
    timeout_s: z.number().int().min(1).max(86_400).optional(),
    file: storePath.optional(),
    store: str(64).optional(),
  }),
} as const;

export type LegacyJobType = keyof typeof legacyRequests;
export type LegacyRequest<T extends LegacyJobType> = z.infer<(typeof legacyRequests)[T]>;

export function isLegacyJobType(t: unknown): t is LegacyJobType {
  return typeof t === 'string' && Object.prototype.hasOwnProperty.call(legacyRequests, t);
}

/** Parses a body for its job type; the error names the first bad field in one sentence. */
export function parseLegacyRequest<T extends LegacyJobType>(type: T, body: unknown): LegacyRequest<T> {
  const r = legacyRequests[type].safeParse(body);
  if (r.success) return r.data as LegacyRequest<T>;
  const issue = r.error.issues[0]!;
  const field = issue.path.join('.') || 'body';
  const given = issue.path.reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k as PropertyKey] : undefined), body);
  throw badRequest(`${type}: field "${field}" ${describeIssue(issue, given)}`);
}

function describeIssue(issue: z.core.$ZodIssue, given: unknown): string {
  switch (issue.code) {
    case 'invalid_type':
      return given === undefined ? `is required (${issue.expected})` : `must be ${issue.expected === 'int' ? 'an integer' : `a ${issue.expected}`}`;
    case 'too_big':
      return `is too large (at most ${issue.maximum})`;
    case 'too_small':
      return `is too small (at least ${issue.minimum})`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_union':
      return 'must be "table" or "binlog"';
    default:
      return issue.message;
  }
}

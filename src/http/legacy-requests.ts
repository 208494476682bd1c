// Request bodies of the seed's job types (PROTOCOL §2–§5), parsed once at the edge. A job type's
// body is the envelope below plus the parameter schema its job declares beside its handler; the
// seed face only adds what is its own (the envelope; a backup's s_* login is required).
// Extra keys are ignored (callers send e.g. node_ipN); wrong types are refused.
import { z } from 'zod';
import { badRequest } from './errors.ts';
import { portNumber, sourceLogin, text } from '../jobs/job-params.ts';
import { commandParams } from '../jobs/node-commands.ts';
import { dropTableParams, purgeBinlogsParams } from '../jobs/table-jobs.ts';
import { sendParams } from '../jobs/table-transfer.ts';
import { coldBackupParams, coldRestoreParams, namesBackupOrTime, namesPrimary, rebuildNodeParams } from '../jobs/backup-jobs.ts';
import { NODE_TYPES, updateNodeParams } from '../cluster/update-node-job.ts';

export { NODE_TYPES };

const jobId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.:@-]+$/, 'job_id may hold only letters, digits and _ . : @ -');

/** What every seed request may carry besides its job's parameters. */
const envelope = {
  ver: text(32).optional(),
  version: text(32).optional(),
  job_type: z.string(),
  job_id: jobId.optional(),
};

/** A job's parameters in the seed's envelope. */
const seedRequest = <Shape extends z.ZodRawShape>(params: z.ZodObject<Shape>) => z.object({ ...envelope, ...params.shape });

export const legacyRequests = {
  get_node: z.object({ ...envelope, node_type: z.enum(NODE_TYPES).optional() }),
  get_info: z.object({ ...envelope }),
  get_status: z.object({ ...envelope, job_id: jobId }),
  auto_pullup: z.object({ ...envelope, minutes: z.number().int().min(-1).max(10_080), port: portNumber.optional() }),
  update_node: seedRequest(updateNodeParams),
  mysql_cmd: seedRequest(commandParams),
  pgsql_cmd: seedRequest(commandParams),
  cluster_cmd: seedRequest(commandParams),
  delete: z.discriminatedUnion('file_type', [seedRequest(dropTableParams), seedRequest(purgeBinlogsParams)]),
  send: seedRequest(sendParams),
  // The seed names a backup's node and login with s_*: required here, absent from the REST face.
  coldbackup: z.object({ ...envelope, ...coldBackupParams.shape, ...sourceLogin }),
  coldrestore: z
    .object({ ...envelope, ...coldRestoreParams.shape, ...sourceLogin })
    .refine(namesBackupOrTime, { message: 'is required (a backup path), unless restore_time is given', path: ['file'] }),
  rebuild_node: z
    .object({ ...envelope, ...rebuildNodeParams.shape, ...sourceLogin })
    .refine(namesPrimary, { message: 'is required with primary_ip, unless primary (host:port) is given', path: ['primary_port'] }),
} as const;

export type LegacyJobType = keyof typeof legacyRequests;
export type LegacyRequest<T extends LegacyJobType> = z.infer<(typeof legacyRequests)[T]>;

export function isLegacyJobType(t: unknown): t is LegacyJobType {
  return typeof t === 'string' && Object.prototype.hasOwnProperty.call(legacyRequests, t);
}

/** The seed's reads (PROTOCOL §8: open while security.openReads); every other job type changes something. */
export type SeedRead = 'get_node' | 'get_info' | 'get_status';

export function isSeedRead(t: unknown): t is SeedRead {
  return t === 'get_node' || t === 'get_info' || t === 'get_status';
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

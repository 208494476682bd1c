// The REST face of cold backups: list a node's backups, back up and restore a node (also a node
// configured but not yet initialised: a rebuild from a backup), verify and prune. Everything that
// takes time is a job; the reply names it (202, Location: /v1/jobs/<id>).
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { backupDirFor, listBackups } from '../backup/catalog.ts';
import { storeNamed, STORE_NAMES } from '../backup/index.ts';
import { checkStorePath } from '../backup/store.ts';
import { engineFor } from '../engines/index.ts';
import { backupArchive, coldBackupParams, coldRestoreParams, pruneBackupsParams, rebuildNodeParams, verifyBackupParams } from '../jobs/backup-jobs.ts';
import type { NodeView } from '../supervisor/supervisor.ts';
import { HttpError } from './errors.ts';
import { acceptedSchema, errorSchema, portParams, portSchema } from './schemas.ts';

// The bodies of the job routes: each job's own parameter schema (beside its handler), with the store
// narrowed to the names the store factory knows and the idempotency key; no other key.
const storeChoice = z.enum(STORE_NAMES).meta({ description: 'the backup store; the configured one when absent' }).optional();
const jobId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.:@-]+$/)
  .meta({ description: 'idempotency key; generated when absent' })
  .optional();
const bodies = {
  verify: z.strictObject({ ...verifyBackupParams.shape, store: storeChoice, job_id: jobId }),
  prune: z.strictObject({ ...pruneBackupsParams.shape, store: storeChoice, job_id: jobId }),
  // The REST face leaves the login to the node's configured admin, and names a backup by its .tgz.
  backup: z.strictObject({ ...coldBackupParams.pick({ store: true }).shape, store: storeChoice, job_id: jobId }),
  restore: z.strictObject({
    ...coldRestoreParams.pick({ file: true, restore_time: true, store: true }).shape,
    file: backupArchive.optional(),
    store: storeChoice,
    job_id: jobId,
  }),
  // The REST face names the primary as host:port only.
  rebuild: z.strictObject({
    ...rebuildNodeParams.pick({ tables: true, max_table_mb: true, timeout_s: true, repl_user: true, repl_password: true }).shape,
    primary: rebuildNodeParams.shape.primary.unwrap(),
    file: backupArchive.optional(),
    store: storeChoice,
    job_id: jobId,
  }),
};
type Body<K extends keyof typeof bodies> = z.infer<(typeof bodies)[K]>;

/**
 * A zod schema as the JSON Schema fastify validates a request with (and the OpenAPI document shows).
 * Two spellings differ from zod's: a pattern's `\/` is written `/` (the same regex; ajv quotes the
 * pattern in its message), and zod's safe-integer bounds of an int are left to the type.
 */
function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _, ...json } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io: 'input',
    override: ({ jsonSchema }) => {
      if (typeof jsonSchema.pattern === 'string') jsonSchema.pattern = jsonSchema.pattern.replaceAll('\\/', '/');
      if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
      if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
    },
  });
  return json;
}

const listingSchema = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: true,
    properties: {
      node: { type: 'string' },
      port: { type: 'integer' },
      dir: { type: 'string' },
      backups: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: true,
          properties: {
            path: { type: 'string' },
            time: { type: 'string', format: 'date-time' },
            size: { type: 'integer' },
            verify: { type: ['object', 'null'], additionalProperties: true },
          },
        },
      },
    },
  },
} as const;

export async function backupRoutes(app: FastifyInstance): Promise<void> {
  const { supervisor, jobs, config } = app.services;
  const nodeOf = (port: number): NodeView => {
    const n = supervisor.byPort(port);
    if (!n) throw new HttpError(404, `no node on port ${port} on this host`);
    if (!engineFor(n.kind).backup) throw new HttpError(400, `${n.id} is a ${n.kind} node: it has no data to back up or restore`);
    return n;
  };
  const storeOf = (name?: string) => {
    try {
      return storeNamed(config, name);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
  };
  const accept = (reply: FastifyReply, submission: { id?: string; type: string; params: unknown; nodeId?: string }) => {
    const { job } = jobs.submit(submission);
    return reply.code(202).header('location', `/v1/jobs/${encodeURIComponent(job.id)}`).send({ result: 'succeed', info: 'accepted', job_id: job.id });
  };  /** A restore or a rebuild of the node on `port`: the named backup file and store checked, then the job. */
  const acceptRestore = (reply: FastifyReply, type: 'coldrestore' | 'rebuild_node', port: number, body: { job_id?: string; file?: string; store?: string }) => {
    const n = nodeOf(port);
    if (body.file !== undefined) checkPath(body.file);
    storeOf(body.store);
    const { job_id, ...params } = body;
    return accept(reply, { id: job_id, type, params, nodeId: n.id });
  };


  app.get<{ Querystring: { port?: number; store?: Body<'backup'>['store'] } }>(
    '/backups',
    {
      config: { access: 'read' },
      schema: {
        summary: "The cold backups of this host's nodes (or of one), newest first, with their last verification",
        querystring: { type: 'object', properties: { port: portSchema, store: jsonSchema(storeChoice) } },
        response: { 200: listingSchema, 400: errorSchema, 404: errorSchema },
      },
    },
    async (req) => {
      const s = storeOf(req.query.store);
      const nodes = req.query.port !== undefined ? [nodeOf(req.query.port)] : supervisor.list().filter((n) => engineFor(n.kind).backup);
      const out = [];
      for (const n of nodes) {
        let dir: string;
        try {
          dir = backupDirFor(n);
        } catch (err) {
          out.push({ node: n.id, port: n.port, dir: null, backups: [], info: (err as Error).message });
          continue;
        }
        out.push({ node: n.id, port: n.port, dir, backups: await listBackups(s, dir) });
      }
      return out;
    },
  );

  app.post<{ Body: Body<'verify'> | undefined }>(
    '/backups/verify',
    {
      config: { access: 'mutate' },
      schema: {
        summary: 'Verify a backup (file) or every backup of a node (port): read it back and check every digest; the result is recorded next to it',
        body: jsonSchema(bodies.verify),
        response: { 202: acceptedSchema, 400: errorSchema, 404: errorSchema, 409: errorSchema },
      },
    },
    async (req, reply) => {
      const body = req.body ?? {};
      if (body.file === undefined && body.port === undefined) throw new HttpError(400, 'give "file" (one backup) or "port" (every backup of that node)');
      if (body.file !== undefined) checkPath(body.file);
      storeOf(body.store);
      const node = body.port !== undefined ? nodeOf(body.port) : undefined;
      const { job_id, ...params } = body;
      return accept(reply, { id: job_id, type: 'verify_backup', params, nodeId: node?.id });
    },
  );

  app.post<{ Body: Body<'prune'> | undefined }>(
    '/backups/prune',
    {
      config: { access: 'mutate' },
      schema: {
        summary: "Apply retention (backup.keep / backup.keepDays, or the body's) to one node's backups or every local node's; the newest verified backup is never deleted",
        body: jsonSchema(bodies.prune),
        response: { 202: acceptedSchema, 400: errorSchema, 404: errorSchema, 409: errorSchema },
      },
    },
    async (req, reply) => {
      const body = req.body ?? {};
      storeOf(body.store);
      const node = body.port !== undefined ? nodeOf(body.port) : undefined;
      const { job_id, ...params } = body;
      return accept(reply, { id: job_id, type: 'prune_backups', params, nodeId: node?.id });
    },
  );

  app.post<{ Params: { port: number }; Body: Body<'backup'> | undefined }>(
    '/nodes/:port/backup',
    {
      config: { access: 'mutate' },
      schema: {
        summary: "Cold backup of a running node with its configured login (the legacy coldbackup takes the caller's)",
        params: portParams,
        body: jsonSchema(bodies.backup),
        response: { 202: acceptedSchema, 400: errorSchema, 404: errorSchema, 409: errorSchema },
      },
    },
    async (req, reply) => {
      const n = nodeOf(req.params.port);
      const body = req.body ?? {};
      storeOf(body.store);
      return accept(reply, { id: body.job_id, type: 'coldbackup', params: { ...(body.store ? { store: body.store } : {}) }, nodeId: n.id });
    },
  );

  app.post<{ Params: { port: number }; Body: Body<'restore'> }>(
    '/nodes/:port/restore',
    {
      config: { access: 'mutate' },
      schema: {
        summary: 'Restore a node from a cold backup, or to a time (restore_time: a backup plus its archived binlogs); also rebuilds a configured node that has no data dir yet',
        params: portParams,
        // namesBackupOrTime (beside the job), as JSON Schema: zod's refinements have no JSON form.
        body: { ...jsonSchema(bodies.restore), anyOf: [{ required: ['file'] }, { required: ['restore_time'] }] },
        response: { 202: acceptedSchema, 400: errorSchema, 404: errorSchema, 409: errorSchema },
      },
    },
    async (req, reply) => acceptRestore(reply, 'coldrestore', req.params.port, req.body),
  );

  app.post<{ Params: { port: number }; Body: Body<'rebuild'> }>(
    '/nodes/:port/rebuild',
    {
      config: { access: 'mutate' },
      schema: {
        summary: 'Make a storage node a fresh replica of a primary of its shard: restore the newest backup, replicate from its GTID, wait until caught up, compare CHECKSUM TABLE on both sides',
        params: portParams,
        body: jsonSchema(bodies.rebuild),
        response: { 202: acceptedSchema, 400: errorSchema, 404: errorSchema, 409: errorSchema },
      },
    },
    async (req, reply) => acceptRestore(reply, 'rebuild_node', req.params.port, req.body),
  );
}

function checkPath(file: string): void {
  try {
    checkStorePath(file);
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
}

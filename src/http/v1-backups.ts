// The REST face of cold backups: list a node's backups, back up and restore a node (also a node
// configured but not yet initialised: a rebuild from a backup), verify and prune. Everything that
// takes time is a job; the reply names it (202, Location: /v1/jobs/<id>).
import type { FastifyInstance, FastifyReply } from 'fastify';
import { backupDirFor, listBackups } from '../backup/catalog.ts';
import { checkStorePath } from '../backup/store.ts';
import { engineFor } from '../engines/index.ts';
import { storeNamed, STORE_NAMES } from '../jobs/backup-jobs.ts';
import type { NodeView } from '../supervisor/supervisor.ts';
import { HttpError } from './errors.ts';
import { acceptedSchema, errorSchema, portParams, portSchema } from './schemas.ts';
const store = { type: 'string', enum: [...STORE_NAMES], description: 'the backup store; the configured one when absent' } as const;
const jobId = { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.:@-]+$', description: 'idempotency key; generated when absent' } as const;
const restoreTime = {
  type: 'string',
  maxLength: 64,
  pattern: '^\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|[+-]\\d{2}:?\\d{2})?$',
  description: 'restore to this time: ISO 8601 (2026-12-04T10:15:00Z), or YYYY-MM-DD HH:MM:SS in the server\'s time zone; the newest usable backup before it is replayed forward with the archived binlogs',
} as const;
const backupFile = { type: 'string', minLength: 2, maxLength: 1024, pattern: '^/.*\\.tgz$', description: 'the backup archive, e.g. /coldbackup/clust1/shard1/coldback_20211122_234303.tgz' } as const;

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

type StoreName = (typeof STORE_NAMES)[number];

export async function backupRoutes(app: FastifyInstance): Promise<void> {
  const { supervisor, jobs, config } = app.services;
  const nodeOf = (port: number): NodeView => {
    const n = supervisor.byPort(port);
    if (!n) throw new HttpError(404, `no node on port ${port} on this host`);
    if (!engineFor(n.kind).backup) throw new HttpError(400, `${n.id} is a ${n.kind} node: it has no data to back up or restore`);
    return n;
  };
  const storeOf = (name?: StoreName) => {
    try {
      return storeNamed(config, name);
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
  };
  const accept = (reply: FastifyReply, submission: { id?: string; type: string; params: unknown; nodeId?: string }) => {
    const { job } = jobs.submit(submission);
    return reply.code(202).header('location', `/v1/jobs/${encodeURIComponent(job.id)}`).send({ result: 'succeed', info: 'accepted', job_id: job.id });
  };

  app.get<{ Querystring: { port?: number; store?: StoreName } }>(
    '/backups',
    {
      config: { access: 'read' },
      schema: {
        summary: "The cold backups of this host's nodes (or of one), newest first, with their last verification",
        querystring: { type: 'object', properties: { port: portSchema, store } },
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

  app.post<{ Body: { file?: string; port?: number; store?: StoreName; job_id?: string } | undefined }>(
    '/backups/verify',
    {
      config: { access: 'mutate' },
      schema: {
        summary: 'Verify a backup (file) or every backup of a node (port): read it back and check every digest; the result is recorded next to it',
        body: { type: 'object', additionalProperties: false, properties: { file: backupFile, port: portSchema, store, job_id: jobId } },
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

  app.post<{ Body: { port?: number; dry_run?: boolean; keep?: number; keep_days?: number; store?: StoreName; job_id?: string } | undefined }>(
    '/backups/prune',
    {
      config: { access: 'mutate' },
      schema: {
        summary: "Apply retention (backup.keep / backup.keepDays, or the body's) to one node's backups or every local node's; the newest verified backup is never deleted",
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            port: portSchema,
            dry_run: { type: 'boolean' },
            keep: { type: 'integer', minimum: 1 },
            keep_days: { type: 'number', exclusiveMinimum: 0 },
            store,
            job_id: jobId,
          },
        },
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

  app.post<{ Params: { port: number }; Body: { store?: StoreName; job_id?: string } | undefined }>(
    '/nodes/:port/backup',
    {
      config: { access: 'mutate' },
      schema: {
        summary: "Cold backup of a running node with its configured login (the legacy coldbackup takes the caller's)",
        params: portParams,
        body: { type: 'object', additionalProperties: false, properties: { store, job_id: jobId } },
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

  app.post<{ Params: { port: number }; Body: { file?: string; restore_time?: string; store?: StoreName; job_id?: string } }>(
    '/nodes/:port/restore',
    {
      config: { access: 'mutate' },
      schema: {
        summary: 'Restore a node from a cold backup, or to a time (restore_time: a backup plus its archived binlogs); also rebuilds a configured node that has no data dir yet',
        params: portParams,
        body: {
          type: 'object',
          anyOf: [{ required: ['file'] }, { required: ['restore_time'] }],
          additionalProperties: false,
          properties: { file: backupFile, restore_time: restoreTime, store, job_id: jobId },
        },
        response: { 202: acceptedSchema, 400: errorSchema, 404: errorSchema, 409: errorSchema },
      },
    },
    async (req, reply) => {
      const n = nodeOf(req.params.port);
      if (req.body.file !== undefined) checkPath(req.body.file);
      storeOf(req.body.store);
      const { job_id, ...params } = req.body;
      return accept(reply, { id: job_id, type: 'coldrestore', params, nodeId: n.id });
    },
  );

  app.post<{
    Params: { port: number };
    Body: { primary: string; tables?: string[]; max_table_mb?: number; timeout_s?: number; file?: string; repl_user?: string; repl_password?: string; store?: StoreName; job_id?: string };
  }>(
    '/nodes/:port/rebuild',
    {
      config: { access: 'mutate' },
      schema: {
        summary: 'Make a storage node a fresh replica of a primary of its shard: restore the newest backup, replicate from its GTID, wait until caught up, compare CHECKSUM TABLE on both sides',
        params: portParams,
        body: {
          type: 'object',
          required: ['primary'],
          additionalProperties: false,
          properties: {
            primary: { type: 'string', minLength: 3, maxLength: 300, pattern: '^(\\[[0-9a-fA-F:]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$', description: 'host:port of a MySQL node of the same cluster and shard' },
            tables: { type: 'array', maxItems: 1000, items: { type: 'string', minLength: 3, maxLength: 385, pattern: '^[^.]+\\.[^.]+$' }, description: 'db.table to compare; every table up to max_table_mb when absent' },
            max_table_mb: { type: 'number', exclusiveMinimum: 0, description: 'tables compared when none are named: those no bigger (default 256)' },
            timeout_s: { type: 'integer', minimum: 1, maximum: 86400, description: 'bound on the catch-up wait (default 600)' },
            file: backupFile,
            repl_user: { type: 'string', minLength: 1, maxLength: 80, description: "the replica's login on the primary; the node's admin login when absent" },
            repl_password: { type: 'string', maxLength: 256 },
            store,
            job_id: jobId,
          },
        },
        response: { 202: acceptedSchema, 400: errorSchema, 404: errorSchema, 409: errorSchema },
      },
    },
    async (req, reply) => {
      const n = nodeOf(req.params.port);
      if (req.body.file !== undefined) checkPath(req.body.file);
      storeOf(req.body.store);
      const { job_id, ...params } = req.body;
      return accept(reply, { id: job_id, type: 'rebuild_node', params, nodeId: n.id });
    },
  );
}

function checkPath(file: string): void {
  try {
    checkStorePath(file);
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
}

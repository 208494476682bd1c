// The REST face over the same actors and jobs (PROTOCOL §9). Nodes are named by port, as in
// the legacy protocol.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import path from 'node:path';
import { HttpError } from './errors.ts';
import { isLoopback } from '../host/address.ts';
import { nodeEntrySchema, type NodeEntry } from '../config/schema.ts';
import { checkApiServerOptions, ServerOptionError } from '../engines/server-options.ts';
import { maySeeSecrets, withLogTailFor } from './secrets.ts';
import { errorSchema, portParams } from './schemas.ts';
import { binlogArchiveOf } from './deps.ts';
import type { NodeView } from '../supervisor/supervisor.ts';
import type { JobRecord, JobStatus } from '../state/store.ts';

const nodeSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string' },
    kind: { type: 'string', enum: ['mysql', 'postgres', 'cluster_mgr'] },
    role: { type: 'string' },
    port: { type: 'integer' },
    state: { type: 'string', description: 'the actor state: adopting, stopped, initializing, preflight, starting, running, stopping, crashed, backoff, held, failed, dropping' },
    wanted: { type: 'string', enum: ['running', 'stopped'] },
    pid: { type: ['integer', 'null'] },
    restarts: { type: 'integer' },
    since: { type: 'string', format: 'date-time' },
  },
} as const;

const jobSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string' },
    type: { type: 'string' },
    status: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'] },
    phase: { type: ['string', 'null'] },
    info: { type: ['string', 'null'] },
  },
} as const;


/** A node entry from the network may not name a program (beyond the allow-list) or a URL elsewhere. */
function refuseRemoteExecution(entry: NodeEntry, allowList: string[]): void {
  // The health URL is fetched by node-mgr: from the network it may only point at the node itself.
  if (entry.healthUrl !== undefined) {
    const url = new URL(entry.healthUrl);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    if (port !== entry.port || !(host === entry.ip || isLoopback(host))) {
      throw new HttpError(400, `node entry field "healthUrl": it must point at the node itself (host ${entry.ip} or loopback, port ${entry.port}); set another URL in node-mgr's config file`);
    }
  }
  const program = entry.command?.[0];
  if (program !== undefined && !allowList.includes(program)) {
    throw new HttpError(400, `node entry field "command": program ${JSON.stringify(program)} is not in the command allow-list (commandAllowList)`);
  }
}

/** Server options from the network: only the engine's allow-list, under canonical names (server-options.ts). */
function apiServerOptions(entry: NodeEntry): NodeEntry['serverOptions'] {
  try {
    return checkApiServerOptions(entry.kind, entry.serverOptions);
  } catch (err) {
    if (err instanceof ServerOptionError) throw new HttpError(400, `node entry field "serverOptions.${err.option}": ${err.message}`);
    throw err;
  }
}

export async function v1Routes(app: FastifyInstance): Promise<void> {
  const deps = app.services;
  const { supervisor, jobs, store, config } = deps;
  const nodeOf = (port: number): NodeView => {
    const n = supervisor.byPort(port);
    if (!n) throw new HttpError(404, `no node on port ${port} on this host`);
    return n;
  };
  // Log tails can quote anything the server printed: only callers who may read secrets get them.
  const publicView = (n: NodeView, req: FastifyRequest) => {
    const { password, ...rest } = n;
    void password;
    return { ...withLogTailFor(rest, maySeeSecrets(req, config)), usage: deps.usage.get(n.id) };
  };

  app.get('/nodes', { config: { access: 'read' }, schema: { summary: 'List supervised nodes', response: { 200: { type: 'array', items: nodeSchema } } } }, async (req) =>
    supervisor.list().map((n) => publicView(n, req)),
  );

  app.get<{ Params: { port: number } }>(
    '/nodes/:port',
    { config: { access: 'read' }, schema: { summary: 'One node: snapshot and its latest transitions', params: portParams, response: { 404: errorSchema } } },
    async (req) => {
      const n = nodeOf(req.params.port);
      const archive = binlogArchiveOf(deps, n);
      return { ...publicView(n, req), ...(archive ? { binlog_archive: archive } : {}), transitions: store.recentTransitions(n.id, 50) };
    },
  );

  for (const action of ['start', 'stop', 'restart'] as const) {
    app.post<{ Params: { port: number } }>(
      `/nodes/:port/${action}`,
      { config: { access: 'mutate' }, schema: { summary: `${action} a node (waits until it settles)`, params: portParams, response: { 200: nodeSchema, 404: errorSchema, 409: errorSchema } } },
      async (req) => {
          const n = nodeOf(req.params.port);
        jobs.refuseIfHeld(n.id, action);
        return publicView(await supervisor.command(n.id, action.toUpperCase() as 'START'), req);
      },
    );
  }

  app.post<{ Params: { port: number } }>(
    '/nodes/:port/create',
    { config: { access: 'mutate' }, schema: { summary: 'Initialise the data dir of a configured node and start it', params: portParams, response: { 200: nodeSchema, 404: errorSchema, 409: errorSchema } } },
    async (req) => {
      const n = nodeOf(req.params.port);
      jobs.refuseIfHeld(n.id, 'create');
      return publicView(await supervisor.initialize(n.id), req);
    },
  );

  app.post<{ Body: unknown }>(
    '/nodes',
    { config: { access: 'mutate' }, schema: { summary: 'Create a new node from a node entry (same shape as a config nodes[] entry) and start it', body: { type: 'object' }, response: { 200: nodeSchema, 400: errorSchema, 409: errorSchema } } },
    async (req) => {
      const parsed = nodeEntrySchema.safeParse(req.body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new HttpError(400, `node entry field "${issue.path.join('.') || 'body'}": ${issue.message}`);
      }
      if (parsed.data.kind === 'cluster_mgr' && !parsed.data.command?.length) {
        throw new HttpError(400, 'node entry field "command": a cluster_mgr node needs the program and its arguments');
      }
      refuseRemoteExecution(parsed.data, config.commandAllowList);
      const entry = { ...parsed.data, serverOptions: apiServerOptions(parsed.data), dir: path.resolve(config.nodesDir, parsed.data.dir) };
      return publicView(await supervisor.create(entry), req);
    },
  );

  app.delete<{ Params: { port: number } }>(
    '/nodes/:port',
    { config: { access: 'mutate' }, schema: { summary: 'Drop a node: stop it and move its directories to the trash', params: portParams, response: { 404: errorSchema, 409: errorSchema } } },
    async (req) => {
      const n = nodeOf(req.params.port);
      jobs.refuseIfHeld(n.id, 'drop');
      await supervisor.drop(n.id);
      return { result: 'succeed', info: `node ${n.id} dropped; its directories are in the trash` };
    },
  );

  app.post<{ Params: { port: number }; Body: { minutes?: number } | undefined }>(
    '/nodes/:port/pause',
    {
      config: { access: 'mutate' },
      schema: {
        summary: 'Pause automatic restarts (minutes: -1 until resumed, n minutes)',
        params: portParams,
        body: { type: 'object', properties: { minutes: { type: 'integer', minimum: -1 } } },
      },
    },
    async (req) => {
      const n = nodeOf(req.params.port);
      supervisor.pause(req.body?.minutes ?? -1, n.id);
      return publicView(supervisor.get(n.id)!, req);
    },
  );

  app.post<{ Params: { port: number } }>('/nodes/:port/resume', { config: { access: 'mutate' }, schema: { summary: 'Resume automatic restarts', params: portParams } }, async (req) => {
    const n = nodeOf(req.params.port);
    supervisor.pause(0, n.id);
    return publicView(supervisor.get(n.id)!, req);
  });

  app.get<{ Querystring: { limit?: number; status?: JobStatus; type?: string } }>(
    '/jobs',
    {
      config: { access: 'read' },
      schema: {
        summary: 'List jobs, newest first',
        querystring: {
          type: 'object',
          properties: { limit: { type: 'integer', minimum: 1, maximum: 1000 }, status: jobSchema.properties.status, type: { type: 'string' } },
        },
        response: { 200: { type: 'array', items: jobSchema } },
      },
    },
    async (req) =>
      jobs.list({ limit: req.query.limit ?? 100, status: req.query.status, type: req.query.type }),
  );

  app.get<{ Params: { id: string } }>(
    '/jobs/:id',
    { config: { access: 'read' }, schema: { summary: 'One job', params: { type: 'object', properties: { id: { type: 'string' } } }, response: { 200: jobSchema, 404: errorSchema } } },
    async (req): Promise<JobRecord> => {
      const job = jobs.get(req.params.id);
      if (!job) throw new HttpError(404, `no job ${req.params.id}`);
      return job;
    },
  );
}

// The OpenAPI description (/docs/json, OpenAPI 3.1: the route schemas are JSON Schema 2020-12
// style, with type arrays and numeric exclusiveMinimum) and its browsable form at /docs/ui.
// What a route schema leaves out — an operationId, a tag, the bearer requirement, the replies of
// routes that send a shape fastify need not serialise — is filled in here for the document only:
// a response schema added here never changes a reply's bytes.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';

const error = {
  type: 'object',
  required: ['result', 'info'],
  properties: { result: { type: 'string', enum: ['error'] }, info: { type: 'string', description: 'one sentence saying what is wrong' } },
} as const;
const done = { type: 'object', properties: { result: { type: 'string' }, info: { type: 'string' } }, additionalProperties: true } as const;
const anyObject = { type: 'object', additionalProperties: true } as const;
const ready = {
  type: 'object',
  properties: { result: { type: 'string' }, ready: { type: 'boolean' }, info: { type: 'string' }, checks: anyObject },
  additionalProperties: true,
} as const;
const text = (description: string, type = 'text/plain') => ({ description, content: { [type]: { schema: { type: 'string' } } } });

/** Hidden in their route schema (internal history), documented here: what monitoring calls. */
const SHOWN = new Set(['/healthz', '/readyz', '/metrics']);

/** Replies of routes whose schema has none or lacks the 2xx (keyed by METHOD and route pattern). */
const REPLIES: Record<string, Record<string, unknown>> = {
  'POST /': { 200: { ...anyObject, description: "the job_type's reply (shared/PROTOCOL.md): data for reads, {result, info, job_id} for jobs" } },
  'GET /:jobId': { 200: { ...anyObject, description: 'the job as get_status answers it; {"info":"no such job"} for an unknown id' } },
  'GET /healthz': { 200: done },
  'GET /readyz': { 200: ready, 503: ready },
  'GET /metrics': { 200: text('Prometheus text exposition (docs/metrics.md)', 'text/plain; version=0.0.4') },
  'GET /v1/events': { 200: text('server-sent events: hello, transition, job', 'text/event-stream') },
  'GET /v1/nodes/:port': { 200: { ...anyObject, description: 'the node (as in GET /v1/nodes) with its latest transitions' } },
  'DELETE /v1/nodes/:port': { 200: done },
  'GET /v1/nodes/:port/health': { 200: ready, 503: ready },
  'POST /v1/nodes/:port/pause': { 200: anyObject },
  'POST /v1/nodes/:port/resume': { 200: anyObject },
  'POST /v1/recv/table/preflight': { 200: anyObject },
  'POST /v1/recv/table': { 200: anyObject },
};

const SUMMARIES: Record<string, string> = {
  'POST /': "The seed protocol: a JSON body with job_type (get_node, get_info, *_cmd, coldbackup, …), or a multipart upload",
  'GET /:jobId': "The seed's status poll by path: the job's get_status reply",
  'GET /healthz': 'Alive: node-mgr answers',
  'GET /metrics': 'Prometheus metrics',
};

function tagOf(url: string): string {
  if (url === '/' || url === '/:jobId') return 'seed';
  if (['/healthz', '/readyz', '/metrics'].includes(url) || url.endsWith('/health')) return 'monitoring';
  const part = url.split('/')[2] ?? '';
  return { nodes: 'nodes', jobs: 'jobs', backups: 'backups', events: 'monitoring', recv: 'peers' }[part] ?? 'other';
}

/** getV1NodesByPortLog from GET /v1/nodes/:port/log: unique because method + path are. */
export function operationIdOf(method: string, url: string): string {
  const words = url
    .split('/')
    .filter(Boolean)
    .map((seg) => (seg.startsWith(':') ? `By${seg[1]!.toUpperCase()}${seg.slice(2)}` : seg))
    .flatMap((seg) => seg.split(/[^A-Za-z0-9]+/))
    .filter(Boolean)
    .map((w) => w[0]!.toUpperCase() + w.slice(1));
  return method.toLowerCase() + (words.join('') || 'Root');
}

export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'node-mgr',
        version: '0.1.0',
        description: 'Per-host supervisor of database nodes: the seed protocol (POST /, GET /{jobId}) and the /v1 REST face. Mutating requests need the bearer token (or an allow-listed source address); reads too when security.openReads is false.',
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      },
      servers: [{ url: 'http://127.0.0.1:9998', description: 'the default listen address' }],
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: "security.token of node-mgr's config" } } },
      security: [{ bearerAuth: [] }],
      tags: [
        { name: 'seed', description: "The original node_mgr's protocol, as cluster_mgr speaks it" },
        { name: 'nodes', description: 'Supervised database processes' },
        { name: 'jobs', description: 'Long operations and their progress' },
        { name: 'backups', description: 'Cold backups and restores' },
        { name: 'peers', description: 'Between the node-mgrs of a cluster (table sends)' },
        { name: 'monitoring', description: 'Probes, metrics and the event stream' },
        { name: 'other', description: 'Everything else' },
      ],
    },
    transform: ({ schema, url, route }) => {
      const method = (Array.isArray(route.method) ? route.method[0] : route.method) as string;
      const key = `${method} ${url}`;
      const given = (schema ?? {}) as Record<string, unknown>;
      if (given.hide && !SHOWN.has(url)) return { schema: given as never, url };
      // Routes anyone may call (auth.ts): no bearer requirement in the document.
      const open = route.config?.access === 'open';
      const response: Record<string, unknown> = { ...((given.response as Record<string, unknown>) ?? {}), ...(REPLIES[key] ?? {}) };
      if (!Object.keys(response).some((c) => c.startsWith('2'))) response[method === 'POST' ? '200' : '200'] = anyObject;
      if (!Object.keys(response).some((c) => c.startsWith('4'))) response['400'] = error;
      if (!open && !response['401']) response['401'] = error;
      const doc: Record<string, unknown> = {
        ...given,
        hide: false,
        operationId: (given.operationId as string | undefined) ?? operationIdOf(method, url),
        tags: (given.tags as string[] | undefined) ?? [tagOf(url)],
        summary: (given.summary as string | undefined) ?? SUMMARIES[key] ?? `${method} ${url}`,
        response,
        ...(open ? { security: [] } : {}),
      };
      return { schema: doc as never, url };
    },
  });
  app.get('/docs/json', { config: { access: 'open' }, schema: { hide: true } }, async () => app.swagger());
  // Not the seed's GET /<job_id>: the docs live at /docs/ui, and /docs points there.
  app.get('/docs', { config: { access: 'open' }, schema: { hide: true } }, async (_req, reply) =>
    reply.redirect('/docs/ui/', 302),
  );
  // The UI's routes (page, assets): all open, like the document they show.
  const ui = lazyDocsUi(app);
  app.get('/docs/ui', { config: { access: 'open' }, schema: { hide: true } }, ui);
  app.get('/docs/ui/*', { config: { access: 'open' }, schema: { hide: true } }, ui);
}

/** Hop-by-hop and framing headers of the UI's own replies: this reply has its own. */
const NOT_PASSED_ON = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date']);

/**
 * The docs UI (@fastify/swagger-ui with @fastify/static and their dependencies: about 100 files,
 * a tenth of a second of CPU and 5 MB at every start) is loaded at the first request under
 * /docs/ui, into a fastify of its own that shows this one's document; its replies are passed on.
 */
function lazyDocsUi(app: FastifyInstance): (req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply> {
  let ui: Promise<FastifyInstance> | null = null;
  const build = async (): Promise<FastifyInstance> => {
    const { default: swaggerUi } = await import('@fastify/swagger-ui');
    const docs = Fastify();
    await docs.register(swagger, { mode: 'static', specification: { document: app.swagger() as never } });
    await docs.register(swaggerUi, { routePrefix: '/docs/ui', uiConfig: { docExpansion: 'list', deepLinking: true } });
    await docs.ready();
    return docs;
  };
  return async (req, reply) => {
    // A failed load is tried again at the next request rather than remembered.
    ui ??= build().catch((err: unknown) => {
      ui = null;
      throw err;
    });
    const res = await (await ui).inject({ method: req.method as 'GET' | 'HEAD', url: req.url, headers: req.headers });
    for (const [name, value] of Object.entries(res.headers)) if (value !== undefined && !NOT_PASSED_ON.has(name)) void reply.header(name, value);
    return reply.code(res.statusCode).send(res.rawPayload);
  };
}

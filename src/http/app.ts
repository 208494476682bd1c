// The HTTP face: builds the fastify app over the supervisor and the job runner.
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import { registerOpenApi } from './openapi.ts';
import { errorHandler, badRequest, clientErrorReply, HttpError } from './errors.ts';
import { ExactHeaderResponse } from './exact-headers.ts';
import { ConnectionGate } from './connection-gate.ts';
import { replayReadBody, SeedFastPath } from './seed-fast-path.ts';
import { legacyRoutes } from './legacy.ts';
import { v1Routes } from './v1.ts';
import { backupRoutes } from './v1-backups.ts';
import { logRoutes } from './v1-logs.ts';
import { tableRecvRoutes } from './table-recv.ts';
import { eventRoutes } from './events.ts';
import { healthRoutes } from './health.ts';
import { instrumentHttp, metricsRoutes } from './metrics.ts';
import { inspectorRoutes } from './inspector/routes.ts';
import type { HttpDeps } from './deps.ts';
import { installAuth } from './auth.ts';
import { lazySchemas, type LazySchemas } from './lazy-schemas.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The seed polls answered before fastify's routing (tests read its count). */
    seedFastPath: SeedFastPath;
    /** The routes' schema compilers, which compile at each route's first request (tests compile them all). */
    schemas: LazySchemas;
  }
}

export async function buildHttpServer(deps: HttpDeps): Promise<FastifyInstance> {
  const tls = deps.config.listen.tls;
  const serverOptions = {
    // Header names spelled `Content-Length:` as the original clients search for them (PROTOCOL §1).
    ServerResponse: ExactHeaderResponse,
    // Node's own 400 for a HTTP/1.1 request without Host has no body; the hook below answers it.
    requireHostHeader: false,
    // A connection must bring a whole request head soon after it opens (or after the first byte
    // of a later request): an idle or trickling flood is cut off, with a 408 (clientErrorReply).
    headersTimeout: deps.config.security.headersTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, deps.config.security.headersTimeoutMs),
    requestTimeout: 0,
  };
  let closing = false;
  const schemas = lazySchemas();
  const app = Fastify({
    // Each route's validators and serializers are compiled at its first request, not at start (lazy-schemas.ts).
    schemaController: { compilersFactory: schemas.compilersFactory },
    ...(tls ? { https: { ...readTlsFiles(tls), ...serverOptions } } : { http: serverOptions }),
    // Fastify's per-request info lines would drown the log; refusals and failures are logged at warn.
    loggerInstance: deps.log.child({ component: 'http' }, { level: 'warn' }) as FastifyBaseLogger,
    bodyLimit: deps.config.security.bodyLimitBytes,
    // Slow clients that send a header and stall are cut off instead of holding a socket forever.
    connectionTimeout: deps.config.security.idleTimeoutMs,
    // Node's requestTimeout is one bound for every route; the hook below applies it per route.
    requestTimeout: 0,
    keepAliveTimeout: 65_000,
    // fastify's own 503 while closing has its own body; the hook below answers in ours.
    return503OnClosing: false,
    // Requests that never reach a route (a broken request line or header, a bad URL) get the same
    // one-sentence JSON error as everything else, not fastify's own body (PROTOCOL §1).
    clientErrorHandler: clientErrorReply,
    frameworkErrors: (err, req, reply) => errorHandler(err, req, reply),
  });
  // Per-address and overall connection limits, before the HTTP parser (or the TLS handshake) sees a
  // connection; loopback and allow-listed callers are never crowded out (connection-gate.ts).
  new ConnectionGate(() => deps.config.security, { plainHttp: !tls, log: app.log }).install(app.server);
  app.decorate('services', deps);
  app.decorate('schemas', schemas);
  // get_node / get_status / get_info polls are answered before fastify; the rest reaches it (seed-fast-path.ts).
  const seedFastPath = new SeedFastPath({
    deps,
    bodyLimit: deps.config.security.bodyLimitBytes,
    closing: () => closing,
    timedOut: (socket) => clientErrorReply(Object.assign(new Error('request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), socket),
  });
  seedFastPath.install(app.server);
  app.decorate('seedFastPath', seedFastPath);
  app.addHook('preParsing', (req, _reply, payload, done) => done(null, replayReadBody(req, payload)));
  app.setErrorHandler(errorHandler);
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (req, reply) => {
    // The seed face's replies carry only what the original clients' single small read needs.
    if (req.routeOptions.url === '/' || req.routeOptions.url === '/:jobId') (reply.raw as ExactHeaderResponse).seedFace = true;
    if (req.raw.httpVersion === '1.1' && req.headers.host === undefined) {
      void reply.header('connection', 'close');
      throw badRequest('an HTTP/1.1 request needs a Host header');
    }
    if (closing) {
      void reply.header('connection', 'close');
      throw new HttpError(503, 'node-mgr is shutting down; try again when it is back');
    }
  });
  // Each route's declared access becomes its own check (auth.ts): a mutation is refused before its
  // body is read; reads follow security.openReads; POST / decides by its job_type.
  installAuth(app, deps.config);
  // A request must arrive in full within requestTimeoutMs, except on routes whose body is a stream
  // that may rightly take longer (config.streamedBody: a table sent by another node-mgr): those
  // are bounded by the idle timeout, so a sender that stops is still cut off.
  app.addHook('onRequest', (req, reply, done) => {
    if (req.raw.complete || (req.routeOptions.config as { streamedBody?: boolean } | undefined)?.streamedBody) return done();
    const timer = setTimeout(() => {
      if (!req.raw.complete) clientErrorReply(Object.assign(new Error('request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), req.raw.socket);
    }, deps.config.security.requestTimeoutMs).unref();
    reply.raw.once('close', () => clearTimeout(timer));
    done();
  });
  instrumentHttp(app, deps.metrics);
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ result: 'error', info: `no route ${req.method} ${req.url.split('?')[0]}` });
  });

  // The body is JSON whatever the Content-Type says (curl -d sends form-urlencoded); only
  // multipart is different (PROTOCOL §1, §7), and @fastify/multipart claims it below.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(badRequest(`request body is not valid JSON: ${(err as Error).message}`), undefined);
    }
  });
  // preservePath: see the filename as sent, so `../x` is refused rather than silently cut to `x`.
  await app.register(multipart, { preservePath: true, limits: { fileSize: deps.config.security.uploadLimitBytes, files: 1 } });
  await registerOpenApi(app);

  // Route plugins take their services from app.services; each route declares its access (auth.ts).
  await app.register(legacyRoutes);
  await app.register(v1Routes, { prefix: '/v1' });
  await app.register(backupRoutes, { prefix: '/v1' });
  await app.register(logRoutes, { prefix: '/v1' });
  await app.register(tableRecvRoutes, { prefix: '/v1' });
  await app.register(eventRoutes, { prefix: '/v1' });
  await app.register(healthRoutes);
  await app.register(metricsRoutes);
  await app.register(inspectorRoutes);
  app.get('/healthz', { config: { access: 'open' }, schema: { hide: true } }, async () => ({ result: 'succeed', info: 'node-mgr is alive' }));
  return app;
}

/** The PEM files of listen.tls, with a sentence naming the one that cannot be read. */
function readTlsFiles(tls: { cert: string; key: string; ca?: string }): { cert: Buffer; key: Buffer } {
  const read = (what: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`listen.tls.${what}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  return { cert: read('cert', tls.cert), key: read('key', tls.key) };
}

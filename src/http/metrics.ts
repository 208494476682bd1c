// GET /metrics (Prometheus text) and the request-latency hook over every route.
import type { FastifyInstance } from 'fastify';
import type { NodeMgrMetrics } from '../metrics/metrics.ts';

/** Routes whose replies last as long as the client stays: their "latency" means nothing. */
const STREAMS = new Set(['/v1/events']);

/**
 * Times every request by its route pattern (`/v1/nodes/:port`, never the raw URL, so the label set
 * stays bounded). Added on the root instance, before the routes, so that it covers all of them.
 */
export function instrumentHttp(app: FastifyInstance, metrics: NodeMgrMetrics): void {
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    if (STREAMS.has(route)) return;
    metrics.observeHttp(req.method, route, reply.statusCode, reply.elapsedTime / 1000);
  });
}

export async function metricsRoutes(app: FastifyInstance): Promise<void> {
  const { metrics } = app.services;
  app.get('/metrics', { config: { access: 'read' }, schema: { hide: true } }, async (_req, reply) => {
    const text = await metrics.render();
    return reply.type(metrics.contentType).send(text);
  });
}

// Probes for load balancers, cluster_mgr and orchestration: /readyz (node-mgr can do its job) and
// /v1/nodes/:port/health (this node's server can take traffic). Both answer 200 or 503 with a JSON
// body saying why; like /healthz they need no credentials, since a probe seldom carries any.
import type { FastifyInstance } from 'fastify';
import { portParams } from './schemas.ts';

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  const { supervisor, store } = app.services;

  app.get('/readyz', { config: { access: 'open' }, schema: { summary: 'Ready: every node actor loaded and the state file takes writes', hide: true } }, async (_req, reply) => {
    let storeError: string | null = null;
    try {
      store.checkWritable();
    } catch (err) {
      storeError = (err as Error).message;
    }
    const checks = { actorsLoaded: supervisor.loaded, stateStoreWritable: storeError === null };
    const ready = checks.actorsLoaded && checks.stateStoreWritable;
    const info = ready
      ? 'node-mgr is ready'
      : [!checks.actorsLoaded && 'the node actors are still adopting or starting their servers', storeError].filter(Boolean).join('; ');
    return reply.code(ready ? 200 : 503).send({ result: ready ? 'succeed' : 'error', ready, info, checks });
  });

  app.get<{ Params: { port: number } }>(
    '/v1/nodes/:port/health',
    { config: { access: 'open' }, schema: { summary: 'One node: 200 when its server is up and its last health probe passed, 503 otherwise', params: portParams } },
    async (req, reply) => {
      const n = supervisor.byPort(req.params.port);
      if (!n) return reply.code(404).send({ result: 'error', ready: false, info: `no node on port ${req.params.port} on this host` });
      const probeFailures = supervisor.actorOf(n.id)?.getSnapshot().context.probeFailures ?? 0;
      const ready = supervisor.isReady(n.id);
      const serving = supervisor.is(n.id, 'serving');
      let info: string;
      if (ready) info = `node ${n.id} is ${n.state}`;
      else if (serving) info = `node ${n.id} is ${n.state} but its last ${probeFailures} health probe(s) failed`;
      else info = `node ${n.id} is ${n.state}${n.lastError ? `: ${n.lastError}` : ''}`;
      return reply.code(ready ? 200 : 503).send({
        result: ready ? 'succeed' : 'error',
        ready,
        info,
        node: n.id,
        port: n.port,
        state: n.state,
        wanted: n.wanted,
        pid: n.pid,
        since: n.since,
        probeFailures,
        restarts: n.restarts,
        backoffUntil: n.backoffUntil,
      });
    },
  );
}

// The original node_mgr's face: `POST /` with a JSON body whose job_type selects the job
// (PROTOCOL §1–§5), the multipart upload (§7), and `GET /<job_id>`.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { submitCommandJob } from '../jobs/node-commands.ts';
import { sendDestination } from '../jobs/table-transfer.ts';
import { badRequest, HttpError, notFound } from './errors.ts';
import { isLegacyJobType, isSeedRead, parseLegacyRequest, type LegacyJobType } from './legacy-requests.ts';
import { legacyJobStatus } from './legacy-status.ts';
import { seedRepliesFor } from './seed-replies.ts';
import { legacyInfo } from './legacy-nodes.ts';
import { handleUpload } from './upload.ts';
import type { HttpDeps } from './deps.ts';
import type { Access } from './auth.ts';

/**
 * An upload or a job type that changes something is a mutation; get_* are reads. A body that names
 * no known job type is refused by the handler (400) before anyone asks who sent it.
 */
function seedAccess(req: FastifyRequest): Access {
  if (req.isMultipart()) return 'mutate';
  const jobType = (req.body as { job_type?: unknown } | null | undefined)?.job_type;
  if (!isLegacyJobType(jobType)) return 'open';
  return isSeedRead(jobType) ? 'read' : 'mutate';
}

export async function legacyRoutes(app: FastifyInstance): Promise<void> {
  const deps = app.services;
  app.post('/', { config: { access: seedAccess } }, async (req, reply) => {
    if (req.isMultipart()) return handleUpload(req, deps);
    const body = req.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('request body must be a JSON object');
    const jobType = (body as Record<string, unknown>).job_type;
    if (jobType === undefined) throw badRequest('field "job_type" is required');
    if (!isLegacyJobType(jobType)) throw badRequest(`unknown job_type ${JSON.stringify(jobType).slice(0, 80)}`);
    const answer = await dispatch(jobType, body, deps, req);
    return reply.type('application/json').send(answer);
  });

  // The original's status poll by path; same reply as get_status.
  app.get<{ Params: { jobId: string } }>('/:jobId', { config: { access: 'read' } }, async (req) => legacyJobStatus(deps.jobs, req.params.jobId));
}

async function dispatch(jobType: LegacyJobType, body: object, deps: HttpDeps, req: FastifyRequest): Promise<unknown> {
  switch (jobType) {
    // The read-only types answer with text prepared when what they show changed (seed-replies.ts).
    case 'get_node': {
      const r = parseLegacyRequest('get_node', body);
      return seedRepliesFor(deps).getNode(r.node_type);
    }
    case 'get_info': {
      parseLegacyRequest('get_info', body);
      // The first request after start waits for the first samples (at most 2 s).
      await deps.host.current();
      return seedRepliesFor(deps).getInfo() ?? legacyInfo(deps, deps.supervisor.list());
    }
    case 'get_status': {
      const r = parseLegacyRequest('get_status', body);
      return seedRepliesFor(deps).getStatus(r.job_id);
    }
    case 'auto_pullup': {
      const r = parseLegacyRequest('auto_pullup', body);
      let id: string | undefined;
      if (r.port !== undefined) {
        const node = deps.supervisor.byPort(r.port);
        if (!node) throw new HttpError(404, `no node on port ${r.port} on this host`);
        id = node.id;
      }
      deps.supervisor.pause(r.minutes, id);
      return { result: 'succeed' };
    }
    case 'update_node': {
      const r = parseLegacyRequest('update_node', body);
      return accept(deps, { id: r.job_id, type: 'update_node', params: r });
    }
    case 'mysql_cmd':
    case 'pgsql_cmd':
    case 'cluster_cmd': {
      const r = parseLegacyRequest(jobType, body);
      const { job } = await submitCommandJob(deps.jobs, deps.config, deps.supervisor, { id: r.job_id, type: jobType, params: r });
      return accepted(job.id);
    }
    case 'delete':
    case 'send':
    case 'coldbackup':
    case 'coldrestore':
    case 'rebuild_node': {
      const r = parseLegacyRequest(jobType, body);
      if (deps.jobs.hasHandler(jobType)) {
        const node = deps.supervisor.byPort(r.s_port);
        if (!node) throw notFound(`no node on port ${r.s_port} on this host`);
        // A send goes only to a node of this host or a configured peer: refused here, before a job or a connection.
        if (jobType === 'send' && 'd_ip' in r) sendDestination(deps.config, deps.supervisor, r.d_ip, r.d_port);
        return accept(deps, { id: r.job_id, type: jobType, params: r, nodeId: node.id });
      }
      req.log.info({ jobType }, 'job type not implemented yet');
      throw new HttpError(501, `job_type ${jobType} is not implemented yet by this node-mgr; the request was valid and nothing was done`);
    }
  }
  // Exhaustive above; kept for the compiler.
  throw badRequest(`unknown job_type ${String(jobType)}`);
}

function accept(deps: HttpDeps, submission: { id?: string; type: string; params: unknown; nodeId?: string }) {
  const { job } = deps.jobs.submit(submission);
  return accepted(job.id);
}

/** PROTOCOL §3: the acceptance reply of an asynchronous job. */
function accepted(jobId: string) {
  return { result: 'succeed', info: 'accepted', job_id: jobId };
}

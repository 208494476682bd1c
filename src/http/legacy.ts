// The original node_mgr's face: `POST /` with a JSON body whose job_type selects the job
// (PROTOCOL §1–§5), the multipart upload (§7), and `GET /<job_id>`.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { NodeView } from '../supervisor/supervisor.ts';
import { submitCommandJob } from '../jobs/node-commands.ts';
import { humanSize } from '../host/format.ts';
import { sendDestination } from '../jobs/table-transfer.ts';
import { badRequest, HttpError, notFound } from './errors.ts';
import { isLegacyJobType, parseLegacyRequest, NODE_TYPES, type LegacyJobType } from './legacy-requests.ts';
import { legacyJobStatus } from './legacy-status.ts';
import { seedRepliesFor } from './seed-replies.ts';
import { handleUpload } from './upload.ts';
import { binlogArchiveOf, type HttpDeps } from './deps.ts';
import type { Access } from './auth.ts';

const READ_ONLY = new Set<LegacyJobType>(['get_node', 'get_info', 'get_status']);

const ROLE_TO_TYPE: Record<string, (typeof NODE_TYPES)[number] | undefined> = {
  meta: 'meta_node',
  storage: 'storage_node',
  computer: 'computer_node',
};

/**
 * An upload or a job type that changes something is a mutation; get_* are reads. A body that names
 * no known job type is refused by the handler (400) before anyone asks who sent it.
 */
function seedAccess(req: FastifyRequest): Access {
  if (req.isMultipart()) return 'mutate';
  const jobType = (req.body as { job_type?: unknown } | null | undefined)?.job_type;
  if (!isLegacyJobType(jobType)) return 'open';
  return READ_ONLY.has(jobType) ? 'read' : 'mutate';
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

/** PROTOCOL §2: members keyed `<type>N`, original fields first; `uptime_s` as of `now`. */
export function getNodeReply(deps: HttpDeps, nodeType?: (typeof NODE_TYPES)[number], nodes = deps.supervisor.list(), now = Date.now()): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const types = nodeType ? [nodeType] : NODE_TYPES;
  for (const t of types) {
    nodes
      .filter((n) => ROLE_TO_TYPE[n.role] === t)
      .sort((a, b) => a.port - b.port)
      .forEach((n, i) => {
        out[`${t}${i}`] = legacyNode(n, deps, now);
      });
  }
  return out;
}

/** PROTOCOL §2 get_info: the host's figures and its nodes counted by type. */
export function legacyInfo(deps: HttpDeps, nodes: NodeView[]) {
  const count = (t: string) => nodes.filter((n) => ROLE_TO_TYPE[n.role] === t).length;
  return deps.host.legacyInfoNow(
    { meta_node: count('meta_node'), storage_node: count('storage_node'), computer_node: count('computer_node') },
    nodes.map((n) => n.dataDir),
  );
}

function legacyNode(n: NodeView, deps: HttpDeps, now: number): Record<string, unknown> {
  const usage = deps.usage.get(n.id);
  const member: Record<string, unknown> = {
    ip: n.ip,
    port: n.port,
    user: n.user,
    pwd: deps.config.security.exposeSecrets ? n.password : '******',
    path: n.dataDir,
    disk_used: usage.diskUsed === null ? '' : humanSize(usage.diskUsed),
    disk_free: usage.diskFree === null ? '' : humanSize(usage.diskFree),
  };
  if (n.role === 'storage' || n.role === 'meta') {
    if (n.cluster !== undefined) member.cluster = n.cluster;
    if (n.shard !== undefined) member.shard = n.shard;
  }
  if (n.role === 'computer' && n.cluster !== undefined) member.cluster = n.cluster;
  Object.assign(member, {
    kind: n.kind,
    state: n.state,
    wanted: n.wanted,
    pid: n.pid,
    since: n.since,
    uptime_s: n.state === 'running' ? Math.round((now - Date.parse(n.since)) / 1000) : 0,
    restarts: n.restarts,
    last_exit: n.lastExit ? { code: n.lastExit.code, signal: n.lastExit.signal, cause: n.lastExit.cause, detail: n.lastExit.detail } : null,
    cpu_pct: usage.cpuPct === null ? null : Math.round(usage.cpuPct * 100) / 100,
    mem_rss: usage.memRss,
  });
  const archive = binlogArchiveOf(deps, n);
  if (archive) member.binlog_archive = archive;
  return member;
}

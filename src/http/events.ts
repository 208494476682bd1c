// GET /v1/events: node transitions and job updates as server-sent events, for the inspector page
// and for `curl -N`. One hub listens to the supervisor and the job runner (only while someone is
// connected) and writes each event, serialised once, to every client.
//
//   event: hello        the whole picture at connect time: nodes, recent jobs
//   event: transition   {nodeId, port, from, to, event, at, detail, node}
//   event: job          a job record (params redacted); progress at most every 500 ms per job
//   event: archive      {nodeId, port, at, binlog_archive}: a node's binlog archive view when it
//                       changed (pending files and bytes, lag, state), at most every 500 ms per node
//   : heartbeat         a comment every 15 s, so proxies and idle timers keep the stream open
import { withLogTailFor } from './secrets.ts';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServerResponse } from 'node:http';
import { binlogArchiveOf, type HttpDeps } from './deps.ts';
import type { NodeView, Transition } from '../supervisor/supervisor.ts';
import type { JobRecord } from '../state/store.ts';
import type { NodeUsage } from '../host/node-usage.ts';

export interface EventStreamOptions {
  heartbeatMs?: number;
  /** Minimum interval between two progress-only events of one job. */
  jobProgressIntervalMs?: number;
  /** A client that falls this far behind (bytes queued in its socket) is cut off. */
  maxBufferedBytes?: number;
}

/** A node as clients see it: no password, no log tail (the stream is a read anyone may open), with its latest usage sample. */
export function publicNode(n: NodeView, usage: Pick<NodeUsage, 'get'>) {
  const { password, ...rest } = n;
  void password;
  return { ...withLogTailFor(rest, false), usage: usage.get(n.id) };
}

interface Client {
  res: ServerResponse;
}

interface JobThrottle {
  status: string;
  sentAt: number;
  timer: NodeJS.Timeout | null;
  latest: JobRecord | null;
}

class EventHub {
  private readonly clients = new Set<Client>();
  private seq = 0;
  private heartbeat: NodeJS.Timeout | null = null;
  private unsubscribeJobs: (() => void) | null = null;
  private unsubscribeArchive: (() => void) | null = null;
  private readonly jobThrottle = new Map<string, JobThrottle>();
  /** Per node: when its last archive event went out, the view it carried (without the pass time), and a timer for the newest. */
  private readonly archiveThrottle = new Map<string, { sentAt: number; sent: string; timer: NodeJS.Timeout | null }>();
  private readonly heartbeatMs: number;
  private readonly jobProgressIntervalMs: number;
  private readonly maxBufferedBytes: number;

  constructor(
    private readonly deps: HttpDeps,
    opts: EventStreamOptions,
  ) {
    this.heartbeatMs = opts.heartbeatMs ?? 15_000;
    this.jobProgressIntervalMs = opts.jobProgressIntervalMs ?? 500;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 4 * 1024 * 1024;
  }

  get size(): number {
    return this.clients.size;
  }

  add(res: ServerResponse): void {
    const client: Client = { res };
    if (this.clients.size === 0) this.subscribe();
    this.clients.add(client);
    this.deps.metrics.eventStreamClients.set(this.clients.size);
    res.on('close', () => this.remove(client));
    const { supervisor, jobs, usage } = this.deps;
    const hello = {
      server: 'node-mgr',
      at: Date.now(),
      heartbeatMs: this.heartbeatMs,
      nodes: supervisor.list().map((n) => {
        const archive = binlogArchiveOf(this.deps, n);
        return { ...publicNode(n, usage), ...(archive ? { binlog_archive: archive } : {}) };
      }),
      jobs: jobs.list({ limit: 50 }),
    };
    // `retry` tells EventSource how soon to reconnect; the next hello brings it up to date.
    res.write(`retry: 2000\n${this.frame('hello', hello)}`);
  }

  /** Ends every stream: fastify's close waits for open connections, and these never end by themselves. */
  closeAll(): void {
    for (const c of [...this.clients]) c.res.end();
  }

  private remove(client: Client): void {
    if (!this.clients.delete(client)) return;
    this.deps.metrics.eventStreamClients.set(this.clients.size);
    if (this.clients.size === 0) this.unsubscribe();
  }

  private subscribe(): void {
    this.deps.supervisor.on('transition', this.onTransition);
    this.unsubscribeJobs = this.deps.jobs.onUpdate(this.onJob);
    this.unsubscribeArchive = this.deps.binlogArchive?.onChange(this.onArchive) ?? null;
    this.heartbeat = setInterval(() => this.write(`: heartbeat ${new Date().toISOString()}\n\n`), this.heartbeatMs);
    this.heartbeat.unref();
  }

  private unsubscribe(): void {
    this.deps.supervisor.off('transition', this.onTransition);
    this.unsubscribeJobs?.();
    this.unsubscribeJobs = null;
    this.unsubscribeArchive?.();
    this.unsubscribeArchive = null;
    for (const t of this.archiveThrottle.values()) if (t.timer) clearTimeout(t.timer);
    this.archiveThrottle.clear();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    for (const t of this.jobThrottle.values()) if (t.timer) clearTimeout(t.timer);
    this.jobThrottle.clear();
  }

  private readonly onTransition = (t: Transition): void => {
    const view = this.deps.supervisor.get(t.nodeId);
    this.write(this.frame('transition', { ...t, node: view ? publicNode(view, this.deps.usage) : null }));
  };

  /** Status changes go out at once; progress within a status is thinned to one event per interval. */
  private readonly onJob = (job: JobRecord): void => {
    const now = Date.now();
    const t = this.jobThrottle.get(job.id);
    const finished = job.status !== 'queued' && job.status !== 'running';
    if (!t || t.status !== job.status || now - t.sentAt >= this.jobProgressIntervalMs) {
      if (t?.timer) clearTimeout(t.timer);
      this.sendJob(job, now);
      return;
    }
    t.latest = job;
    if (finished || t.timer) return;
    t.timer = setTimeout(() => {
      t.timer = null;
      if (t.latest) this.sendJob(t.latest, Date.now());
    }, this.jobProgressIntervalMs - (now - t.sentAt));
    t.timer.unref();
  };

  /**
   * A node's archive view changed: sent when it differs from the last one sent (a pass that found
   * nothing new changes only its time), at most once per interval; the newest goes out at the end of it.
   */
  private readonly onArchive = (nodeId: string): void => {
    const t = this.archiveThrottle.get(nodeId);
    if (t?.timer) return;
    const wait = t ? this.jobProgressIntervalMs - (Date.now() - t.sentAt) : 0;
    if (wait <= 0) {
      this.sendArchive(nodeId);
      return;
    }
    t!.timer = setTimeout(() => {
      t!.timer = null;
      this.sendArchive(nodeId);
    }, wait);
    t!.timer.unref();
  };

  private sendArchive(nodeId: string): void {
    const n = this.deps.supervisor.get(nodeId);
    const archive = n ? binlogArchiveOf(this.deps, n) : null;
    if (!n || !archive) return;
    const { last_pass_at: _, ...compared } = archive;
    const text = JSON.stringify(compared);
    const t = this.archiveThrottle.get(nodeId);
    if (t?.sent === text) return;
    this.archiveThrottle.set(nodeId, { sentAt: Date.now(), sent: text, timer: null });
    this.write(this.frame('archive', { nodeId, port: n.port, at: Date.now(), binlog_archive: archive }));
  }

  private sendJob(job: JobRecord, now: number): void {
    const finished = job.status !== 'queued' && job.status !== 'running';
    if (finished) this.jobThrottle.delete(job.id);
    else this.jobThrottle.set(job.id, { status: job.status, sentAt: now, timer: null, latest: null });
    this.write(this.frame('job', job));
  }

  private frame(event: string, data: unknown): string {
    return `id: ${++this.seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  private write(chunk: string): void {
    for (const c of this.clients) {
      // A stalled reader must not make node-mgr buffer without end.
      if (c.res.writableLength > this.maxBufferedBytes) {
        this.deps.log.warn({ buffered: c.res.writableLength }, 'event stream client too slow; disconnecting it');
        c.res.destroy();
        this.remove(c);
        continue;
      }
      c.res.write(chunk);
    }
  }
}

export async function eventRoutes(app: FastifyInstance, opts: EventStreamOptions): Promise<void> {
  const hub = new EventHub(app.services, opts);
  app.addHook('preClose', async () => hub.closeAll());
  app.get('/events', { config: { access: 'read' }, schema: { summary: 'Server-sent events: hello, transition, job (see src/http/events.ts)' } }, async (req, reply: FastifyReply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Proxies such as nginx would otherwise hold events back to fill a buffer.
      'x-accel-buffering': 'no',
    });
    req.raw.socket.setNoDelay(true);
    hub.add(res);
  });
}

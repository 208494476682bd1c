// The seed face's polls — POST / with get_node, get_status or get_info — answered in Node's own
// 'request' event, before fastify: cluster_mgr and the original clients send them by the thousand,
// and fastify's per-request work (request and reply objects, a child logger, hooks, content-type
// parsing, routing, serialization) cost several times what the prepared reply does. Only the
// plain success of a read the caller may make is answered here; anything else (another job type,
// a body that is not a JSON object, a bad field, a refused credential, a chunked or large body,
// multipart, a missing Host, shutdown) goes on to fastify with the body already read, and fastify
// answers it as it always has. The reply bytes are those fastify sends for the same request
// (PROTOCOL §1): `Content-Type: application/json` and `Content-Length:` spelled so, no Date, then
// Node's own Connection/Keep-Alive lines; test/integration/seed-fast-path.test.ts compares them.
import { ServerResponse, type IncomingMessage, type Server } from 'node:http';
import { Readable } from 'node:stream';
import type { Socket } from 'node:net';
import type { HttpDeps } from './deps.ts';
import { isSeedRead, parseLegacyRequest } from './legacy-requests.ts';
import { requireMutationAllowed } from './security.ts';
import { seedRepliesFor, type SeedReplies } from './seed-replies.ts';

/** The seed's polls are a few dozen bytes; a larger body takes fastify's path and its limits. */
const FAST_BODY_MAX = 16 * 1024;

/** The body this path read before it handed the request on (fastify reads it from here). */
const READ_BODY = Symbol('nodeMgrSeedBody');

type RequestWithBody = IncomingMessage & { [READ_BODY]?: Buffer };

/** What a body asks for, as far as this path is concerned: null when it is not a valid seed read. */
type SeedAsk = { job: 'get_node'; nodeType: Parameters<SeedReplies['getNode']>[0] } | { job: 'get_status'; jobId: string } | { job: 'get_info' } | null;

/**
 * The pollers send the same few bodies over and over: what a body asks for is kept by its text,
 * so JSON.parse and the schema run once per distinct body, not once per request. Bounded: bodies
 * longer than ASK_KEY_MAX are not kept, and the cache starts over once it holds ASK_CACHE_MAX.
 */
const ASK_CACHE_MAX = 512;
const ASK_KEY_MAX = 1024;
type Listener = (req: IncomingMessage, res: ServerResponse) => void;

export interface SeedFastPathOptions {
  deps: HttpDeps;
  /** fastify's bodyLimit: a body beyond it is fastify's 413. */
  bodyLimit: number;
  /** True once the server is closing: fastify answers 503 then. */
  closing: () => boolean;
  /** Cuts off a request whose body has not arrived within security.requestTimeoutMs (a 408). */
  timedOut: (socket: Socket) => void;
}

export class SeedFastPath {
  /** Requests answered here (tests and the bench look). */
  served = 0;
  private readonly replies: SeedReplies;
  /** Requests whose body is on its way, with when they began; swept for the request timeout. */
  private readonly reading = new Map<RequestWithBody, number>();
  private sweeper: NodeJS.Timeout | null = null;
  private readonly asks = new Map<string, SeedAsk>();
  /** The latency histogram's child for this path's one label set, bound once. */
  private readonly observe: (seconds: number) => void;

  constructor(private readonly opts: SeedFastPathOptions) {
    this.replies = seedRepliesFor(opts.deps);
    this.observe = opts.deps.metrics.httpObserver('POST', '/', 200);
  }

  /** Goes in front of the server's request listeners (fastify's), which get whatever is not answered here. */
  install(server: Server): void {
    const inner = server.listeners('request') as Listener[];
    server.removeAllListeners('request');
    const next: Listener = (req, res) => {
      for (const listener of inner) listener.call(server, req, res);
    };
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, next));
    server.once('close', () => this.stop());
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  private onRequest(req: RequestWithBody, res: ServerResponse, next: Listener): void {
    const length = this.takes(req);
    if (length === 0) return next(req, res);
    const started = performance.now();
    const chunks: Buffer[] = [];
    this.reading.set(req, started);
    this.sweep();
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => {
      this.reading.delete(req);
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const text = this.answer(req, body);
      if (text === undefined) {
        req[READ_BODY] = body;
        return next(req, res);
      }
      this.served++;
      res.sendDate = false;
      // Node's own writeHead: the names are spelled here already (ExactHeaderResponse need not respell them).
      ServerResponse.prototype.writeHead.call(res, 200, ['Content-Type', 'application/json', 'Content-Length', String(Buffer.byteLength(text))]);
      res.end(text);
      this.observe((performance.now() - started) / 1000);
    });
  }

  /** The Content-Length of a request this path may answer, or 0 when it is fastify's. */
  private takes(req: IncomingMessage): number {
    if (req.method !== 'POST' || req.url !== '/' || this.opts.closing()) return 0;
    const h = req.headers;
    if (h['transfer-encoding'] !== undefined || h['content-length'] === undefined) return 0;
    if (req.httpVersion === '1.1' && h.host === undefined) return 0;
    const type = h['content-type'];
    if (type !== undefined && type.toLowerCase().includes('multipart')) return 0;
    const length = Number(h['content-length']);
    return Number.isInteger(length) && length > 0 && length <= FAST_BODY_MAX && length <= this.opts.bodyLimit ? length : 0;
  }

  /** The reply text, or undefined for anything but a valid read this caller may make. */
  private answer(req: IncomingMessage, raw: Buffer): string | undefined {
    const text = raw.toString();
    let ask = this.asks.get(text);
    if (ask === undefined) {
      ask = askOf(text);
      if (text.length <= ASK_KEY_MAX) {
        if (this.asks.size >= ASK_CACHE_MAX) this.asks.clear();
        this.asks.set(text, ask);
      }
    }
    if (ask === null) return undefined;
    const config = this.opts.deps.config;
    if (!config.security.openReads) {
      try {
        requireMutationAllowed(req, config);
      } catch {
        // A refused credential: fastify says why, in the usual error reply.
        return undefined;
      }
    }
    switch (ask.job) {
      case 'get_node':
        return this.replies.getNode(ask.nodeType);
      case 'get_status':
        return this.replies.getStatus(ask.jobId);
      case 'get_info':
        return this.replies.getInfo();
    }
  }

  /** One timer for all requests being read, running only while there are some. */
  private sweep(): void {
    if (this.sweeper) return;
    const every = Math.min(1000, this.opts.deps.config.security.requestTimeoutMs);
    this.sweeper = setInterval(() => {
      const limit = performance.now() - this.opts.deps.config.security.requestTimeoutMs;
      for (const [req, started] of this.reading) {
        if (req.destroyed || req.complete) this.reading.delete(req);
        else if (started <= limit) {
          this.reading.delete(req);
          this.opts.timedOut(req.socket);
        }
      }
      if (this.reading.size === 0) this.stop();
    }, every).unref();
  }
}

/** What a body asks for when it is a valid get_node, get_status or get_info; null otherwise (fastify's). */
function askOf(text: string): SeedAsk {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return null;
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return null;
  const jobType = (body as { job_type?: unknown }).job_type;
  // The same rule as POST /'s declared access (legacy.ts seedAccess): only a read is answered here.
  if (!isSeedRead(jobType)) return null;
  try {
    switch (jobType) {
      case 'get_node':
        return { job: 'get_node', nodeType: parseLegacyRequest('get_node', body).node_type };
      case 'get_status':
        return { job: 'get_status', jobId: parseLegacyRequest('get_status', body).job_id };
      case 'get_info':
        parseLegacyRequest('get_info', body);
        return { job: 'get_info' };
    }
  } catch {
    // A bad field: fastify says which, in the usual error reply.
    return null;
  }
}

/**
 * A preParsing hook for the fastify app: a request the fast path handed on has its body read
 * already; fastify parses it from a stream over those bytes.
 */
export function replayReadBody(req: { raw: IncomingMessage }, payload: Readable): Readable {
  const body = (req.raw as RequestWithBody)[READ_BODY];
  return body === undefined ? payload : Readable.from([body], { objectMode: false });
}

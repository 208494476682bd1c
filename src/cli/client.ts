// How the CLI reaches a running node-mgr: the address, bearer token and CA come from the same
// config file the service runs with, so `node-mgr nodes --config FILE` works wherever `serve` does.
import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** Where a packaged install keeps its config (packaging/node-mgr.service). */
export const DEFAULT_CONFIG_FILE = '/etc/node-mgr/node-mgr.json';

export interface EndpointOptions {
  config?: string;
  url?: string;
  token?: string;
}

export interface Endpoint {
  url: string;
  token?: string;
  ca?: Buffer;
  /** Where the settings came from, for error messages. */
  source: string;
}

/** --url, --token and NODE_MGR_TOKEN override the config file; without --config, the packaged one if present. */
export async function resolveEndpoint(opts: EndpointOptions): Promise<Endpoint> {
  const file = opts.config ?? process.env.NODE_MGR_CONFIG ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  const token = opts.token ?? process.env.NODE_MGR_TOKEN;
  if (opts.url && !file) return { url: opts.url.replace(/\/+$/, ''), token, source: '--url' };
  // Loaded only when needed: the config schema (zod) costs a noticeable part of a short command.
  const { loadConfig, parseConfig } = await import('../config/load.ts');
  const config = file ? await loadConfig(file) : parseConfig({});
  const tls = config.listen.tls;
  const host = config.listen.host === '0.0.0.0' ? '127.0.0.1' : config.listen.host === '::' ? '::1' : config.listen.host;
  const url = (opts.url ?? `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${config.listen.port}`).replace(/\/+$/, '');
  const ca = tls ? readFileSync(tls.ca ?? tls.cert) : undefined;
  return { url, token: token ?? config.security.token, ca, source: file ? `config ${file}` : 'the default address' };
}

export class CliError extends Error {}

export interface Reply<T> {
  status: number;
  body: T;
}

export class NodeMgrClient {
  constructor(readonly endpoint: Endpoint) {}

  get<T>(route: string): Promise<T> {
    return this.call<T>('GET', route);
  }

  post<T>(route: string, body?: unknown): Promise<T> {
    return this.call<T>('POST', route, body ?? {});
  }

  /** Throws a CliError that says what to do for every failure an operator can meet. */
  async call<T>(method: string, route: string, body?: unknown, timeoutMs = 180_000): Promise<T> {
    const reply = await this.raw(method, route, body, timeoutMs);
    if (reply.status >= 200 && reply.status < 300) return JSON.parse(reply.text) as T;
    let info = reply.text;
    try {
      info = (JSON.parse(reply.text) as { info?: string }).info ?? reply.text;
    } catch {
      /* not JSON: show the text */
    }
    const { url, source } = this.endpoint;
    if (reply.status === 401) throw new CliError(`node-mgr at ${url} wants a credential (${info}): pass --config with the file that has security.token, --token, or NODE_MGR_TOKEN`);
    if (reply.status === 403) throw new CliError(`node-mgr at ${url} refused the token from ${this.endpoint.token === undefined ? source : 'the command line'} (${info}): use the token of the running node-mgr's config`);
    throw new CliError(`${method} ${route}: HTTP ${reply.status}: ${info}`);
  }

  raw(method: string, route: string, body?: unknown, timeoutMs = 180_000): Promise<{ status: number; text: string }> {
    const { url, token, ca } = this.endpoint;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (payload !== undefined) headers['content-type'] = 'application/json';
    return new Promise((resolve, reject) => {
      const onResponse = (res: IncomingMessage) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.once('error', reject);
      };
      const target = `${url}${route}`;
      const req = target.startsWith('https:') ? httpsRequest(target, { method, headers, ...(ca ? { ca } : {}) }, onResponse) : httpRequest(target, { method, headers }, onResponse);
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
      req.once('error', (err: NodeJS.ErrnoException) => {
        const why = err.code === 'ECONNREFUSED' ? 'nothing listens there' : err.message;
        reject(new CliError(`node-mgr at ${url} (from ${this.endpoint.source}) is not answering: ${why}. Is it running (\`systemctl status node-mgr\`)? Otherwise pass --config FILE or --url URL`));
      });
      req.end(payload);
    });
  }
}

export interface NodeSummary {
  id: string;
  kind: string;
  role: string;
  port: number;
  state: string;
  wanted: string;
  pid: number | null;
  since: string;
  restarts: number;
  paused?: boolean;
  cluster?: string;
  shard?: string;
  lastError: string | null;
  usage?: { cpuPct: number | null; memRss: number | null; diskUsed: number | null };
}

export interface JobSummary {
  id: string;
  type: string;
  nodeId: string | null;
  status: string;
  phase: string | null;
  progress: { phase: string; bytes_done?: number; bytes_total?: number; pct?: number; eta_s?: number; rate_bps?: number; files_done?: number; files_total?: number; events?: number } | null;
  result: unknown;
  info: string | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

/** NODE on the command line: a port (6004) or a node id (mysql-6004). */
export async function portOf(client: NodeMgrClient, node: string): Promise<number> {
  if (/^\d+$/.test(node)) return Number(node);
  const nodes = await client.get<NodeSummary[]>('/v1/nodes');
  const hit = nodes.find((n) => n.id === node);
  if (!hit) throw new CliError(`no node ${node}; the nodes are: ${nodes.map((n) => `${n.id} (${n.port})`).join(', ') || 'none'}`);
  return hit.port;
}

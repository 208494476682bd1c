// cluster_mgr's `get_node`, as the original node_mgr asked it (PROTOCOL §11, orig E1): one POST per
// node type carrying every local address, answered with an object keyed `<type>0`, `<type>1`, …
import { z } from 'zod';
import type { DiscoveredNode, DiscoveredRole } from './discovery.ts';

/** The wire name of each role in `node_type` and in the reply's keys. */
export const NODE_TYPE_OF_ROLE = {
  meta: 'meta_node',
  storage: 'storage_node',
  computer: 'computer_node',
} as const satisfies Record<DiscoveredRole, string>;

export type NodeType = (typeof NODE_TYPE_OF_ROLE)[DiscoveredRole];

/** cluster_mgr could not be asked, or answered something node-mgr cannot use. */
export class ClusterMgrError extends Error {
  constructor(
    message: string,
    readonly url: string,
  ) {
    super(message);
    this.name = 'ClusterMgrError';
  }
}

export interface ClusterMgrRequestOptions {
  /** Whole request, reply body included; default 5 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** The request body, byte for byte the seed's: `{"ver":"0.1","job_type":"get_node","node_type":…,"node_ip0":…}`. */
export function getNodeRequestBody(role: DiscoveredRole, addresses: readonly string[]): string {
  const body: Record<string, string> = { ver: '0.1', job_type: 'get_node', node_type: NODE_TYPE_OF_ROLE[role] };
  addresses.forEach((ip, i) => {
    body[`node_ip${i}`] = ip;
  });
  return JSON.stringify(body);
}

const memberSchema = z.object({
  ip: z.string().min(1),
  // The original sends a JSON number; a numeric string is accepted as well.
  port: z.union([z.number(), z.string().regex(/^\d+$/).transform(Number)]).pipe(z.number().int().min(1).max(65535)),
  user: z.string(),
  pwd: z.string(),
  cluster: z.string().optional(),
  shard: z.string().optional(),
});

/**
 * Reads the members `<type>0`, `<type>1`, … of a get_node reply, in index order. Members on
 * addresses that are not local are dropped: cluster_mgr should not send them, and node-mgr must
 * never supervise another host's node.
 */
export function parseGetNodeReply(reply: unknown, role: DiscoveredRole, addresses: readonly string[], url = 'cluster_mgr'): DiscoveredNode[] {
  if (typeof reply !== 'object' || reply === null || Array.isArray(reply)) {
    throw new ClusterMgrError(`cluster_mgr at ${url} answered get_node with JSON that is not an object`, url);
  }
  const record = reply as Record<string, unknown>;
  if (record.result === 'error') {
    const info = typeof record.info === 'string' ? record.info : JSON.stringify(record.info ?? null);
    throw new ClusterMgrError(`cluster_mgr at ${url} refused get_node for ${NODE_TYPE_OF_ROLE[role]}: ${info}`, url);
  }
  const type = NODE_TYPE_OF_ROLE[role];
  const keyPattern = new RegExp(`^${type}(\\d+)$`);
  const members = Object.keys(record)
    .map((key) => ({ key, index: keyPattern.exec(key)?.[1] }))
    .filter((m): m is { key: string; index: string } => m.index !== undefined)
    .sort((a, b) => Number(a.index) - Number(b.index));

  const local = new Set(addresses);
  const nodes: DiscoveredNode[] = [];
  for (const { key } of members) {
    const parsed = memberSchema.safeParse(record[key]);
    if (!parsed.success) {
      const why = parsed.error.issues.map((i) => `${i.path.join('.') || '(member)'}: ${i.message}`).join('; ');
      throw new ClusterMgrError(`cluster_mgr at ${url} answered get_node with an unusable ${key}: ${why}`, url);
    }
    const m = parsed.data;
    if (role === 'storage' && (m.cluster === undefined || m.shard === undefined)) {
      throw new ClusterMgrError(`cluster_mgr at ${url} answered get_node with ${key} lacking its cluster or shard`, url);
    }
    if (role === 'computer' && m.cluster === undefined) {
      throw new ClusterMgrError(`cluster_mgr at ${url} answered get_node with ${key} lacking its cluster`, url);
    }
    if (!local.has(m.ip)) continue;
    const node: DiscoveredNode = { role, ip: m.ip, port: m.port, user: m.user, password: m.pwd };
    if (role !== 'meta') node.cluster = m.cluster;
    if (role === 'storage') node.shard = m.shard;
    nodes.push(node);
  }
  return nodes;
}

/** Asks cluster_mgr for the local nodes of one role. */
export async function fetchNodesFromClusterMgr(
  baseUrl: string,
  role: DiscoveredRole,
  addresses: readonly string[],
  opts: ClusterMgrRequestOptions = {},
): Promise<DiscoveredNode[]> {
  const url = endpointOf(baseUrl);
  const timeoutMs = opts.timeoutMs ?? 5000;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;

  let status: number;
  let text: string;
  try {
    const res = await fetch(url, {
      method: 'POST',
      // What the original http_post_para sends: cluster_mgr reads the body as JSON whatever it says.
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: getNodeRequestBody(role, addresses),
      signal,
    });
    status = res.status;
    text = await res.text();
  } catch (err) {
    if (timeout.aborted) {
      throw new ClusterMgrError(`cluster_mgr at ${url} did not answer get_node within ${timeoutMs} ms`, url);
    }
    if (opts.signal?.aborted) {
      throw new ClusterMgrError(`get_node to cluster_mgr at ${url} was cancelled`, url);
    }
    throw new ClusterMgrError(`cluster_mgr at ${url} is unreachable: ${networkCause(err)}`, url);
  }

  if (status < 200 || status > 299) {
    throw new ClusterMgrError(`cluster_mgr at ${url} answered HTTP ${status} to get_node: ${excerpt(infoOf(text))}`, url);
  }
  let reply: unknown;
  try {
    reply = JSON.parse(text);
  } catch {
    throw new ClusterMgrError(`cluster_mgr at ${url} answered get_node with something that is not JSON: ${excerpt(text)}`, url);
  }
  return parseGetNodeReply(reply, role, addresses, url);
}

/** `host:port`, `http://host:port` or `http://host:port/path` → the URL that is POSTed to. */
function endpointOf(baseUrl: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(baseUrl) ? baseUrl : `http://${baseUrl}`;
  let parsed: URL;
  try {
    parsed = new URL(withScheme);
  } catch {
    throw new ClusterMgrError(`cluster_mgr address ${JSON.stringify(baseUrl)} is not a valid URL`, baseUrl);
  }
  if (!parsed.pathname.endsWith('/')) parsed.pathname += '/';
  return parsed.toString();
}

/** fetch() hides the socket error in `cause` (an AggregateError when several addresses were tried). */
function networkCause(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  const first = (cause as { errors?: unknown[] } | undefined)?.errors?.[0] ?? cause;
  const code = (first as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') return code;
  if (first instanceof Error) return first.message;
  return err instanceof Error ? err.message : String(err);
}

/** The `info` of a `{"result":"error","info":…}` body, else the body itself. */
function infoOf(text: string): string {
  try {
    const body = JSON.parse(text) as { info?: unknown };
    if (typeof body.info === 'string') return body.info;
  } catch {
    // not JSON: the raw text is the evidence
  }
  return text;
}

function excerpt(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (!flat) return '(empty body)';
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

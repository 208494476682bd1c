// The seed face's get_node members and get_info figures (PROTOCOL §2), built from the supervisor's
// views. seed-replies.ts keeps them prepared; legacy.ts falls back to them.
import type { NodeView } from '../supervisor/supervisor.ts';
import { humanSize } from '../host/format.ts';
import { NODE_TYPES } from './legacy-requests.ts';
import { binlogArchiveOf, type HttpDeps } from './deps.ts';
import { SEED_BODY_MAX } from './seed-read.ts';

const ROLE_TO_TYPE: Record<string, (typeof NODE_TYPES)[number] | undefined> = {
  meta: 'meta_node',
  storage: 'storage_node',
  computer: 'computer_node',
};

/** PROTOCOL §2: members keyed `<type>N`, original fields first; `uptime_s` as of `now`. */
export function getNodeReply(deps: HttpDeps, nodeType?: (typeof NODE_TYPES)[number], nodes = deps.supervisor.list(), now = Date.now()): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
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

/** The fields of a get_node member the original node_mgr sent (PROTOCOL §2); the rest are node-mgr's. */
export const ORIGINAL_MEMBER_FIELDS: readonly string[] = ['ip', 'port', 'user', 'pwd', 'path', 'disk_used', 'disk_free', 'cluster', 'shard'];

/**
 * The get_node text to send, fitted to the original clients' single read (PROTOCOL §1): whole when
 * it fits, else every member with its original fields only (about 10 nodes then fit; GET /v1/nodes
 * has the rest). Longer even so, it is sent as it is, as the original server sent it: every key
 * of the reply is a member, so there is no room for a note.
 */
export function getNodeText(reply: Record<string, Record<string, unknown>>): { text: string; trimmed: boolean } {
  const whole = JSON.stringify(reply);
  if (Buffer.byteLength(whole) <= SEED_BODY_MAX) return { text: whole, trimmed: false };
  return { text: JSON.stringify(originalFieldsOnly(reply)), trimmed: true };
}

/** Every member of a get_node reply with only the fields the original node_mgr sent, in their order. */
export function originalFieldsOnly(reply: Record<string, Record<string, unknown>>): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [key, member] of Object.entries(reply)) {
    const kept: Record<string, unknown> = {};
    for (const field of ORIGINAL_MEMBER_FIELDS) if (field in member) kept[field] = member[field];
    out[key] = kept;
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
  // Only where archiving is on, and only its headline: the original clients read one reply of at
  // most 2,047 bytes (PROTOCOL §1), and GET /v1/nodes/:port has the whole view.
  const archive = binlogArchiveOf(deps, n);
  if (archive?.enabled) {
    member.binlog_archive = { state: archive.state, last_archived: archive.last_archived?.file ?? null, lag_seconds: archive.lag_seconds, lag_bytes: archive.lag_bytes };
  }
  return member;
}

// PROTOCOL §8: mutating requests need the bearer token or an allow-listed source address.
import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.ts';
import { HttpError } from './errors.ts';

export function authConfigured(config: Config): boolean {
  return Boolean(config.security.token) || config.security.allowFrom.length > 0;
}

/** What the check reads of a request: fastify's, or Node's own (the seed fast path). */
export interface CallerOf {
  headers: FastifyRequest['headers'];
  method?: string;
  socket: { remoteAddress?: string };
}

/** Throws 401/403 unless the request may change things. With no credential configured, all may. */
export function requireMutationAllowed(req: CallerOf, config: Config): void {
  requireCredential(req, config, false);
}

/**
 * Throws 401/403 unless the request may do what a peer node-mgr does (read /v1 and receive a
 * table): the full credential, or security.peerToken, which opens nothing else.
 */
export function requirePeerAllowed(req: CallerOf, config: Config): void {
  requireCredential(req, config, true);
}

function requireCredential(req: CallerOf, config: Config, peerWork: boolean): void {
  if (!authConfigured(config)) return;
  const source = normaliseAddress(req.socket.remoteAddress ?? '');
  if (config.security.allowFrom.some((a) => normaliseAddress(a) === source)) return;
  const { token, peerToken } = config.security;
  const header = req.headers.authorization;
  if ((token || peerToken) && header) {
    const m = /^Bearer\s+(.+)$/i.exec(header);
    const given = m?.[1]!.trim();
    if (given !== undefined && token && safeEqual(given, token)) return;
    if (given !== undefined && peerToken && safeEqual(given, peerToken)) {
      if (peerWork) return;
      throw new HttpError(403, "the peer token (security.peerToken) opens only a peer's reads and table sends, not this request");
    }
    throw new HttpError(403, 'the bearer token is not valid');
  }
  const what = req.method === 'GET' || req.method === 'HEAD' ? 'reads are closed (security.openReads is false): this request' : 'this request changes state and';
  throw new HttpError(401, `${what} needs "Authorization: Bearer <token>" or an allow-listed source address`);
}

/** An IPv4 peer on a dual-stack socket shows as `::ffff:a.b.c.d`: compared as `a.b.c.d`. */
export function normaliseAddress(a: string): string {
  return a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const LOOPBACK = /^(127\.|::1$|localhost$)/;

/** Refuses to listen beyond loopback with neither a token nor an allow-list (PROTOCOL §1, §8). */
export function checkBindAllowed(config: Config): void {
  if (!LOOPBACK.test(config.listen.host) && !authConfigured(config)) {
    throw new Error(
      `refusing to listen on ${config.listen.host}: a non-loopback address needs security.token or security.allowFrom in the config`,
    );
  }
}

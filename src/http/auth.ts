// Who may call each route, decided in one place (PROTOCOL §8). Every route declares its access in
// its options, `config: { access: 'mutate' }`, and installAuth turns that declaration into the
// route's own hook once, when the route is added; a request pays only for the check it needs.
//   open    anyone: probes and the docs
//   read    anyone while security.openReads, else a credential; checked once the params are
//           validated (preHandler), so a malformed URL stays a 400
//   mutate  a credential, checked as soon as the request head is in (onRequest): a caller without
//           one gets 401/403 before its body is read, parsed or validated
//   peer    what a peer node-mgr calls to hand over a table: like mutate, and security.peerToken
//           also opens it (that token opens the /v1 reads too, and nothing else)
// A route whose access depends on what is asked (the seed face's POST /, by job_type) declares a
// function of the parsed request instead, checked where the reads are.
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify';
import type { Config } from '../config/schema.ts';
import { requireMutationAllowed, requirePeerAllowed } from './security.ts';

export type Access = 'open' | 'read' | 'peer' | 'mutate';
/** Decides one request's access once its body is parsed. */
export type AccessOf = (req: FastifyRequest) => Access;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route (auth.ts); every route declares it. */
    access?: Access | AccessOf;
  }
}

type Hook = (req: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void;

/** Methods that change nothing: on a URL no route has (a 404), any other method counts as a mutation. */
const SAFE_METHODS = new Set(['GET', 'HEAD']);

/**
 * Call on the root app before any route is added. A route that declares no access fails the
 * start-up (onReady), never served with a guess; a plugin whose routes cannot declare it (the
 * docs UI) sets `access: 'open'` on them from an onRoute hook of its own scope.
 */
export function installAuth(app: FastifyInstance, config: Config): void {
  const mutation: Hook = (req, _reply, done) => {
    requireMutationAllowed(req, config);
    done();
  };
  const peer: Hook = (req, _reply, done) => {
    requirePeerAllowed(req, config);
    done();
  };
  // config.security is read at each request: a reload replaces it in the shared config object.
  const read: Hook = (req, _reply, done) => {
    if (!config.security.openReads) requirePeerAllowed(req, config);
    done();
  };
  const decided = (accessOf: AccessOf): Hook => (req, _reply, done) => {
    const access = accessOf(req);
    if (access === 'mutate' || (access === 'read' && !config.security.openReads)) requireMutationAllowed(req, config);
    done();
  };

  const undeclared: RouteOptions[] = [];
  app.addHook('onRoute', (route: RouteOptions) => {
    const access = route.config?.access;
    if (access === 'mutate') route.onRequest = [mutation, ...hooks(route.onRequest)];
    else if (access === 'peer') route.onRequest = [peer, ...hooks(route.onRequest)];
    else if (access === 'read') route.preHandler = [read, ...hooks(route.preHandler)];
    else if (typeof access === 'function') route.preHandler = [decided(access), ...hooks(route.preHandler)];
    else if (access === undefined) undeclared.push(route);
  });
  // Checked once every onRoute hook has run: only 'open' needs no hook, so only 'open' may come late.
  app.addHook('onReady', (done) => {
    const route = undeclared.find((r) => r.config?.access !== 'open');
    if (!route) return done();
    done(new Error(`route ${String(route.method)} ${route.url} declares no access: give it config: { access: 'open' | 'read' | 'peer' | 'mutate' } (src/http/auth.ts)`));
  });
  app.addHook('onRequest', (req, _reply, done) => {
    if (req.is404 && !SAFE_METHODS.has(req.method)) requireMutationAllowed(req, config);
    done();
  });
}

function hooks<T>(given: T | T[] | undefined): T[] {
  return given === undefined ? [] : Array.isArray(given) ? given : [given];
}

// Who may read what could be secret in a reply: node passwords and the servers' log tails (a log
// can quote a statement, a path, a credential; before node-mgr stopped following links it could
// even be a root file).
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config/schema.ts';
import { authConfigured, requireMutationAllowed } from './security.ts';

/**
 * True when `security.exposeSecrets` is set, or when a credential is configured and the request
 * carries it (the token, or an allow-listed source). Without any credential configured, every
 * local process can call node-mgr, so nobody is told more than the cause of an exit.
 */
export function maySeeSecrets(req: FastifyRequest, config: Config): boolean {
  if (config.security.exposeSecrets) return true;
  if (!authConfigured(config)) return false;
  try {
    requireMutationAllowed(req, config);
    return true;
  } catch {
    return false;
  }
}

/** The node view with its last exit's log tail emptied unless `allowed`. */
export function withLogTailFor<T extends { lastExit?: { logTail?: string[] } | null }>(view: T, allowed: boolean): T {
  if (allowed || !view.lastExit?.logTail?.length) return view;
  return { ...view, lastExit: { ...view.lastExit, logTail: [] } };
}

// The periodic health probe of a serving node. Engines with a session protocol are probed on one
// long-lived monitoring session (no login per probe); the session's loss is reported at once, as
// the earliest sign that the server may have died.
import type { Engine, MonitorSession } from '../engines/engine.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { onProbeTick } from './probe-clock.ts';

export interface HealthReports {
  ok(): void;
  failed(error: string): void;
  /** The server closed the monitoring session between probes. */
  sessionLost(): void;
  /** Why an opening attempt outside the probe schedule failed (not a probe failure). */
  debug(message: string): void;
}

/**
 * A session older than this is replaced by a fresh login at the next probe: the login path is
 * proved too (a PostgreSQL postmaster that accepts no connection while its backends still
 * answer), at one login a minute instead of one per probe.
 */
export const SESSION_RENEW_MS = 60_000;

/**
 * Probes every spec.policy.probe.intervalMs (on the clock shared by the nodes of that interval,
 * ./probe-clock.ts), one result per interval exactly as before: a probe
 * without an open session logs in again, and that login is part of the probe. The session is
 * opened at once too, so that its loss can signal an exit before the first probe. Returns the
 * stop function, which says goodbye to the server.
 */
export function monitorHealth(spec: NodeSpec, engine: Engine, reports: HealthReports, renewAfterMs = SESSION_RENEW_MS): () => void {
  const { intervalMs, timeoutMs } = spec.policy.probe;
  const open = engine.openMonitor?.bind(engine);
  let stopped = false;
  let session: MonitorSession | null = null;
  let openedAt = 0;
  let opening: Promise<MonitorSession> | null = null;

  const ensureSession = (): Promise<MonitorSession> => {
    if (session) return Promise.resolve(session);
    opening ??= open!(spec, timeoutMs).then(
      (s) => {
        opening = null;
        if (stopped) {
          void s.close();
          throw new Error(`${spec.id}: health monitoring stopped`);
        }
        session = s;
        openedAt = Date.now();
        s.onLost(() => {
          if (session !== s) return;
          session = null;
          if (!stopped) reports.sessionLost();
        });
        return s;
      },
      (err: unknown) => {
        opening = null;
        throw err;
      },
    );
    return opening;
  };

  const probeOnce = async (): Promise<void> => {
    if (!open) {
      // Not AbortSignal.timeout: its timer cannot be cleared, and firing after every probe it
      // made an abort event and a DOMException each time.
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      try {
        return await engine.probe(spec, timeout.signal);
      } finally {
        clearTimeout(timer);
      }
    }
    if (session && session.renewable !== false && Date.now() - openedAt >= renewAfterMs) {
      // The new session first, then the goodbye on the old one: never a moment without a session.
      const old = session;
      session = null;
      try {
        await ensureSession();
      } finally {
        void old.close();
      }
    }
    const s = await ensureSession();
    try {
      await s.check(timeoutMs);
    } catch (err) {
      // Still current: its loss was not reported yet (a server killed while a probe was on the
      // wire fails that probe instead of closing an idle session), and it is the same hint.
      const unreported = session === s;
      if (unreported) session = null;
      s.destroy();
      if (unreported && !stopped) reports.sessionLost();
      throw err;
    }
  };

  if (open) ensureSession().catch((err: unknown) => reports.debug(`monitoring session not opened yet: ${(err as Error).message}`));

  let inFlight = false;
  const stopTicks = onProbeTick(intervalMs, async () => {
    if (inFlight) return;
    inFlight = true;
    try {
      await probeOnce();
      if (!stopped) reports.ok();
    } catch (err) {
      if (!stopped) reports.failed((err as Error).message);
    } finally {
      inFlight = false;
    }
  });

  return () => {
    stopped = true;
    stopTicks();
    const s = session;
    session = null;
    if (s) void s.close();
  };
}

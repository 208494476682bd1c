// The long-lived monitoring session shared by the SQL engines: one login, then a cheap query per
// probe. The engine supplies the client library's few verbs; the timing and the loss rules live here.
import type { MonitorSession } from './engine.ts';

export interface SessionVerbs {
  /** Names the probe in error sentences, e.g. `mysql-6001: SELECT 1 on 127.0.0.1:6001`. */
  label: string;
  selectOne(): Promise<void>;
  /** Registers a listener for the server side closing the session (end of stream or socket error). */
  whenClosed(listener: () => void): void;
  /** The protocol's goodbye (COM_QUIT, Terminate) and the end of the stream. */
  quit(): Promise<void>;
  /** Destroys the socket without a goodbye. */
  drop(): void;
}

/** A goodbye to a server that does not read it any more must not hold up a stop. */
const QUIT_WAIT_MS = 1000;

export function sqlMonitorSession(verbs: SessionVerbs): MonitorSession {
  let endedByUs = false;
  let lost = false;
  let onLost: (() => void) | null = null;
  const markLost = () => {
    if (endedByUs || lost) return;
    lost = true;
    onLost?.();
  };
  verbs.whenClosed(markLost);

  const session: MonitorSession = {
    check(timeoutMs) {
      if (lost || endedByUs) return Promise.reject(new Error(`${verbs.label} failed: the monitoring session is closed`));
      return new Promise<void>((resolve, reject) => {
        // Our own timer rather than the driver's: a query that timed out leaves the session
        // out of step with the server, so it is dropped and the next probe logs in again.
        const timer = setTimeout(() => {
          session.destroy();
          reject(new Error(`${verbs.label} failed: no answer within ${timeoutMs} ms`));
        }, timeoutMs);
        verbs.selectOne().then(
          () => {
            clearTimeout(timer);
            resolve();
          },
          (err: unknown) => {
            clearTimeout(timer);
            reject(new Error(`${verbs.label} failed: ${(err as Error).message}`));
          },
        );
      });
    },
    onLost(listener) {
      onLost = listener;
      if (lost) queueMicrotask(listener);
    },
    async close() {
      if (endedByUs) return;
      const wasLost = lost;
      endedByUs = true;
      if (!wasLost) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          verbs.quit().catch(() => undefined),
          new Promise((r) => {
            timer = setTimeout(r, QUIT_WAIT_MS);
            timer.unref();
          }),
        ]);
        clearTimeout(timer);
      }
      verbs.drop();
    },
    destroy() {
      endedByUs = true;
      verbs.drop();
    },
  };
  return session;
}

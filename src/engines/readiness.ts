// Waiting for a freshly spawned SQL server to answer: shared by the MySQL and PostgreSQL engines.
import { setTimeout as sleep } from 'node:timers/promises';
import { endedOrEndingNow } from '../host/process-info.ts';
import { StartFailed } from './exit-diagnosis.ts';
import type { NodeSpec } from './node-spec.ts';

export interface SqlReadiness {
  /** One `SELECT 1` with the admin credentials, bounded by timeoutMs. */
  selectOne(timeoutMs: number): Promise<void>;
  /** True when the error means the server refused our credentials: waiting will not help. */
  isAuthFailure(err: unknown): boolean;
  /**
   * A sign the server gives locally, cheap to read, that it accepts connections now (postgres'
   * postmaster.pid status line). When given, SELECT 1 waits for it: a postmaster forks a backend
   * for each connection it turns away while starting, a cost the starting server pays.
   */
  accepting?(): boolean;
}

const FAST_POLL_FOR_MS = 2000;
/** How often the engine's sign is read while the server starts: a read costs microseconds. */
const SIGN_POLL_MS = 5;
/** Without the sign, SELECT 1 is tried anyway this often: a sign that never comes costs a delay, never a failed start. */
const SELECT_WITHOUT_SIGN_MS = 500;

/**
 * Polls until the server answers SQL. Fails fast when the pid dies (zombies count as dead), when
 * the credentials are refused, or when spec.policy.probe.startTimeoutMs has passed.
 */
export async function waitForSql(spec: NodeSpec, pid: number, signal: AbortSignal, sql: SqlReadiness): Promise<void> {
  const started = Date.now();
  const deadline = started + spec.policy.probe.startTimeoutMs;
  let lastError = 'no answer yet';
  let triedAt: number | null = null;
  for (;;) {
    if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
    // One synchronous read of /proc per attempt: the async one is four thread-pool round trips,
    // every 10 ms, while the server being waited for needs the CPU.
    if (endedOrEndingNow(pid)) {
      throw new StartFailed(`${spec.id}: server pid ${pid} exited before accepting SQL`, 'exited');
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new StartFailed(`${spec.id}: server pid ${pid} did not accept SQL within ${spec.policy.probe.startTimeoutMs} ms (last: ${lastError})`, 'timeout');
    }
    const fast = Date.now() - started < FAST_POLL_FOR_MS;
    if (sql.accepting && !sql.accepting() && Date.now() - (triedAt ?? started) < SELECT_WITHOUT_SIGN_MS) {
      // A SELECT's own error, once there is one, says more than the missing sign.
      if (triedAt === null) lastError = 'the server does not say yet that it accepts connections';
      await sleep(fast ? SIGN_POLL_MS : 50);
      continue;
    }
    triedAt = Date.now();
    try {
      await sql.selectOne(Math.min(spec.policy.probe.timeoutMs, left));
      return;
    } catch (err) {
      if (sql.isAuthFailure(err)) {
        throw new StartFailed(`${spec.id}: the server refused the configured admin user ${spec.user}: ${(err as Error).message}`, 'rejected_credentials');
      }
      // Connection refused, "the database system is starting up" and the like mean: not yet.
      lastError = (err as Error).message;
    }
    // Most servers answer within a few hundred ms: poll closely then (a refused connect costs
    // microseconds), and every 50 ms once the server is taking its time (crash recovery).
    await sleep(fast ? 10 : 50);
  }
}

// The process signals of a running node-mgr: SIGTERM/SIGINT ask for the clean stop, SIGHUP for a
// config reload.
//
// The listeners are permanent (process.on, never once) and stay until the process exits. That is
// what keeps execa's `signal-exit` from killing node-mgr: while a program started with execa's
// `cleanup` runs (du, mariabackup, pg_basebackup…), signal-exit listens to these signals too and,
// when it finds itself the only listener, re-raises the signal after removing itself, which ends
// the process by the signal. A `once` listener is gone by the time signal-exit counts, so the
// first SIGTERM killed node-mgr half-way (issue 13 item 1).
//
// A stop signal after the first changes nothing: the clean stop goes on and the signal is reported
// to onRepeatedStop. SIGKILL is the way to end node-mgr at once.

export type StopSignal = 'SIGTERM' | 'SIGINT';

export interface ProcessSignals {
  /** Resolves with the first SIGTERM or SIGINT received since catchProcessSignals(). */
  readonly stopRequested: Promise<StopSignal>;
  /** Called for every stop signal after the first (default: a line on stderr). */
  onRepeatedStop(fn: (signal: StopSignal) => void): void;
  /** Called for every SIGHUP (default: nothing; the default action, ending the process, never happens). */
  onHangup(fn: () => void): void;
}

let installed: ProcessSignals | null = null;

/**
 * Installs the listeners (once per process; later calls return the same object). Call it as early
 * as possible: a signal arriving while node-mgr is still starting must stop it cleanly too.
 */
export function catchProcessSignals(): ProcessSignals {
  if (installed) return installed;
  let first: StopSignal | null = null;
  let resolveStop!: (signal: StopSignal) => void;
  const stopRequested = new Promise<StopSignal>((resolve) => (resolveStop = resolve));
  let repeated = (signal: StopSignal) => {
    process.stderr.write(`node-mgr: ${signal} received while already stopping (after ${first}); the clean stop goes on\n`);
  };
  let hangup = () => undefined as void;
  const onStop = (signal: StopSignal) => {
    if (first === null) {
      first = signal;
      resolveStop(signal);
    } else repeated(signal);
  };
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGHUP', () => hangup());
  installed = {
    stopRequested,
    onRepeatedStop(fn) {
      repeated = fn;
    },
    onHangup(fn) {
      hangup = fn;
    },
  };
  return installed;
}

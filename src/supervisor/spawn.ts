// Starting a server as node-mgr's direct child, watching servers adopted from a previous
// node-mgr, and keeping the captured output file from growing without bound.
import { spawn } from 'node:child_process';
import type { LaunchPlan } from '../engines/engine.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { endedOrEndingNow } from '../host/process-info.ts';
import { serverEnv } from '../engines/run-as-node.ts';
import { serverLogFile, spawnedPidFile } from '../engines/node-layout.ts';
import { copyTruncateNodeLog, openDirBeneath, openNodeLogForAppend, rootOf, writeNodeFile } from '../engines/node-files.ts';
import { onProbeTick } from './probe-clock.ts';

export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnedServer {
  pid: number;
  /** Resolves when the process exits (never rejects). */
  exit: Promise<ServerExit>;
}

/**
 * Spawns the server in its own process group (so it outlives node-mgr) as spec.runAs, with stdout
 * and stderr going straight to an O_APPEND fd on `<logDir>/server.log`: through a pipe the
 * server would get SIGPIPE once node-mgr died. A marker line before the launch lets exit
 * diagnosis tell this run's lines from older ones. Node reaps the child, so a stopped server
 * never lingers as a zombie.
 */
export async function spawnServer(spec: NodeSpec, plan: LaunchPlan): Promise<SpawnedServer> {
  // Opened without following links: the server's account owns the log dir and could have put a
  // link to a root file where the log goes (node-files.ts).
  const log = await openNodeLogForAppend(spec, serverLogFile(spec), spec.runAs);
  try {
    await log.write(`--- node-mgr ${new Date().toISOString()}: launching ${spec.id} (${plan.file}) ---\n`);
    const child = spawn(plan.file, plan.args, {
      cwd: plan.cwd,
      env: serverEnv(spec, plan.env),
      uid: spec.runAs.uid,
      gid: spec.runAs.gid,
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
    });
    const exit = new Promise<ServerExit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    // Either 'spawn' (the program runs) or 'error' (ENOENT, EACCES…) comes first.
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new Error(`${spec.id}: cannot start ${plan.file}: ${err.message}`)));
    });
    const pid = child.pid!;
    await writeNodeFile(spec, spawnedPidFile(spec), `${pid}\n`, { mode: 0o644, owner: spec.runAs });
    return { pid, exit };
  } finally {
    // The child holds its own copy of the fd.
    await log.close();
  }
}

export interface AdoptedWatch {
  /** Resolves when the process is gone, a zombie or exiting; exit code and signal are unknowable for a non-child. */
  exit: Promise<{ code: null; signal: null }>;
  /** Stops polling; `exit` then never resolves. */
  cancel(): void;
  /**
   * A hint that the process may be exiting (its monitoring session closed, a stop finished):
   * looks at once, then closely for a moment, since the socket closes before the process is reaped.
   */
  checkNow(): void;
}

/** After a hint, /proc is read again after these many ms before going back to the slow poll. */
const FOLLOW_UP_MS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/**
 * Watches a server that is not our child (adopted after a node-mgr restart) by polling /proc. The
 * slow poll runs on the clock shared by every adopted server (./probe-clock.ts): after a node-mgr
 * restart every server is adopted, and 200 of them on timers of their own woke the process 100
 * times a second.
 */
export function watchAdopted(pid: number, intervalMs = 500): AdoptedWatch {
  let followUpTimer: NodeJS.Timeout | undefined;
  let stopTicks = (): void => {};
  let cancelled = false;
  let followUp = FOLLOW_UP_MS.length;
  let resolveExit!: (v: { code: null; signal: null }) => void;
  const exit = new Promise<{ code: null; signal: null }>((resolve) => (resolveExit = resolve));
  const cancel = (): void => {
    cancelled = true;
    stopTicks();
    clearTimeout(followUpTimer);
  };
  // One synchronous read: a hint (the monitoring session closed) is acted on in the same tick.
  const look = (): void => {
    if (cancelled) return;
    if (endedOrEndingNow(pid)) {
      cancel();
      resolveExit({ code: null, signal: null });
    }
  };
  const lookAgainSoon = (): void => {
    look();
    if (!cancelled && followUp < FOLLOW_UP_MS.length) followUpTimer = setTimeout(lookAgainSoon, FOLLOW_UP_MS[followUp++]);
  };
  look();
  if (!cancelled) stopTicks = onProbeTick(intervalMs, look);
  return {
    exit,
    cancel,
    checkNow() {
      if (cancelled) return;
      followUp = 0;
      clearTimeout(followUpTimer);
      lookAgainSoon();
    },
  };
}

/**
 * Makes what a spawn writes into when it is missing (log/ and run/, owned by runAs; a cluster_mgr
 * install dir may lack them) and opens the captured-output log once, so that a problem there
 * (a link the account planted in place of log/) fails the start with its own sentence rather
 * than as a crash whose log names no cause.
 */
export async function prepareSpawn(spec: NodeSpec): Promise<void> {
  const ensureDir = async (dir: string) => {
    const opened = await openDirBeneath(rootOf(spec, dir), dir, spec.runAs, { mode: 0o750, owner: spec.runAs });
    await opened.handle.close();
  };
  // Both at once (a restart waits for this); a failure in log/ is reported before one in run/.
  const [log, run] = await Promise.allSettled([ensureDir(spec.logDir).then(async () => (await openNodeLogForAppend(spec, serverLogFile(spec), spec.runAs)).close()), ensureDir(spec.runDir)]);
  for (const r of [log, run]) if (r.status === 'rejected') throw r.reason;
}

/** Copy-truncate rotation of the server's captured output (see copyTruncateNodeLog); true when it rotated. */
export async function rotateServerLog(spec: NodeSpec, maxBytes: number, keep: number): Promise<boolean> {
  return copyTruncateNodeLog(spec, serverLogFile(spec), maxBytes, keep);
}

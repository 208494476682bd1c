// Starting a server as node-mgr's direct child, watching servers adopted from a previous
// node-mgr, and keeping the captured output file from growing without bound.
import { spawn } from 'node:child_process';
import { chown, copyFile, open, rename, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import type { LaunchPlan, NodeSpec } from '../engines/engine.ts';
import { processState } from '../engines/process-info.ts';
import { serverEnv, serverLogFile, spawnedPidFile } from '../engines/spec.ts';

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
  const logFile = serverLogFile(spec);
  const log = await open(logFile, 'a', 0o640);
  try {
    await log.chown(spec.runAs.uid, spec.runAs.gid);
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
    await writeFile(spawnedPidFile(spec), `${pid}\n`);
    await chown(spawnedPidFile(spec), spec.runAs.uid, spec.runAs.gid);
    return { pid, exit };
  } finally {
    // The child holds its own copy of the fd.
    await log.close();
  }
}

export interface AdoptedWatch {
  /** Resolves when the process is gone or a zombie; exit code and signal are unknowable for a non-child. */
  exit: Promise<{ code: null; signal: null }>;
  /** Stops polling; `exit` then never resolves. */
  cancel(): void;
}

/** Watches a server that is not our child (adopted after a node-mgr restart) by polling /proc. */
export function watchAdopted(pid: number, intervalMs = 500): AdoptedWatch {
  let timer: NodeJS.Timeout | undefined;
  let cancelled = false;
  const exit = new Promise<{ code: null; signal: null }>((resolve) => {
    const check = async () => {
      if (cancelled) return;
      if ((await processState(pid)) !== 'running') {
        resolve({ code: null, signal: null });
        return;
      }
      if (!cancelled) timer = setTimeout(check, intervalMs);
    };
    void check();
  });
  return {
    exit,
    cancel() {
      cancelled = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/**
 * Copy-truncate rotation: the server keeps writing through its O_APPEND fd, which lands at the
 * start of the truncated file. file.1 is the newest old copy, file.<keep> the oldest. Lines
 * written between the copy and the truncate are lost; that is the price of not reopening.
 * Returns true when it rotated.
 */
export async function rotateIfLarge(file: string, maxBytes: number, keep: number): Promise<boolean> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    return false;
  }
  if (size <= maxBytes) return false;
  if (keep > 0) {
    await unlink(`${file}.${keep}`).catch(() => undefined);
    for (let i = keep - 1; i >= 1; i--) {
      await rename(`${file}.${i}`, `${file}.${i + 1}`).catch(() => undefined);
    }
    await copyFile(file, `${file}.1`);
  }
  await truncate(file, 0);
  return true;
}

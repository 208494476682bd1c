// Wires the pure node statechart to an engine: every effect the chart names is implemented here.
import { mkdir, readdir, rename } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fromCallback, fromPromise, type AnyEventObject } from 'xstate';
import type { Logger } from 'pino';
import { nodeMachine, type AdoptResult, type Diagnosis, type ProcessCommand, type ProcessHandleInput, type NodeEvent } from '../../machines/node.machine.ts';
import type { Engine } from '../engines/engine.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { portHolder, sendSignal, startedAtMs } from '../host/process-info.ts';
import { foreignNodeDirEntries, isNodeDirEntry, isOwnNodeDir } from '../engines/node-layout.ts';
import { assertAncestorsSafe } from '../engines/node-files.ts';
import { prepareSpawn, spawnServer, watchAdopted, rotateServerLog, type AdoptedWatch } from './spawn.ts';
import { monitorHealth } from './health-monitor.ts';
import { checkDiskSpace } from './disk.ts';
import { reapLeftovers } from './leftovers.ts';

export interface NodeRuntime {
  spec: NodeSpec;
  engine: Engine;
  trashDir: string;
  log: Logger;
  serverLog: { maxBytes: number; keep: number };
  /**
   * How often an adopted (non-child) process is polled for its exit. The fallback only where the
   * engine keeps a monitoring session, whose loss triggers a check at once.
   */
  adoptPollMs?: number;
}

/** /proc poll of an adopted server when nothing else would tell of its exit (cluster_mgr). */
const ADOPTED_POLL_MS = 500;
/** The same where a monitoring session's loss says so first: the poll is only the fallback. */
const ADOPTED_POLL_WITH_SESSION_MS = 2000;

/** The node machine with its effects bound to one node's engine. */
export function nodeMachineFor(rt: NodeRuntime) {
  const { spec, engine, log } = rt;
  // The diagnosis of an exit no one asked for, begun when the exit is seen: its logs are read on
  // the thread pool while the leftover scan runs, rather than after it and the move to `crashed`
  // (a restart waits for the diagnosis). Set only by the process actor that saw the exit, taken
  // by the diagnose actor of the `crashed` state that follows it.
  let earlyDiagnosis: Promise<Diagnosis> | null = null;
  return nodeMachine.provide({
    actors: {
      adopt: fromPromise<AdoptResult, { nodeId: string }>(async () => {
        const pid = await engine.findRunning(spec);
        if (pid === null) return { pid };
        // A server that has been up for days is stable already: its first crash restarts at once.
        const since = await startedAtMs(pid);
        return { pid, upForMs: since === null ? null : Date.now() - since };
      }),

      initialize: fromPromise(async ({ signal }) => {
        await engine.initDataDir(spec, signal);
        await engine.writeServerConfig(spec);
      }),

      preflight: fromPromise(async () => {
        // The checks only read (/proc, stat, a bind), so they run together; a refusal names the
        // first failed check in this order, as when they ran one after the other.
        await settleInOrder([
          async () => {
            // A server of ours already on the data dir (started behind our back) must not get a twin.
            const running = await engine.findRunning(spec);
            if (running !== null) throw new Error(`node ${spec.id}: a server (pid ${running}) is already running on data dir ${spec.dataDir}`);
          },
          async () => {
            // A killed server's zombie may hold the port until it is reaped.
            await engine.awaitPreviousServer?.(spec);
            const holder = await portHolder(spec.port, spec.ip || '0.0.0.0');
            if (holder) throw new Error(`node ${spec.id}: port ${spec.port} is held by pid ${holder.pid} (${holder.program})`);
          },
          async () => {
            if (!(await engine.isInitialised(spec))) {
              throw new Error(`node ${spec.id}: data dir ${spec.dataDir} is not initialised (create the node first)`);
            }
          },
          () => checkDiskSpace(spec.dataDir),
        ]);
        // Writes only once every check passed (a node that was never created gets no log dir);
        // the server's config and its captured log are different files.
        await prepareSpawn(spec);
        await settleInOrder([() => engine.writeServerConfig(spec), () => rotateServerLog(spec, rt.serverLog.maxBytes, rt.serverLog.keep)]);
      }),

      process: fromCallback<ProcessCommand, ProcessHandleInput>(({ input, sendBack, receive }) => {
        const stopWatching = new AbortController();
        let pid: number | null = null;
        // A STOP or KILL that arrives while the spawn is still under way is applied once the pid is known.
        let pending: ProcessCommand | null = null;
        let adoptedWatch: AdoptedWatch | null = null;
        // A stop's exit goes to stopped (or restoring, dropping…), never to `crashed`.
        let stopAsked = false;
        earlyDiagnosis = null;
        const obey = (command: ProcessCommand, target: number) => {
          if (command.type === 'STOP') {
            engine.stop(spec, target).then(
              () => adoptedWatch?.checkNow(),
              (err) => log.error({ node: spec.id, err: String(err) }, 'stop ladder failed'),
            );
          } else if (command.type === 'KILL') {
            killGroup(target, 'SIGKILL');
            adoptedWatch?.checkNow();
          } else {
            // A child's exit is reported by the kernel anyway; only an adopted server needs looking at.
            adoptedWatch?.checkNow();
          }
        };
        const reportExit = (exit: Promise<{ code: number | null; signal: string | null }>) =>
          exit.then(async (status) => {
            if (stopWatching.signal.aborted) return;
            const at = Date.now();
            if (!stopAsked) {
              const diagnosis = engine.diagnoseExit(spec, status);
              // Its failure is the diagnose actor's to report, when it takes the promise.
              diagnosis.catch(() => undefined);
              earlyDiagnosis = diagnosis;
            }
            // The node is not down while anything of it still runs (a stray backend, a helper).
            try {
              const reaped = reapLeftovers(pid!, spec.dataDir, spec.runAs.uid);
              if (reaped.length) log.warn({ node: spec.id, leftovers: reaped }, 'killed processes left behind by the server');
            } catch (err) {
              log.error({ node: spec.id, err: String(err) }, 'could not look for processes left behind by the server');
            }
            if (stopWatching.signal.aborted) return;
            sendBack({ type: 'PROCESS_EXITED', code: status.code, signal: status.signal, at } satisfies NodeEvent);
          });
        if (input.adoptPid !== null) {
          pid = input.adoptPid;
          const pollMs = rt.adoptPollMs ?? (engine.openMonitor ? ADOPTED_POLL_WITH_SESSION_MS : ADOPTED_POLL_MS);
          const watch = watchAdopted(pid, pollMs);
          adoptedWatch = watch;
          stopWatching.signal.addEventListener('abort', () => watch.cancel());
          void reportExit(watch.exit);
        } else {
          spawnServer(spec, engine.launchPlan(spec)).then(
            (child) => {
              if (stopWatching.signal.aborted) return;
              pid = child.pid;
              sendBack({ type: 'PROCESS_STARTED', pid } satisfies NodeEvent);
              void reportExit(child.exit);
              if (pending) obey(pending, pid);
              engine.waitReady(spec, pid, stopWatching.signal).then(
                () => sendBack({ type: 'PROCESS_READY' } satisfies NodeEvent),
                // Not ready because it died: the exit reports it; because we stopped watching: nothing to say.
                (err) => log.debug({ node: spec.id, err: String(err) }, 'readiness wait ended'),
              );
            },
            (err) => {
              log.error({ node: spec.id, err: String(err) }, 'spawn failed');
              if (stopWatching.signal.aborted) return;
              sendBack({ type: 'PROCESS_EXITED', code: null, signal: null, at: Date.now() } satisfies NodeEvent);
            },
          );
        }
        receive((command) => {
          if (command.type === 'STOP') stopAsked = true;
          if (pid !== null) obey(command, pid);
          else if (command.type !== 'CHECK_EXIT') pending = command;
        });
        // Leaving the state (or node-mgr shutting down) stops the watching, never the database.
        return () => stopWatching.abort();
      }),

      probe: fromCallback<AnyEventObject, { nodeId: string }>(({ sendBack }) => {
        // The chart hears a passing probe only when it follows a failure (or is the first): a
        // PROBE_OK on a healthy node changes nothing, yet each one was a macrostep, a snapshot
        // and a change of every reply prepared from the node views, every interval on every node.
        let passing = false;
        return monitorHealth(spec, engine, {
          ok: () => {
            if (passing) return;
            passing = true;
            sendBack({ type: 'PROBE_OK' } satisfies NodeEvent);
          },
          failed: (error) => {
            passing = false;
            sendBack({ type: 'PROBE_FAILED', error } satisfies NodeEvent);
          },
          sessionLost: () => sendBack({ type: 'MONITOR_SESSION_LOST' } satisfies NodeEvent),
          debug: (message) => log.debug({ node: spec.id }, message),
        });
      }),

      diagnose: fromPromise<Diagnosis, { nodeId: string; code: number | null; signal: string | null; killReason: string | null }>(
        async ({ input }) => {
          const early = earlyDiagnosis;
          earlyDiagnosis = null;
          const d = await (early ?? engine.diagnoseExit(spec, { code: input.code, signal: input.signal }));
          if (input.killReason === 'health_probe_failed') {
            return { ...d, cause: 'health_probe_failed', detail: `killed by node-mgr after ${spec.policy.probe.failureThreshold} failed health probes` };
          }
          if (input.killReason === 'start_timeout') {
            return { ...d, cause: 'start_timeout', detail: `killed by node-mgr: not ready within ${spec.policy.probe.startTimeoutMs} ms` };
          }
          return d;
        },
      ),

      drop: fromPromise(async () => {
        const dest = path.join(rt.trashDir, `${spec.id}-${new Date().toISOString().replace(/[:.]/g, '')}`);
        await mkdir(dest, { recursive: true });
        // Renames as root in the node dir's parent: one the servers' account could change is refused.
        await assertAncestorsSafe(spec.dir, spec.runAs);
        for (const p of engine.ownedPaths(spec)) {
          if (!existsSync(p)) continue;
          const foreign = p === spec.dir && engine.laysOutNodeDir ? await foreignNodeDirEntries(spec) : [];
          // The node dir goes whole only when node-mgr made it (its marker names this node): a
          // dir that existed before (a system dir a CREATE was pointed at) stays where it is.
          const whole = p !== spec.dir || (!foreign.length && (await isOwnNodeDir(spec)));
          if (whole) {
            await rename(p, path.join(dest, path.basename(p)));
            continue;
          }
          // The operator's own files, and the dir itself, stay where they are; only what node-mgr put there goes.
          const into = path.join(dest, path.basename(p));
          await mkdir(into);
          const kept: string[] = [];
          for (const name of await readdir(p)) {
            if (isNodeDirEntry(spec, name)) await rename(path.join(p, name), path.join(into, name));
            else kept.push(name);
          }
          log.warn({ node: spec.id, dir: p, kept: kept.slice(0, 20) }, 'drop moved only what node-mgr made: the node dir existed before node-mgr created the node, or holds other files');
        }
      }),
    },
  });
}

/**
 * Runs the steps together and waits for all of them; throws the error of the first step, in the
 * given order, that failed. Unlike Promise.all, nothing is left running behind a failure, and
 * the error does not depend on which step happened to fail first.
 */
export async function settleInOrder(steps: Array<() => Promise<unknown>>): Promise<void> {
  const results = await Promise.allSettled(steps.map((step) => step()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Signals the server's process group (it was spawned detached), falling back to the pid alone. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    sendSignal(pid, signal);
  }
}

// The cluster_mgr process, and any other program given as an argv: no data dir to initialise,
// alive = the process runs and its health URL (or TCP port) answers.
import { stat } from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { clientHost } from '../host/address.ts';
import { isExpectedProcess, type StartRecord } from '../host/process-identity.ts';
import { climbStopLadder, isAlive, processGroup, sendSignal } from '../host/process-info.ts';
import type { Engine, ExitDiagnosis, LaunchPlan } from './engine.ts';
import { diagnoseFromLogs, StartFailed } from './exit-diagnosis.ts';
import { getStatusOnce, httpHealthSession } from './http-health-session.ts';
import { readNodeLogTail, readNodePidFile } from './node-files.ts';
import { prepareNodeDirs, serverLogFile, spawnedPidFile } from './node-layout.ts';
import type { NodeSpec } from './node-spec.ts';

function commandOf(spec: NodeSpec): string[] {
  if (!spec.command || spec.command.length === 0) {
    throw new Error(`${spec.id}: a cluster_mgr node needs "command" (the program and its arguments) in the config`);
  }
  return spec.command;
}

/** The program's own pidfile first, then the record spawnServer keeps. */
function pidFiles(spec: NodeSpec): string[] {
  return spec.pidFile ? [spec.pidFile, spawnedPidFile(spec)] : [spawnedPidFile(spec)];
}

/**
 * Any HTTP answer below 500 means the program is up (cluster_mgr answers 4xx to a bare GET). A
 * plain http:// URL gets one GET on a connection of its own (getStatusOnce in
 * ./http-health-session.ts, whose kept-alive session the periodic probes use): fetch cost node-mgr
 * about 1.4 ms of CPU per probe (a pool per origin whose keep-alive had lapsed by the next probe, a
 * Request, web streams, abort signals), which with 200 nodes probed every 5 s was most of
 * node-mgr's idle CPU; this costs about a third of it. https:// goes through node's https client,
 * the certificate checked as fetch did.
 */
function healthAnswers(spec: NodeSpec, url: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const target = new URL(url);
  return new Promise<void>((resolve, reject) => {
    let release = (): void => {};
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      release();
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => finish(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    const judge = (status: number) => finish(status >= 500 ? new Error(`${spec.id}: ${url} answered HTTP ${status}`) : undefined);
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    signal.addEventListener('abort', onAbort);
    if (signal.aborted) return onAbort();

    if (target.protocol === 'https:') {
      const req = https.get(target, { agent: false }, (res) => {
        res.resume();
        judge(res.statusCode ?? 0);
      });
      req.once('error', (err) => finish(err));
      release = () => req.destroy();
      return;
    }
    const get = getStatusOnce(target);
    release = get.release;
    get.status.then(judge, (err: Error) => finish(err));
  });
}

function tcpAnswers(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`no TCP answer on ${host}:${port} within ${timeoutMs} ms`));
    });
    socket.once('error', reject);
  });
}

async function checkHealth(spec: NodeSpec, timeoutMs: number, signal: AbortSignal): Promise<void> {
  if (spec.healthUrl) await healthAnswers(spec, spec.healthUrl, timeoutMs, signal);
  else await tcpAnswers(clientHost(spec), spec.port, timeoutMs);
}

const NEVER_ABORTED = new AbortController().signal;

/** A script started through its shebang shows up as [interpreter, script, ...args]: the args must match the end. */
function argvMatches(argv: string[], command: string[]): boolean {
  const args = command.slice(1);
  if (argv.length < command.length) return false;
  const tail = argv.slice(argv.length - args.length);
  if (!tail.every((a, i) => a === args[i])) return false;
  const program = argv.slice(0, argv.length - args.length);
  return program.some((a) => a === command[0] || path.basename(a) === path.basename(command[0]));
}

/** Signals the whole process group when the program leads one (spawnServer makes it so), else the pid. */
async function signalProgram(pid: number, sig: NodeJS.Signals): Promise<void> {
  sendSignal((await processGroup(pid)) === pid ? -pid : pid, sig);
}

export const clusterMgrEngine: Engine = {
  kind: 'cluster_mgr',

  async isInitialised(spec) {
    return stat(spec.runDir).then(
      () => true,
      () => false,
    );
  },

  async writeServerConfig() {
    // cluster_mgr reads its own config file, named in its command line.
  },

  async initDataDir(spec) {
    await prepareNodeDirs(spec, [spec.logDir, spec.runDir]);
  },

  launchPlan(spec): LaunchPlan {
    const [file, ...args] = commandOf(spec);
    return { file, args, cwd: spec.dir };
  },

  async waitReady(spec, pid, signal) {
    const deadline = Date.now() + spec.policy.probe.startTimeoutMs;
    let lastError = 'no answer yet';
    for (;;) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
      if (!(await isAlive(pid))) throw new StartFailed(`${spec.id}: pid ${pid} exited before its health check answered`, 'exited');
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new StartFailed(`${spec.id}: pid ${pid} did not answer its health check within ${spec.policy.probe.startTimeoutMs} ms (last: ${lastError})`, 'timeout');
      }
      try {
        await checkHealth(spec, Math.min(spec.policy.probe.timeoutMs, left), signal);
        return;
      } catch (err) {
        lastError = (err as Error).message;
      }
      await sleep(50);
    }
  },

  async probe(spec, signal) {
    try {
      await checkHealth(spec, spec.policy.probe.timeoutMs, signal);
    } catch (err) {
      throw new Error(`${spec.id}: health check ${spec.healthUrl ?? `tcp ${clientHost(spec)}:${spec.port}`} failed: ${(err as Error).message}`);
    }
  },

  // An http:// health URL is probed on a kept-alive connection; https:// and a bare TCP port are
  // probed afresh each time (a session that only wraps probe()).
  async openMonitor(spec) {
    const url = spec.healthUrl ? new URL(spec.healthUrl) : null;
    if (url?.protocol === 'http:') return httpHealthSession(url, `${spec.id}: health check ${spec.healthUrl}`);
    let ended = false;
    return {
      renewable: false,
      // probe() bounds itself by the policy's timeout, the one monitorHealth passes here.
      async check() {
        if (ended) throw new Error(`${spec.id}: the health session is closed`);
        await clusterMgrEngine.probe(spec, NEVER_ABORTED);
      },
      onLost() {},
      async close() {
        ended = true;
      },
      destroy() {
        ended = true;
      },
    };
  },

  async findRunning(spec) {
    for (const file of pidFiles(spec)) {
      const record = await readNodePidFile(spec, file);
      if (record && (await clusterMgrEngine.isOwnProcess(spec, record.pid))) return record.pid;
    }
    return null;
  },

  async isOwnProcess(spec, pid) {
    let record: StartRecord | undefined;
    for (const file of pidFiles(spec)) {
      const pidFile = await readNodePidFile(spec, file);
      if (pidFile?.pid === pid) {
        record = { writtenAtMs: pidFile.mtimeMs };
        break;
      }
    }
    return isExpectedProcess(pid, { argv: (argv) => argvMatches(argv, commandOf(spec)), record });
  },

  async stop(spec, pid, signal) {
    const { gracefulTimeoutMs, forcefulTimeoutMs } = spec.policy.stop;
    await climbStopLadder(
      pid,
      [
        { name: 'SIGTERM', act: () => signalProgram(pid, 'SIGTERM'), waitMs: gracefulTimeoutMs },
        { name: 'SIGKILL', act: () => signalProgram(pid, 'SIGKILL'), waitMs: forcefulTimeoutMs },
      ],
      signal,
    );
  },

  async diagnoseExit(spec, exit): Promise<ExitDiagnosis> {
    return diagnoseFromLogs([serverLogFile(spec)], exit, (file, n) => readNodeLogTail(spec, file, n));
  },

  ownedPaths(spec) {
    return [spec.dir];
  },

  laysOutNodeDir: false,
};

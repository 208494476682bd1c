// A real HDFS for tests: a MiniDFSCluster (NameNode + DataNodes, WebHDFS on) in a child JVM on
// free loopback ports. scripts/setup-hdfs.sh prepares it; the launcher protocol is described in
// test/support/hdfs/MiniHdfsLauncher.java.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface MiniHdfs {
  /** `http://127.0.0.1:<port>/webhdfs/v1`: the NameNode's WebHDFS endpoint. */
  webhdfsUrl: string;
  /** `http://127.0.0.1:<port>`: the NameNode's HTTP address (what node-mgr's config takes). */
  namenodeUrl: string;
  dataNodes: { index: number; httpPort: number; xferPort: number; ipcPort: number }[];
  /** Milliseconds from spawning the JVM to the cluster serving WebHDFS. */
  startMs: number;
  /** Where the cluster keeps its files; the DataNodes' block files are under `<baseDir>/dfs/data`. */
  baseDir: string;
  /** Stops DataNode `index` (as listed in dataNodes; indexes never shift). */
  stopDataNode(index: number): Promise<void>;
  /** Shuts the cluster down (killing it if it does not exit in time) and removes its files. */
  stop(): Promise<void>;
}

interface LaunchSpec {
  java: string;
  jvmArgs: string[];
  classpath: string[];
  mainClass: string;
}

type LauncherEvent =
  | { event: 'ready'; webhdfsUrl: string; namenode: { httpUrl: string }; dataNodes: MiniHdfs['dataNodes'] }
  | { event: 'datanode-stopped'; index: number }
  | { event: 'error'; message: string };

export async function startHdfs(opts: { dataNodes?: number; startTimeoutMs?: number } = {}): Promise<MiniHdfs> {
  const { dataNodes = 1, startTimeoutMs = 120_000 } = opts;
  // Idempotent, and ~0.2 s when .cache/hdfs is up to date.
  await execa('bash', [path.join(repoRoot, 'scripts/setup-hdfs.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  const spec = JSON.parse(await readFile(path.join(repoRoot, '.cache/hdfs/launch.json'), 'utf8')) as LaunchSpec;

  // Everything the JVM writes (HDFS dirs, Jetty's work dirs) lives here and goes with stop().
  const baseDir = await mkdtemp(path.join(tmpdir(), 'node-mgr-hdfs-'));
  await mkdir(path.join(baseDir, 'tmp'));
  const started = Date.now();
  const child: ChildProcessWithoutNullStreams = spawn(
    spec.java,
    [
      ...spec.jvmArgs,
      `-Djava.io.tmpdir=${path.join(baseDir, 'tmp')}`,
      '-cp',
      spec.classpath.join(':'),
      spec.mainClass,
      '--data-nodes',
      String(dataNodes),
      '--base-dir',
      path.join(baseDir, 'dfs'),
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );

  child.stdin.on('error', () => undefined); // EPIPE once the JVM is gone: `exited` reports that

  // The last lines Hadoop printed: the evidence when the cluster fails to start or stop.
  const stderrTail: string[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => {
    stderrTail.push(line);
    if (stderrTail.length > 40) stderrTail.shift();
  });
  // Settles when the JVM is gone (or could not be spawned): never rejects.
  const exited = new Promise<string>((resolve) => {
    child.on('error', (err) => resolve(`cannot run ${spec.java}: ${err.message}`));
    child.on('exit', (code, signal) =>
      resolve(`MiniDFSCluster (pid ${child.pid}) exited with ${signal ?? `code ${code}`}; its last stderr lines:\n${stderrTail.join('\n')}`),
    );
  });

  const waiters: ((e: LauncherEvent) => boolean)[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    let event: LauncherEvent;
    try {
      event = JSON.parse(line) as LauncherEvent;
    } catch {
      return; // not a protocol line
    }
    const i = waiters.findIndex((accept) => accept(event));
    if (i >= 0) waiters.splice(i, 1);
  });
  // Resolves with the first launcher event that `match` accepts; rejects if the JVM exits first.
  const nextEvent = <T extends LauncherEvent>(match: (e: LauncherEvent) => e is T, timeoutMs: number, what: string) =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`MiniDFSCluster: no answer to ${what} within ${timeoutMs} ms`)), timeoutMs);
      waiters.push((e) => {
        if (!match(e)) return false;
        clearTimeout(timer);
        resolve(e);
        return true;
      });
      void exited.then((why) => {
        clearTimeout(timer);
        reject(new Error(`${what}: ${why}`));
      });
    });

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin.end(); // the launcher shuts the cluster down on stdin EOF
        const killTimer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(killTimer);
      }
      await rm(baseDir, { recursive: true, force: true });
    })());

  let ready: Extract<LauncherEvent, { event: 'ready' }>;
  try {
    ready = await nextEvent((e): e is Extract<LauncherEvent, { event: 'ready' }> => e.event === 'ready', startTimeoutMs, 'start');
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    webhdfsUrl: ready.webhdfsUrl,
    namenodeUrl: ready.namenode.httpUrl,
    dataNodes: ready.dataNodes,
    startMs: Date.now() - started,
    baseDir,
    async stopDataNode(index: number) {
      const answer = nextEvent(
        (e): e is Extract<LauncherEvent, { event: 'datanode-stopped' | 'error' }> =>
          (e.event === 'datanode-stopped' && e.index === index) || e.event === 'error',
        60_000,
        `stop-datanode ${index}`,
      );
      child.stdin.write(`stop-datanode ${index}\n`);
      const e = await answer;
      if (e.event === 'error') throw new Error(`MiniDFSCluster: stop-datanode ${index}: ${e.message}`);
    },
    stop,
  };
}

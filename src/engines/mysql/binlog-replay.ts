// Point-in-time replay for MariaDB: archived binlogs applied to a restored data dir *before* it
// becomes the node's data dir. A private mariadbd runs on the unpacked backup (no TCP, no binlog,
// no event scheduler, a socket in the node's run dir), and `mariadb-binlog --start-position
// --stop-datetime | mariadb` feeds it over that socket. The node keeps serving its old data all
// the while; a replay that fails (a corrupt event, a statement that errors, a kill) leaves only a
// directory to throw away, never a node between two states.
import { spawn, type ChildProcess } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import path from 'node:path';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type mysql from 'mysql2/promise';
import { connectMysql } from './driver.ts';
import type { NodeSpec } from '../node-spec.ts';
import type { BinlogReplay, ReplayOptions, ReplayOutcome } from '../physical-backup.ts';
import { clientHost } from '../../host/address.ts';
import { sendSignal } from '../../host/process-info.ts';
import { assertSocketPathFits } from '../node-layout.ts';
import { redact, serverEnv } from '../run-as-node.ts';
import { mysqlPaths } from './paths.ts';
import { endConnection } from '../sql-close.ts';
import { BinlogOutputScanner, mergeGtidPositions } from './binlog-events.ts';

/** Where the private server listens and writes: beside the node's own files, under names of its own. */
export function replayServerPaths(spec: Pick<NodeSpec, 'runDir' | 'logDir'>) {
  return {
    socket: path.join(spec.runDir, 'replay.sock'),
    pidFile: path.join(spec.runDir, 'replay.pid'),
    errorLog: path.join(spec.logDir, 'replay-error.log'),
  };
}

/** `YYYY-MM-DD HH:MM:SS` in UTC, what --stop-datetime reads when the tool runs with TZ=UTC. */
export function stopDatetime(at: Date): string {
  return at.toISOString().slice(0, 19).replace('T', ' ');
}

/**
 * The private server's argv: the node's own my.cnf (so page size, lower_case_table_names and the
 * like match the data), then what makes it private. Later options win.
 */
export function replayServerArgs(spec: NodeSpec, dataDir: string): string[] {
  const p = replayServerPaths(spec);
  return [
    `--defaults-file=${mysqlPaths(spec).cnf}`,
    `--datadir=${dataDir}`,
    `--socket=${p.socket}`,
    `--pid-file=${p.pidFile}`,
    `--log-error=${p.errorLog}`,
    '--skip-networking',
    // The replayed transactions are history already written once; the node's new binlog starts
    // after the swap, from the GTID position this replay ends at.
    '--skip-log-bin',
    '--event-scheduler=DISABLED',
    '--skip-slave-start',
  ];
}

function tail(text: string, lines = 4): string {
  return text.trim().split('\n').filter(Boolean).slice(-lines).join(' | ');
}

async function startReplayServer(spec: NodeSpec, dataDir: string, signal: AbortSignal): Promise<ChildProcess> {
  const p = replayServerPaths(spec);
  assertSocketPathFits(p.socket);
  await rm(p.socket, { force: true });
  const child = spawn(spec.binaries.mysqld, replayServerArgs(spec, dataDir), {
    cwd: dataDir,
    env: serverEnv(spec),
    uid: spec.runAs.uid,
    gid: spec.runAs.gid,
    stdio: 'ignore',
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) => reject(new Error(`${spec.id}: cannot start ${spec.binaries.mysqld} for the replay: ${err.message}`)));
  });
  return child;
}

async function connectReplay(spec: NodeSpec, creds: { user: string; password: string }): Promise<mysql.Connection> {
  return connectMysql({ socketPath: replayServerPaths(spec).socket, user: creds.user, password: creds.password, connectTimeout: 5000 });
}

/** Waits until the private server answers SQL, or says why it never will. */
async function waitReplayReady(spec: NodeSpec, child: ChildProcess, creds: { user: string; password: string }, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + spec.policy.probe.startTimeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    signal.throwIfAborted();
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the replay server exited (${child.exitCode ?? child.signalCode}) before it answered; see ${replayServerPaths(spec).errorLog}`);
    }
    try {
      const c = await connectReplay(spec, creds);
      await endConnection(c, 2000);
      return;
    } catch (err) {
      last = (err as Error).message;
      if ((err as { code?: string }).code === 'ER_ACCESS_DENIED_ERROR') throw new Error(`the restored data does not accept the login ${creds.user}: ${last}`);
    }
    await sleep(100);
  }
  throw new Error(`the replay server did not answer within ${spec.policy.probe.startTimeoutMs} ms: ${last}`);
}

async function stopReplayServer(spec: NodeSpec, child: ChildProcess, creds: { user: string; password: string }, clean: boolean): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (clean) {
    // A clean shutdown, so the data dir the node starts on needs no crash recovery.
    try {
      const c = await connectReplay(spec, creds);
      await c.query('SHUTDOWN').catch(() => undefined);
      await endConnection(c, 2000);
    } catch {
      sendSignal(pid, 'SIGTERM');
    }
    if (await Promise.race([exited.then(() => true), sleep(120_000).then(() => false)])) return;
    throw new Error(`the replay server (pid ${pid}) did not shut down within 120 s`);
  }
  // Its data is being thrown away: no need to wait for a clean shutdown.
  sendSignal(pid, 'SIGKILL');
  await Promise.race([exited, sleep(30_000)]);
}

export const mariadbBinlogReplay: BinlogReplay = {
  async serverTime(spec, creds, local) {
    let conn: mysql.Connection;
    try {
      conn = await connectMysql({ host: clientHost(spec), port: spec.port, user: creds.user, password: creds.password, connectTimeout: 5000 });
    } catch {
      return null;
    }
    try {
      // UNIX_TIMESTAMP reads its argument in the session's time zone, which is the server's (@@time_zone).
      const [[row]] = (await conn.query('SELECT UNIX_TIMESTAMP(?) AS t', [local])) as unknown as [{ t: string | number | null }[]];
      const t = Number(row?.t ?? 0);
      return t > 0 ? new Date(t * 1000) : null;
    } catch {
      return null;
    } finally {
      await endConnection(conn, 2000);
    }
  },

  async replay(spec: NodeSpec, dataDir: string, opts: ReplayOptions): Promise<ReplayOutcome> {
    if (opts.start.kind !== 'binlog') throw new Error(`the backup has no binlog position to replay from (${opts.start.kind})`);
    const startPos = opts.start.position;
    const names = opts.files.map((f) => f.name);
    const totalBytes = Math.max(0, opts.files.reduce((s, f) => s + f.size, 0) - startPos);
    const prefix: number[] = [];
    opts.files.reduce((s, f, i) => ((prefix[i] = s), s + f.size), 0);
    const scanner = new BinlogOutputScanner(names);
    const doneBytes = () => {
      const i = scanner.state.fileIndex;
      if (i < 0) return 0;
      return Math.min(totalBytes, Math.max(0, prefix[i]! + scanner.state.at - startPos));
    };
    // files_done counts the files read to their end (or, once the replay ended, to the stop time).
    const report = (ended = false) =>
      opts.progress({
        bytesDone: doneBytes(),
        bytesTotal: totalBytes,
        filesDone: ended ? opts.files.length : Math.max(0, scanner.state.fileIndex),
        filesTotal: opts.files.length,
        events: scanner.state.events,
      });

    const server = await startReplayServer(spec, dataDir, opts.signal);
    let ok = false;
    try {
      await opts.onServer(server.pid!);
      await waitReplayReady(spec, server, opts.creds, opts.signal);
      report();
      const timer = setInterval(() => report(), 500);
      try {
        const binlog = execa(
          spec.binaries.mysqlBinlog,
          // Without --verify-binlog-checksum a damaged row image is applied as it reads: wrong data, no error.
          ['--no-defaults', '--verify-binlog-checksum', `--start-position=${startPos}`, `--stop-datetime=${stopDatetime(opts.stopAt)}`, ...opts.files.map((f) => f.path)],
          {
            uid: spec.runAs.uid,
            gid: spec.runAs.gid,
            // --stop-datetime and the event headers are in the tool's local time: make that UTC.
            env: serverEnv(spec, { TZ: 'UTC' }),
            extendEnv: false,
            cwd: spec.dir,
            cancelSignal: opts.signal,
            buffer: { stdout: false, stderr: true },
            reject: false,
            maxBuffer: { stderr: 1024 * 1024 },
          },
        );
        const client = execa(
          spec.binaries.mysqlClient,
          [
            '--no-defaults',
            '--protocol=socket',
            `--socket=${replayServerPaths(spec).socket}`,
            `--user=${opts.creds.user}`,
            '--batch',
            // mariadb-binlog's output holds raw bytes (\0 in strings, \C charset switches).
            '--binary-mode',
            '--max-allowed-packet=1G',
          ],
          {
            uid: spec.runAs.uid,
            gid: spec.runAs.gid,
            env: serverEnv(spec, { MYSQL_PWD: opts.creds.password }),
            extendEnv: false,
            cwd: spec.dir,
            cancelSignal: opts.signal,
            stdin: 'pipe',
            all: true,
            reject: false,
            maxBuffer: 1024 * 1024,
          },
        );
        const scan = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            scanner.push(chunk);
            // Nothing of a file from another history reaches the server.
            if (scanner.state.fork) cb(new Error(scanner.state.fork));
            else cb(null, chunk);
          },
        });
        const piped = pipeline(binlog.stdout!, scan, client.stdin!).then(
          () => null,
          (err: unknown) => err as Error,
        );
        const [b, c, pipeErr] = await Promise.all([binlog, client, piped]);
        const clientOut = redact(String(c.all ?? ''), opts.creds.password);
        if (scanner.state.fork) throw new Error(`stopped before applying it: ${scanner.state.fork}`);
        if (b.failed) {
          const why = b.isCanceled ? 'was cancelled' : `failed (exit ${b.exitCode ?? b.signal})`;
          throw new Error(`${path.basename(spec.binaries.mysqlBinlog)} ${why}: ${tail(String(b.stderr ?? '')) || 'no message'}`);
        }
        if (c.failed) {
          const why = c.isCanceled ? 'was cancelled' : `failed (exit ${c.exitCode ?? c.signal})`;
          throw new Error(`applying the binlog events with ${path.basename(spec.binaries.mysqlClient)} ${why}: ${tail(clientOut) || 'no message'}`);
        }
        if (pipeErr) throw new Error(`streaming the binlog events failed: ${pipeErr.message}`);
        scanner.end();
      } finally {
        clearInterval(timer);
      }
      report(true);
      await stopReplayServer(spec, server, opts.creds, true);
      ok = true;
    } finally {
      if (!ok) await stopReplayServer(spec, server, opts.creds, false).catch(() => undefined);
      await opts.onServer(null).catch(() => undefined);
      const p = replayServerPaths(spec);
      await rm(p.socket, { force: true }).catch(() => undefined);
      await rm(p.pidFile, { force: true }).catch(() => undefined);
    }

    const last = scanner.state.last;
    const gtid = mergeGtidPositions(opts.start.gtid, scanner.state.lastByDomain);
    return {
      last,
      events: scanner.state.events,
      bytes: doneBytes(),
      position: last
        ? { kind: 'binlog', file: last.file, position: last.position, ...(gtid ? { gtid } : {}) }
        : opts.start,
    };
  },
};

// Binlog archive lag under a steady write load: a MariaDB storage node takes BENCH_ARCHIVE_ROWS_S
// rows of 1 KB a second for BENCH_ARCHIVE_SECONDS while node-mgr archives its binlogs (a pass every
// delaySeconds, a forced rotation every rotateEverySeconds) to the local store (or HDFS with
// BENCH_ARCHIVE_STORE=hdfs). Next to it, on the same server and the same load, the tool DBAs use
// for a continuous binlog copy: `mariadb-binlog --read-from-remote-server --raw --stop-never`,
// which streams every event as it is written (no digest, no store, no commit protocol).
//
// Lag is measured the same way for both, every 250 ms: the binlog bytes the server has written
// (SHOW BINARY LOGS) against the bytes the copy holds (the INDEX's sizes; the streamed files'),
// turned into seconds as "how long ago the server had written what the copy holds now".
//
//   node --import tsx bench/binlog-archive.ts      BENCH_ARCHIVE_SECONDS=60 BENCH_ARCHIVE_ROWS_S=1000
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import { LocalDirStore } from '../src/backup/local-dir.ts';
import { WebHdfsStore } from '../src/backup/webhdfs.ts';
import type { BackupStore } from '../src/backup/store.ts';
import { readBinlogIndex } from '../src/backup/binlog-archive.ts';
import { freePort, TEST_RUN_AS } from '../test/support/nodes.ts';
import { createNode, killProcessGroups } from '../test/support/node-mgr-process.ts';
import { startHdfs } from '../test/support/hdfs.ts';
import { api, onCleanup, runBench, startNodeMgrProcess } from './support/node-mgr.ts';
import { envInt, envSeconds, max, printFooter, printHeader, quantile, ratio, RUN_ID, saveResults, table } from './support/report.ts';

const SECONDS = envSeconds('BENCH_ARCHIVE_SECONDS', 60);
const ROWS_S = envInt('BENCH_ARCHIVE_ROWS_S', 1000);
const STORE = process.env.BENCH_ARCHIVE_STORE === 'hdfs' ? 'hdfs' : 'local';
const DELAY_S = 1;
const ROTATE_S = 10;
const USER = 'admin';
const PWD = 'admin_pwd';
const MB = 1024 * 1024;

interface Sample {
  t: number;
  server: number;
  archived: number;
  streamed: number;
  reportedLagS: number;
  reportedLagBytes: number;
}

runBench(async () => {
  const startedAt = Date.now();
  const machine = printHeader('binlog-archive', `archive lag at ${ROWS_S} rows/s of 1 KB for ${SECONDS} s (${STORE} store) vs mariadb-binlog --stop-never`);
  const root = await mkdtemp(path.join(os.tmpdir(), 'nm-bench-ba-'));
  await chmod(root, 0o755);
  onCleanup(() => rm(root, { recursive: true, force: true }));
  const port = await freePort();
  let store: BackupStore;
  let backup: Record<string, unknown>;
  if (STORE === 'hdfs') {
    const hdfs = await startHdfs({ dataNodes: 1 });
    onCleanup(() => hdfs.stop());
    store = new WebHdfsStore({ url: hdfs.namenodeUrl, user: 'root' });
    backup = { store: 'webhdfs', webhdfs: { url: hdfs.namenodeUrl, user: 'root' } };
  } else {
    store = new LocalDirStore(path.join(root, 'backups'));
    backup = { store: 'local', localDir: path.join(root, 'backups') };
  }
  const mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
    listen: { host: '127.0.0.1', port: await freePort() },
    stateDir: path.join(root, 'state'),
    runAs: TEST_RUN_AS,
    policy: { probe: { startTimeoutMs: 120_000 } },
    backup,
    binlogArchive: { enabled: true, delaySeconds: DELAY_S, rotateEverySeconds: ROTATE_S },
    nodes: [{ kind: 'mysql', role: 'storage', port, dir: path.join(root, 'storage'), cluster: 'bench', shard: 's1', user: USER, password: PWD, serverOptions: { innodb_flush_log_at_trx_commit: 2 } }],
  });
  const pids: number[] = [];
  onCleanup(async () => {
    await mgr.stop('SIGKILL');
    await killProcessGroups(pids);
  });
  pids.push(await createNode(mgr.url, port));
  const archiveDir = `/coldbackup/bench/s1/binlogs/${hostname()}_${port}`;

  const conn = await mysql.createConnection({ host: '127.0.0.1', port, user: USER, password: PWD });
  await conn.query('CREATE DATABASE app');
  await conn.query('CREATE TABLE app.events (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6), payload VARBINARY(1000))');
  await conn.query('FLUSH BINARY LOGS');
  const [[first]] = (await conn.query('SHOW MASTER STATUS')) as unknown as [{ File: string }[]];

  // The baseline: a streaming copy of the binlogs from the current file on.
  const streamDir = path.join(root, 'stream');
  await mkdir(streamDir);
  const streamer = execa(
    'mariadb-binlog',
    ['--no-defaults', '--read-from-remote-server', '--host=127.0.0.1', `--port=${port}`, `--user=${USER}`, `--password=${PWD}`, '--raw', '--stop-never', `--result-file=${streamDir}/`, first!.File],
    { reject: false },
  );
  onCleanup(() => {
    streamer.kill('SIGKILL');
  });

  const serverBytes = async (c: mysql.Connection, from: string) => {
    const [list] = (await c.query('SHOW BINARY LOGS')) as unknown as [{ Log_name: string; File_size: number | string }[]];
    return list.filter((l) => l.Log_name >= from).reduce((s, l) => s + Number(l.File_size), 0);
  };
  const archivedBytes = async (from: string) => (await readBinlogIndex(store, archiveDir)).filter((e) => e.file >= from).reduce((s, e) => s + e.size, 0);
  const streamedBytes = async () => {
    let sum = 0;
    for (const n of await readdir(streamDir)) sum += (await stat(path.join(streamDir, n))).size;
    return sum;
  };

  // The load: every 100 ms a batch of ROWS_S/10 rows (one transaction).
  let stop = false;
  let rows = 0;
  const writer = (async () => {
    const w = await mysql.createConnection({ host: '127.0.0.1', port, user: USER, password: PWD });
    const batch = Math.max(1, Math.round(ROWS_S / 10));
    let next = Date.now();
    while (!stop) {
      await w.query(`INSERT INTO app.events (at, payload) SELECT NOW(6), RANDOM_BYTES(1000) FROM app.seq_1_to_${batch}`);
      rows += batch;
      next += 100;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
    }
    await w.end();
  })();

  const samples: Sample[] = [];
  const sampler = await mysql.createConnection({ host: '127.0.0.1', port, user: USER, password: PWD });
  const t0 = Date.now();
  while (Date.now() - t0 < SECONDS * 1000) {
    const [server, archived, streamed, node] = await Promise.all([serverBytes(sampler, first!.File), archivedBytes(first!.File), streamedBytes(), api(mgr.url, 'GET', `/v1/nodes/${port}`)]);
    const a = node.body.binlog_archive;
    samples.push({ t: Date.now(), server, archived, streamed, reportedLagS: a.lag_seconds, reportedLagBytes: a.lag_bytes });
    await sleep(250);
  }
  stop = true;
  await writer;
  const elapsed = (Date.now() - t0) / 1000;

  /** Seconds since the server had written what the copy holds (0 when the copy has everything). */
  const lagSeconds = (pick: (s: Sample) => number) =>
    samples.map((s, i) => {
      if (pick(s) >= s.server) return 0;
      const reached = samples.slice(0, i + 1).find((p) => p.server >= pick(s));
      return reached ? (s.t - reached.t) / 1000 : (s.t - samples[0]!.t) / 1000;
    });
  const ours = lagSeconds((s) => s.archived);
  const theirs = lagSeconds((s) => s.streamed);
  const oursBytes = samples.map((s) => Math.max(0, s.server - s.archived));
  const theirBytes = samples.map((s) => Math.max(0, s.server - s.streamed));
  const reported = samples.map((s) => s.reportedLagS);

  // Per archived file: from its close (the rotate event's time) to its INDEX line, and what copying
  // and hashing it alone costs (cp + sha256 of the server's file).
  const entries = (await readBinlogIndex(store, archiveDir)).filter((e) => e.file >= first!.File);
  const closeToArchived = entries.map((e) => (Date.parse(e.archived_at) - Date.parse(e.last_event_time)) / 1000);
  const copyAlone: number[] = [];
  for (const e of entries) {
    const src = path.join(root, 'storage/data', e.file);
    const t = process.hrtime.bigint();
    await execa('cp', [src, path.join(root, 'copy.tmp')]);
    createHash('sha256').update(await readFile(path.join(root, 'copy.tmp'))).digest('hex');
    copyAlone.push(Number(process.hrtime.bigint() - t) / 1e9);
  }
  await sampler.end();
  await conn.end();
  streamer.kill('SIGTERM');

  const mbS = samples.length > 1 ? (samples.at(-1)!.server - samples[0]!.server) / MB / ((samples.at(-1)!.t - samples[0]!.t) / 1000) : 0;
  const p = (xs: number[], q: number) => quantile(xs, q);
  const text = table(
    `lag at ${Math.round(rows / elapsed)} rows/s, ${mbS.toFixed(2)} MB/s of binlog, ${elapsed.toFixed(0)} s`,
    ['node-mgr archive', 'mariadb-binlog --stop-never', 'ours / baseline'],
    [
      ['lag, seconds: median', p(ours, 0.5), p(theirs, 0.5), ratio(p(ours, 0.5), p(theirs, 0.5))],
      ['lag, seconds: p95', p(ours, 0.95), p(theirs, 0.95), ratio(p(ours, 0.95), p(theirs, 0.95))],
      ['lag, seconds: max', max(ours), max(theirs), ratio(max(ours), max(theirs))],
      ['lag, MB: median', (p(oursBytes, 0.5) ?? 0) / MB, (p(theirBytes, 0.5) ?? 0) / MB, ratio(p(oursBytes, 0.5), p(theirBytes, 0.5))],
      ['lag, MB: max', (max(oursBytes) ?? 0) / MB, (max(theirBytes) ?? 0) / MB, ratio(max(oursBytes), max(theirBytes))],
      ['lag node-mgr reports (lag_seconds): median / max', `${p(reported, 0.5)?.toFixed(1)} / ${max(reported)?.toFixed(1)}`, null, null],
      [`files archived; close → INDEX line, s: median / max`, `${entries.length}; ${p(closeToArchived, 0.5)?.toFixed(2)} / ${max(closeToArchived)?.toFixed(2)}`, null, null],
      ['cp + sha256 of one such file alone, s: median / max', `${p(copyAlone, 0.5)?.toFixed(3)} / ${max(copyAlone)?.toFixed(3)}`, null, null],
    ],
    [
      `node-mgr: a pass every ${DELAY_S} s, rotation every ${ROTATE_S} s when the file holds a transaction; ${STORE} store; every file sha256'd, size-checked, renamed, INDEX line appended`,
      'baseline: one streaming replication connection writing raw binlog files as events arrive (no digest, no store, no commit point)',
      'lag = now − when the server had written what the copy holds, sampled every 250 ms; the archive only takes closed files, so its lag is bounded by the rotation interval plus a pass',
    ],
  );
  console.log(`\n${text}\n`);
  const loadAtEnd = printFooter('binlog-archive', startedAt);
  saveResults({
    bench: 'binlog-archive',
    runId: RUN_ID,
    machine,
    loadavgAtEnd: loadAtEnd,
    durationS: Math.round((Date.now() - startedAt) / 1000),
    tables: [text],
    raw: { seconds: SECONDS, rowsPerS: ROWS_S, store: STORE, delayS: DELAY_S, rotateS: ROTATE_S, samples, closeToArchived, copyAlone, files: entries.length },
  });
});

// Restore to a time of a storage node (coldrestore with restore_time, local store, node-mgr's own
// binlog archiver) next to doing the same by hand on the same data: the same backup archive
// unpacked with `tar -xzf`, a mariadbd started on it, the same archived binlogs applied with
// `mariadb-binlog --start-position --stop-datetime | mariadb` (joined by Node streams, no shell),
// and the server shut down. node-mgr does more: it fetches every binlog and checks its sha256,
// checks every file of the backup against its manifest, replays into a private server before the
// node is touched, then stops, swaps and starts the node and sets its GTID position.
//
//   node --import tsx bench/pitr.ts     BENCH_PITR_MB=1024 BENCH_PITR_BINLOG_MB=200 (the issue's sizes)
import { chmod, chown, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import mysql from 'mysql2/promise';
import { treeBytes } from '../src/engines/physical-backup.ts';
import { binlogArchiveDir, readBinlogIndex } from '../src/backup/binlog-archive.ts';
import { LocalDirStore } from '../src/backup/local-dir.ts';
import { lookupRunAs } from '../src/host/run-as.ts';
import { freePort, TEST_RUN_AS } from '../test/support/nodes.ts';
import { killProcessGroups, waitForJob } from '../test/support/node-mgr-process.ts';
import { api, onCleanup, runBench, startNodeMgrProcess, type NodeMgrProcess } from './support/node-mgr.ts';
import { envInt, printFooter, printHeader, ratio, RUN_ID, saveResults, table } from './support/report.ts';

const DATA_MB = envInt('BENCH_PITR_MB', 1024);
const BINLOG_MB = envInt('BENCH_PITR_BINLOG_MB', 200);
const USER = 'admin';
const PWD = 'admin_pwd';
const MB = 1024 * 1024;
const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

runBench(async () => {
  const startedAt = Date.now();
  const machine = printHeader('pitr', `restore to a time of a ≥${DATA_MB} MB storage node + ≥${BINLOG_MB} MB of binlogs vs tar + mariadb-binlog | mariadb by hand`);
  const root = await mkdtemp(path.join(os.tmpdir(), 'nm-bench-pitr-'));
  await chmod(root, 0o755);
  onCleanup(() => rm(root, { recursive: true, force: true }));
  const runAs = lookupRunAs(TEST_RUN_AS);
  const port = await freePort();
  const serverOptions = { innodb_buffer_pool_size: '256M', innodb_log_file_size: '256M', innodb_flush_log_at_trx_commit: 2, max_binlog_size: '64M' };
  const config = {
    listen: { host: '127.0.0.1', port: await freePort() },
    stateDir: path.join(root, 'state'),
    runAs: TEST_RUN_AS,
    policy: { probe: { startTimeoutMs: 300_000 } },
    backup: { store: 'local', localDir: path.join(root, 'backups') },
    binlogArchive: { enabled: true, delaySeconds: 1, rotateEverySeconds: 0 },
    nodes: [{ kind: 'mysql', role: 'storage', port, dir: path.join(root, 'storage'), cluster: 'bench', shard: 'shard1', user: USER, password: PWD, serverOptions }],
  };
  const pids: number[] = [];
  let mgr: NodeMgrProcess | undefined;
  onCleanup(async () => {
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
  });
  mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
  const created = await api(mgr.url, 'POST', `/v1/nodes/${port}/create`);
  if (created.status !== 200) throw new Error(`create failed: ${created.text}`);
  pids.push(created.body.pid);

  // The data, without binlog: ~1 KB rows as in bench/backup.ts.
  const dataDir = path.join(root, 'storage/data');
  const c = await mysql.createConnection({ host: '127.0.0.1', port, user: USER, password: PWD });
  await c.query('SET SESSION sql_log_bin = 0');
  await c.query('CREATE DATABASE bench');
  let rows = 0;
  let tables = 0;
  while ((await treeBytes(path.join(dataDir, 'bench'))) < DATA_MB * MB) {
    if (rows % 400_000 === 0) {
      tables++;
      await c.query(`CREATE TABLE bench.t${tables} (id BIGINT PRIMARY KEY, a CHAR(200) NOT NULL, b VARBINARY(600) NOT NULL) ENGINE=InnoDB`);
    }
    await c.query(`INSERT INTO bench.t${tables} SELECT seq, REPEAT(MD5(seq), 6), RANDOM_BYTES(600) FROM bench.seq_${rows + 1}_to_${rows + 20_000}`);
    rows += 20_000;
  }
  await c.query('SET SESSION sql_log_bin = 1');
  await c.query('FLUSH BINARY LOGS');
  const dataBytes = await treeBytes(dataDir, (n) => /^(ib_logfile\d+|binlog\.\d+)$/.test(n));
  console.log(`    filled ${rows} rows: ${(dataBytes / MB).toFixed(0)} MB of data files`);

  const legacy = { ver: '0.1', s_ip: '127.0.0.1', s_port: port, s_user: USER, s_pwd: PWD };
  let r = await api(mgr.url, 'POST', '/', { ...legacy, job_type: 'coldbackup' });
  const backup = await waitForJob(mgr.url, r.body.job_id, 3_600_000);
  if (backup.result !== 'succeed') throw new Error(`coldbackup failed: ${backup.info}`);

  // The binlogs: rows written in transactions of 2,000 (about 1.7 MB of binlog each).
  await c.query('CREATE TABLE bench.w (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6), b VARBINARY(800)) ENGINE=InnoDB');
  const binlogBytes = async () => ((await c.query('SHOW BINARY LOGS')) as unknown as [{ File_size: number }[]])[0].reduce((s, x) => s + Number(x.File_size), 0);
  const base = await binlogBytes();
  let written = 0;
  while ((await binlogBytes()) - base < BINLOG_MB * MB) {
    await c.query('INSERT INTO bench.w (at, b) SELECT NOW(6), RANDOM_BYTES(800) FROM bench.seq_1_to_2000');
    written += 2000;
  }
  await sleep(2100);
  const [[before]] = (await c.query('CHECKSUM TABLE bench.w')) as unknown as [{ Checksum: string }[]];
  const droppedAt = new Date();
  await c.query('DROP TABLE bench.w');
  await c.query('FLUSH BINARY LOGS');
  const archiveDir = binlogArchiveDir({ role: 'storage', cluster: 'bench', shard: 'shard1', port, host: os.hostname() });
  const store = new LocalDirStore(path.join(root, 'backups'));
  const current = ((await c.query('SHOW MASTER STATUS')) as unknown as [{ File: string }[]])[0][0]!.File;
  for (;;) {
    const idx = await readBinlogIndex(store, archiveDir);
    if (idx.some((e) => e.seq === Number(current.slice(-6)) - 1)) break;
    await sleep(500);
  }
  const binlogTotal = (await binlogBytes()) - base;
  await c.end();
  const target = new Date(droppedAt.getTime() - 1000);
  console.log(`    ${written} rows written after the backup: ${(binlogTotal / MB).toFixed(0)} MB of binlogs; restoring to ${target.toISOString()}`);

  // node-mgr.
  let t0 = process.hrtime.bigint();
  r = await api(mgr.url, 'POST', '/', { ...legacy, job_type: 'coldrestore', restore_time: target.toISOString() });
  const pitr = await waitForJob(mgr.url, r.body.job_id, 3_600_000);
  if (pitr.result !== 'succeed') throw new Error(`restore to a time failed: ${pitr.info}`);
  const oursS = seconds(t0);
  pids.push(pitr.output.pid);
  const c2 = await mysql.createConnection({ host: '127.0.0.1', port, user: USER, password: PWD });
  const [[after]] = (await c2.query('CHECKSUM TABLE bench.w')) as unknown as [{ Checksum: string }[]];
  await c2.end();
  if (String(after!.Checksum) !== String(before!.Checksum)) throw new Error(`the restored bench.w has checksum ${after!.Checksum}, it had ${before!.Checksum}`);

  // By hand, on the same archive and binlogs.
  const hand = path.join(root, 'hand');
  await mkdir(path.join(hand, 'data'), { recursive: true });
  await mkdir(path.join(hand, 'tmp'));
  await chown(hand, runAs.uid, runAs.gid);
  await chown(path.join(hand, 'tmp'), runAs.uid, runAs.gid);
  const cnf = path.join(hand, 'my.cnf');
  await writeFile(cnf, `[mariadbd]\ndatadir=${hand}/data\nsocket=${hand}/s.sock\npid-file=${hand}/p.pid\nlog-error=${hand}/err.log\ntmpdir=${hand}/tmp\nskip-networking\nskip-log-bin\ninnodb_buffer_pool_size=256M\n`);
  t0 = process.hrtime.bigint();
  await execa('tar', ['-xzf', path.join(root, 'backups', pitr.output.file), '-C', path.join(hand, 'data')]);
  await execa('chown', ['-R', `${runAs.uid}:${runAs.gid}`, hand]);
  const untarS = seconds(t0);
  const t1 = process.hrtime.bigint();
  const server = execa('mariadbd', [`--defaults-file=${cnf}`], { uid: runAs.uid, gid: runAs.gid, stdio: 'ignore', reject: false });
  for (let i = 0; ; i++) {
    if (await stat(path.join(hand, 's.sock')).then(() => true, () => false)) {
      const ok = await mysql.createConnection({ socketPath: path.join(hand, 's.sock'), user: USER, password: PWD }).then((x) => x.end().then(() => true), () => false);
      if (ok) break;
    }
    if (i > 3000) throw new Error('the hand-started mariadbd did not answer');
    await sleep(100);
  }
  const archived = path.join(root, 'backups', archiveDir);
  const start = /^(\S+):(\d+)/.exec(pitr.output.position)!;
  const files = (await readdir(archived)).filter((n) => /^binlog\.\d{6}$/.test(n) && n >= start[1]!).sort().map((n) => path.join(archived, n));
  const stop = target.toISOString().slice(0, 19).replace('T', ' ');
  const binlog = execa('mariadb-binlog', ['--no-defaults', `--start-position=${start[2]}`, `--stop-datetime=${stop}`, ...files], { env: { TZ: 'UTC' }, buffer: false, stdout: 'pipe' });
  const client = execa('mariadb', ['--no-defaults', `--socket=${hand}/s.sock`, `--user=${USER}`, '--binary-mode'], { env: { MYSQL_PWD: PWD }, stdin: 'pipe' });
  await Promise.all([pipeline(binlog.stdout!, client.stdin!), binlog, client]);
  const replayS = seconds(t1);
  const h = await mysql.createConnection({ socketPath: path.join(hand, 's.sock'), user: USER, password: PWD });
  const [[handSum]] = (await h.query('CHECKSUM TABLE bench.w')) as unknown as [{ Checksum: string }[]];
  await h.query('SHUTDOWN');
  await h.end();
  await server;
  const handS = seconds(t0);
  if (String(handSum!.Checksum) !== String(before!.Checksum)) throw new Error(`by hand, bench.w has checksum ${handSum!.Checksum}, it had ${before!.Checksum}`);

  const out = pitr.output;
  const text = table(
    `restore to a time: ${(dataBytes / MB).toFixed(0)} MB of data files + ${(out.binlog_bytes / MB).toFixed(0)} MB of binlogs (${out.binlogs.length} files, ${out.events} events)`,
    ['seconds', 'node-mgr / this'],
    [
      ['node-mgr coldrestore restore_time (local store)', oursS, 1],
      ['by hand: tar -xzf, mariadbd, mariadb-binlog | mariadb, shutdown', handS, ratio(oursS, handS)],
      ['  of which tar -xzf + chown', untarS, null],
      ['  of which start + replay', replayS, null],
    ],
    [
      `node-mgr phases (s): ${Object.entries(out.phases as Record<string, number>).map(([k, v]) => `${k} ${v}`).join(', ')}; node down ${out.downtime_s} s`,
      'by hand: no digest checked, nothing swapped or started, no GTID position; node-mgr fetches and checks every binlog and the backup first',
      `the issue asks for ≥ 1 GB of data and ≥ 200 MB of binlogs (the defaults); this run: BENCH_PITR_MB=${DATA_MB}, BENCH_PITR_BINLOG_MB=${BINLOG_MB}`,
    ],
  );
  console.log(`\n${text}\n`);
  const loadAtEnd = printFooter('pitr', startedAt);
  saveResults({
    bench: 'pitr',
    runId: RUN_ID,
    machine,
    loadavgAtEnd: loadAtEnd,
    durationS: Math.round((Date.now() - startedAt) / 1000),
    tables: [text],
    raw: { dataMB: DATA_MB, binlogMB: BINLOG_MB, dataBytes, ours: { seconds: oursS, job: out }, hand: { seconds: handS, untarS, replayS } },
  });
});

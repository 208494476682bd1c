// Cold backup and restore of a storage node of at least 1 GB to a real HDFS (MiniDFSCluster, one
// DataNode, through WebHDFS), next to what the plain tools do with the same data:
//   - `mariabackup --backup --stream=xbstream | gzip > file` (the two programs joined by Node
//     streams, no shell), with gzip's default level and with -1, the level node-mgr uses;
//   - a plain WebHDFS upload of that file with `curl -L -T` (the NameNode's 307 to a DataNode);
//   - for the restore: `curl` download | `gzip -d` | `mbstream -x`, then `mariabackup --prepare`.
// node-mgr does more than either: its backup is prepared, hashed per file, read back from HDFS and
// its sha256 checked before it is committed; its restore checks every digest before it stops the
// node, then swaps the data dir and waits for SQL. The tables show what that costs.
//
//   node --import tsx bench/backup.ts          BENCH_BACKUP_MB=1024 (smaller to try it out)
import { createWriteStream } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import mysql from 'mysql2/promise';
import { treeBytes } from '../src/engines/physical-backup.ts';
import { startHdfs } from '../test/support/hdfs.ts';
import { freePort, TEST_RUN_AS } from '../test/support/nodes.ts';
import { killProcessGroups, waitForJob } from '../test/support/node-mgr-process.ts';
import { lookupRunAs } from '../src/host/run-as.ts';
import { api, onCleanup, runBench, startNodeMgrProcess, type NodeMgrProcess } from './support/node-mgr.ts';
import { envInt, printFooter, printHeader, ratio, RUN_ID, saveResults, table } from './support/report.ts';

const DATA_MB = envInt('BENCH_BACKUP_MB', 1024);
const USER = 'admin';
const PWD = 'admin_pwd';
const MB = 1024 * 1024;

interface Measure {
  label: string;
  seconds: number;
  /** Data-dir bytes the step moved (for MB/s), and what it wrote. */
  dataBytes: number;
  outBytes: number | null;
  job?: unknown;
  peakRssMB?: number;
}

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

/** Peak resident memory of a process so far (VmHWM), MB. */
async function peakRssMB(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
  return kb ? Math.round(Number(kb) / 1024) : undefined;
}

runBench(async () => {
  const startedAt = Date.now();
  const machine = printHeader('backup', `coldbackup / coldrestore of a ≥${DATA_MB} MB storage node to HDFS vs mariabackup | gzip and curl`);
  const root = await mkdtemp(path.join(os.tmpdir(), 'nm-bench-backup-'));
  await chmod(root, 0o755);
  onCleanup(() => rm(root, { recursive: true, force: true }));
  const hdfs = await startHdfs({ dataNodes: 1 });
  onCleanup(() => hdfs.stop());
  console.log(`    MiniDFSCluster up in ${(hdfs.startMs / 1000).toFixed(1)} s (1 DataNode)`);

  const port = await freePort();
  const serverOptions = { innodb_buffer_pool_size: '512M', innodb_log_file_size: '512M', innodb_flush_log_at_trx_commit: 2 };
  const config = {
    listen: { host: '127.0.0.1', port: await freePort() },
    stateDir: path.join(root, 'state'),
    runAs: TEST_RUN_AS,
    policy: { probe: { startTimeoutMs: 300_000 } },
    backup: { store: 'webhdfs', webhdfs: { url: hdfs.namenodeUrl, user: 'root' } },
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

  // ~1 KB rows: 200 bytes of repetitive text and 600 random bytes, so that gzip gets about what it
  // gets from table data (hex text alone shrinks ~15×, random bytes not at all). No binlog for the fill.
  const dataDir = path.join(root, 'storage/data');
  const c = await mysql.createConnection({ host: '127.0.0.1', port, user: USER, password: PWD });
  await c.query('SET SESSION sql_log_bin = 0');
  await c.query('CREATE DATABASE bench');
  const fillStart = Date.now();
  let rows = 0;
  let table_ = 0;
  const batch = 20_000;
  while ((await treeBytes(path.join(dataDir, 'bench'))) < DATA_MB * MB) {
    if (rows % 400_000 === 0) {
      table_++;
      await c.query(`CREATE TABLE bench.t${table_} (id BIGINT PRIMARY KEY, a CHAR(200) NOT NULL, b VARBINARY(600) NOT NULL) ENGINE=InnoDB`);
    }
    await c.query(`INSERT INTO bench.t${table_} SELECT seq, REPEAT(MD5(seq), 6), RANDOM_BYTES(600) FROM bench.seq_${rows + 1}_to_${rows + batch}`);
    rows += batch;
    if (rows % 200_000 === 0) process.stdout.write(`    filling: ${rows} rows\r`);
  }
  await c.query('FLUSH TABLES');
  await c.end();
  const dataBytes = await treeBytes(dataDir, (n) => /^(ib_logfile\d+|binlog\.\d+)$/.test(n));
  console.log(`    filled ${rows} rows in ${table_} tables: ${(dataBytes / MB).toFixed(0)} MB of data files in ${((Date.now() - fillStart) / 1000).toFixed(0)} s`);

  const results: Measure[] = [];
  const legacy = { ver: '0.1', s_ip: '127.0.0.1', s_port: port, s_user: USER, s_pwd: PWD };

  // node-mgr: coldbackup to HDFS.
  let t0 = process.hrtime.bigint();
  let r = await api(mgr.url, 'POST', '/', { ...legacy, job_type: 'coldbackup' });
  if (r.status !== 200) throw new Error(`coldbackup refused: ${r.text}`);
  const backup = await waitForJob(mgr.url, r.body.job_id, 3_600_000);
  if (backup.result !== 'succeed') throw new Error(`coldbackup failed: ${backup.info}`);
  results.push({ label: 'node-mgr coldbackup → HDFS', seconds: seconds(t0), dataBytes: backup.output.data_bytes, outBytes: backup.output.bytes, job: backup.output, peakRssMB: await peakRssMB(mgr.pid) });

  // Plain: mariabackup --stream=xbstream | gzip > file, joined by Node streams.
  const runAs = lookupRunAs(TEST_RUN_AS);
  const cnf = path.join(root, 'storage/my.cnf');
  const plain = async (gzipArgs: string[], label: string): Promise<Measure & { file: string }> => {
    const work = path.join(root, `plain-${gzipArgs.join('') || 'default'}`);
    await mkdir(work);
    await chown(work, runAs.uid, runAs.gid);
    const file = path.join(root, `plain${gzipArgs.join('')}.xbstream.gz`);
    const start = process.hrtime.bigint();
    const mb = execa('mariabackup', [`--defaults-file=${cnf}`, '--backup', '--stream=xbstream', `--target-dir=${work}`, `--user=${USER}`], {
      uid: runAs.uid,
      gid: runAs.gid,
      env: { MYSQL_PWD: PWD, HOME: root },
      stdout: 'pipe',
      stderr: 'ignore',
      buffer: false,
    });
    const gz = execa('gzip', ['-c', ...gzipArgs], { stdin: 'pipe', stdout: 'pipe', buffer: false });
    mb.stdout!.pipe(gz.stdin!);
    await Promise.all([pipeline(gz.stdout!, createWriteStream(file)), mb, gz]);
    const out = (await stat(file)).size;
    return { label, seconds: seconds(start), dataBytes, outBytes: out, file };
  };
  const plainDefault = await plain([], 'mariabackup --stream=xbstream | gzip > file');
  results.push(plainDefault);
  const plainFast = await plain(['-1'], 'mariabackup --stream=xbstream | gzip -1 > file');
  results.push(plainFast);

  // Plain WebHDFS upload of the same bytes with curl (-L follows the NameNode's 307 to the DataNode).
  const webhdfs = `${hdfs.namenodeUrl}/webhdfs/v1`;
  const upload = async (m: { file: string; outBytes: number | null }, label: string): Promise<Measure> => {
    const start = process.hrtime.bigint();
    const res = await execa('curl', ['-sS', '-L', '-T', m.file, '-o', '/dev/null', '-w', '%{http_code}', `${webhdfs}/plain/${path.basename(m.file)}?op=CREATE&user.name=root&overwrite=true`]);
    if (res.stdout.trim() !== '201') throw new Error(`curl upload answered HTTP ${res.stdout}`);
    return { label, seconds: seconds(start), dataBytes, outBytes: m.outBytes };
  };
  const curlDefault = await upload(plainDefault, 'curl -T upload of that file to WebHDFS');
  results.push(curlDefault);
  const curlFast = await upload(plainFast, 'curl -T upload of the gzip -1 file');
  results.push(curlFast);

  // node-mgr: coldrestore from HDFS (after a change, so that it has something to undo).
  const c2 = await mysql.createConnection({ host: '127.0.0.1', port, user: USER, password: PWD });
  await c2.query('DROP TABLE bench.t1');
  await c2.end();
  t0 = process.hrtime.bigint();
  r = await api(mgr.url, 'POST', '/', { ...legacy, job_type: 'coldrestore', file: backup.output.file });
  if (r.status !== 200) throw new Error(`coldrestore refused: ${r.text}`);
  const restore = await waitForJob(mgr.url, r.body.job_id, 3_600_000);
  if (restore.result !== 'succeed') throw new Error(`coldrestore failed: ${restore.info}`);
  const restoreMeasure: Measure = { label: 'node-mgr coldrestore ← HDFS', seconds: seconds(t0), dataBytes: restore.output.data_bytes, outBytes: null, job: restore.output, peakRssMB: await peakRssMB(mgr.pid) };
  pids.push(restore.output.pid);

  // Plain restore of the gzip -1 file: curl | gzip -d | mbstream -x, then --prepare (no stop, swap or start).
  const target = path.join(root, 'plain-restore');
  await mkdir(target);
  await chown(target, runAs.uid, runAs.gid);
  t0 = process.hrtime.bigint();
  const dl = execa('curl', ['-sS', '-L', `${webhdfs}/plain/${path.basename(plainFast.file)}?op=OPEN&user.name=root`], { stdout: 'pipe', buffer: false });
  const gunzip = execa('gzip', ['-dc'], { stdin: 'pipe', stdout: 'pipe', buffer: false });
  const unpack = execa('mbstream', ['-x', '-C', target], { uid: runAs.uid, gid: runAs.gid, stdin: 'pipe', buffer: false });
  dl.stdout!.pipe(gunzip.stdin!);
  gunzip.stdout!.pipe(unpack.stdin!);
  await Promise.all([dl, gunzip, unpack]);
  const unpacked = seconds(t0);
  await execa('mariabackup', ['--prepare', `--target-dir=${target}`], { uid: runAs.uid, gid: runAs.gid, env: { HOME: root }, stdout: 'ignore', stderr: 'ignore' });
  const plainRestore: Measure = { label: 'curl | gzip -d | mbstream -x, then --prepare', seconds: seconds(t0), dataBytes, outBytes: null };
  const plainRestoreNoPrepare: Measure = { label: '  of which curl | gzip -d | mbstream -x', seconds: unpacked, dataBytes, outBytes: null };

  // Tables.
  const ours = results[0]!;
  const sequentialDefault = plainDefault.seconds + curlDefault.seconds;
  const sequentialFast = plainFast.seconds + curlFast.seconds;
  const mbps = (m: { dataBytes: number; seconds: number }) => m.dataBytes / MB / m.seconds;
  const backupRows: Array<[string, ...(string | number | null)[]]> = [
    [ours.label, ours.seconds, mbps(ours), ours.outBytes! / MB, 1],
    ...results.slice(1).map((m): [string, ...(string | number | null)[]] => [m.label, m.seconds, mbps(m), m.outBytes === null ? null : m.outBytes / MB, ratio(ours.seconds, m.seconds)]),
    ['plain total: pipeline, then curl (gzip)', sequentialDefault, dataBytes / MB / sequentialDefault, plainDefault.outBytes! / MB, ratio(ours.seconds, sequentialDefault)],
    ['plain total: pipeline, then curl (gzip -1)', sequentialFast, dataBytes / MB / sequentialFast, plainFast.outBytes! / MB, ratio(ours.seconds, sequentialFast)],
  ];
  const phases = (ours.job as { phases: Record<string, number> }).phases;
  const backupText = table(
    `backup of ${(dataBytes / MB).toFixed(0)} MB of data files`,
    ['seconds', 'data MB/s', 'archive MB', 'node-mgr / this'],
    backupRows,
    [
      `node-mgr phases (s): copy+prepare ${phases.copy}, pack+gzip+upload ${phases.upload}, read back + sha256 ${phases.verify}, commit ${phases.commit}; node-mgr peak RSS ${ours.peakRssMB ?? '?'} MB`,
      'the plain pipeline is neither prepared nor checked, and lands on local disk; node-mgr streams a prepared backup straight to HDFS and reads it back',
      'data MB/s = data-dir bytes (without redo and binlogs) / wall seconds; node-mgr gzips at level 1 in one zlib stream',
    ],
  );
  const rphases = (restoreMeasure.job as { phases: Record<string, number>; downtime_s: number }).phases;
  const restoreText = table(
    `restore of ${(dataBytes / MB).toFixed(0)} MB of data files`,
    ['seconds', 'data MB/s', 'node-mgr / this'],
    [
      [restoreMeasure.label, restoreMeasure.seconds, mbps(restoreMeasure), 1],
      [plainRestore.label, plainRestore.seconds, mbps(plainRestore), ratio(restoreMeasure.seconds, plainRestore.seconds)],
      [plainRestoreNoPrepare.label, plainRestoreNoPrepare.seconds, mbps(plainRestoreNoPrepare), ratio(restoreMeasure.seconds, plainRestoreNoPrepare.seconds)],
    ],
    [
      `node-mgr phases (s): download+check every digest+unpack ${rphases.download}, fsync+prepare ${rphases.prepare}, stop ${rphases.stop}, swap ${rphases.swap}, start ${rphases.start}, clean ${rphases.clean}; node down ${(restoreMeasure.job as { downtime_s: number }).downtime_s} s; peak RSS ${restoreMeasure.peakRssMB ?? '?'} MB`,
      'the plain restore only unpacks and prepares into an empty dir: no digest check, no stop, swap or start',
    ],
  );
  console.log(`\n${backupText}\n\n${restoreText}\n`);
  const loadAtEnd = printFooter('backup', startedAt);
  saveResults({
    bench: 'backup',
    runId: RUN_ID,
    machine,
    loadavgAtEnd: loadAtEnd,
    durationS: Math.round((Date.now() - startedAt) / 1000),
    tables: [backupText, restoreText],
    raw: { dataMB: DATA_MB, dataBytes, rows, tables: table_, results, restore: restoreMeasure, plainRestore, plainRestoreNoPrepare },
  });
});

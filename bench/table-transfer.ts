// Table send throughput: a table of at least 500 MB (.ibd) sent by node-mgr's `send` job, to a node
// of the same host and to a node behind a second node-mgr on 127.0.0.2 (the cross-host path over
// HTTP), next to a plain `cp` of the same .ibd on this machine. A send is more than a copy: it
// locks the source (FLUSH TABLES … FOR EXPORT), hashes what it reads, runs CHECKSUM TABLE on both
// sides, creates, discards and imports; the table shows what that costs over the bare copy.
//
//   node --import tsx bench/table-transfer.ts          BENCH_TABLE_MB=512 (smaller to try it out)
//
// Both copies of cp and the sends read the source .ibd from the page cache when it fits (it is
// written just before): the figures compare the work done, not the disk.
import { execa } from 'execa';
import { mkdtemp, readFile, rm, stat, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { freePort, TEST_RUN_AS } from '../test/support/nodes.ts';
import { killProcessGroups, waitForJob } from '../test/support/node-mgr-process.ts';
import { api, onCleanup, runBench, startNodeMgrProcess, type NodeMgrProcess } from './support/node-mgr.ts';
import { envInt, printFooter, printHeader, ratio, RUN_ID, saveResults, table } from './support/report.ts';

const TABLE_MB = envInt('BENCH_TABLE_MB', 512);
const TOKEN = 'bench-table-transfer';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const USER = 'admin';
const PWD = 'admin_pwd';
const MB = 1024 * 1024;

interface Measure {
  label: string;
  seconds: number;
  bytes: number;
  mbPerS: number;
  lockMs?: number;
  job?: unknown;
  /** CPU seconds (user + system) during the send: the node-mgr processes, and the database servers. */
  cpu?: { nodeMgr: number; servers: number };
}

/** user + system CPU seconds of the processes so far (clock ticks of /proc/<pid>/stat; 100 per second here). */
async function cpuSeconds(pids: number[]): Promise<number> {
  let ticks = 0;
  for (const pid of pids) {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / 100;
}

async function timeCp(from: string, to: string, label: string): Promise<Measure> {
  const t0 = process.hrtime.bigint();
  await execa('cp', [from, to]);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const bytes = (await stat(to)).size;
  await rm(to, { force: true });
  return { label, seconds, bytes, mbPerS: bytes / MB / seconds };
}

async function timeSend(url: string, body: Record<string, unknown>, label: string, who: { nodeMgr: number[]; servers: number[] }): Promise<Measure> {
  const cpu0 = await Promise.all([cpuSeconds(who.nodeMgr), cpuSeconds(who.servers)]);
  const t0 = process.hrtime.bigint();
  const r = await api(url, 'POST', '/', { ver: '0.1', job_type: 'send', file_type: 'table', ...body }, AUTH);
  if (r.status !== 200) throw new Error(`send refused: ${r.text}`);
  const job = await waitForJob(url, r.body.job_id, 1_800_000);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = await Promise.all([cpuSeconds(who.nodeMgr), cpuSeconds(who.servers)]);
  if (job.result !== 'succeed') throw new Error(`${label} failed: ${job.info}`);
  const bytes = job.output.bytes as number;
  const cpu = { nodeMgr: cpu1[0] - cpu0[0], servers: cpu1[1] - cpu0[1] };
  return { label, seconds, bytes, mbPerS: bytes / MB / seconds, lockMs: job.output.lock_ms, job: job.output, cpu };
}

runBench(async () => {
  const startedAt = Date.now();
  const machine = printHeader('table-transfer', `send of a ≥${TABLE_MB} MB table vs cp of its .ibd`);
  const root = await mkdtemp(path.join(os.tmpdir(), 'nm-bench-tt-'));
  await chmod(root, 0o755);
  onCleanup(() => rm(root, { recursive: true, force: true }));
  const apiPort = await freePort();
  const port = { src: await freePort(), dst: await freePort(), remote: await freePort() };
  // Room for the fill; binlogs off for it (sql_log_bin=0 below) since they would double the writes.
  const serverOptions = { innodb_buffer_pool_size: '512M', innodb_log_file_size: '512M', innodb_flush_log_at_trx_commit: 2 };
  const node = (name: keyof typeof port, ip: string) => ({ kind: 'mysql', role: 'storage', port: port[name], ip, dir: path.join(root, name), user: USER, password: PWD, serverOptions });
  const common = { runAs: TEST_RUN_AS, security: { token: TOKEN }, policy: { probe: { startTimeoutMs: 120_000 } } };
  const mgrs: NodeMgrProcess[] = [];
  const pids: number[] = [];
  onCleanup(async () => {
    for (const m of mgrs) await m.stop('SIGKILL');
    await killProcessGroups(pids);
  });
  mgrs.push(
    // B is a configured peer of A (a send goes to no other host), called with B's token.
    await startNodeMgrProcess(path.join(root, 'mgrA'), { ...common, peers: [{ host: '127.0.0.2', token: TOKEN }], listen: { host: '127.0.0.1', port: apiPort }, stateDir: path.join(root, 'stateA'), nodes: [node('src', '127.0.0.1'), node('dst', '127.0.0.1')] }),
    await startNodeMgrProcess(path.join(root, 'mgrB'), { ...common, listen: { host: '127.0.0.2', port: apiPort }, stateDir: path.join(root, 'stateB'), nodes: [node('remote', '127.0.0.2')] }),
  );
  const [mgrA, mgrB] = mgrs as [NodeMgrProcess, NodeMgrProcess];
  for (const [m, p] of [[mgrA, port.src], [mgrA, port.dst], [mgrB, port.remote]] as const) {
    const r = await api(m.url, 'POST', `/v1/nodes/${p}/create`, undefined, AUTH);
    if (r.status !== 200) throw new Error(`create of node ${p} failed: ${r.text}`);
    pids.push(r.body.pid);
  }

  // The table: ~1 KB rows of hex text (incompressible enough), inserted in 20k-row statements.
  const src = await mysql.createConnection({ host: '127.0.0.1', port: port.src, user: USER, password: PWD });
  await src.query('SET SESSION sql_log_bin = 0');
  await src.query('CREATE DATABASE bench');
  await src.query('CREATE TABLE bench.big (id BIGINT PRIMARY KEY, a CHAR(200) NOT NULL, b VARCHAR(800) NOT NULL) ENGINE=InnoDB');
  const ibd = path.join(root, 'src/data/bench/big.ibd');
  const fillStart = Date.now();
  let rowsIn = 0;
  const batch = 20_000;
  while ((await stat(ibd)).size < TABLE_MB * MB) {
    await src.query(
      `INSERT INTO bench.big SELECT seq, REPEAT(MD5(seq), 6), REPEAT(SHA2(seq, 256), 12) FROM bench.seq_${rowsIn + 1}_to_${rowsIn + batch}`,
    );
    rowsIn += batch;
    if (rowsIn % 100_000 === 0) process.stdout.write(`    filling: ${rowsIn} rows, ${((await stat(ibd)).size / MB).toFixed(0)} MB\r`);
  }
  const ibdBytes = (await stat(ibd)).size;
  console.log(`    filled ${rowsIn} rows, .ibd ${(ibdBytes / MB).toFixed(0)} MB in ${((Date.now() - fillStart) / 1000).toFixed(0)} s`);
  for (const p of [port.dst, port.remote]) {
    const c = await mysql.createConnection({ host: p === port.remote ? '127.0.0.2' : '127.0.0.1', port: p, user: USER, password: PWD });
    await c.query('CREATE DATABASE bench');
    await c.end();
  }
  await src.end();

  const cpTarget = path.join(root, 'dst/tmp/big.ibd.cp');
  const source = { s_ip: '127.0.0.1', s_port: port.src, s_user: USER, s_pwd: PWD, s_dbname: 'bench', s_table_name: 'big' };
  const dest = (p: number, ip: string, t: string) => ({ d_ip: ip, d_port: p, d_user: USER, d_pwd: PWD, d_dbname: 'bench', d_table_name: t });
  const results: Measure[] = [];
  results.push(await timeCp(ibd, cpTarget, 'cp of the .ibd (first)'));
  const [srcPid, dstPid, remotePid] = pids as [number, number, number];
  results.push(await timeSend(mgrA.url, { ...source, ...dest(port.dst, '127.0.0.1', 'big') }, 'send, same host', { nodeMgr: [mgrA.pid], servers: [srcPid, dstPid] }));
  results.push(await timeSend(mgrA.url, { ...source, ...dest(port.remote, '127.0.0.2', 'big') }, 'send, other node-mgr (HTTP)', { nodeMgr: [mgrA.pid, mgrB.pid], servers: [srcPid, remotePid] }));
  results.push(await timeCp(ibd, cpTarget, 'cp of the .ibd (again)'));

  const cps = results.filter((r) => r.label.startsWith('cp'));
  const cpBest = Math.min(...cps.map((r) => r.seconds));
  const rows: Array<[string, ...(string | number | null)[]]> = results.map((r) => [
    r.label,
    r.seconds,
    r.mbPerS,
    r.lockMs === undefined ? null : r.lockMs / 1000,
    ratio(r.seconds, cpBest),
    r.cpu?.nodeMgr ?? null,
    r.cpu?.servers ?? null,
  ]);
  const text = table(
    `table of ${(ibdBytes / MB).toFixed(0)} MB (${rowsIn} rows)`,
    ['seconds', 'MB/s', 'source locked s', 'time / best cp', 'node-mgr CPU s', 'servers CPU s'],
    rows,
    [
      'send = accept → get_status succeed: preflight, lock + copy (sha256) + CHECKSUM TABLE, create, discard, import, CHECKSUM TABLE on the destination (its rows counted only if the checksums differ)',
      'cp = `cp <src .ibd> <dst node tmp dir>` on the same filesystem; ratio against the faster of the two cp runs',
      'CPU s = user + system seconds during the send (/proc): node-mgr (both of them for HTTP, worker threads included), and the two mariadbd',
    ],
  );
  type SendOutput = { phases_ms: Record<string, number>; locked_ms: Record<string, number>; total_ms: number };
  // Older builds report no sha256 time.
  const orNull = (n: number | undefined) => (n === undefined ? null : n);
  const sends = results.filter((r) => r.job) as Array<Measure & { job: SendOutput }>;
  const phaseRows: Array<[string, (o: SendOutput) => number]> = [
    ['preflight (both sides)', (o) => o.phases_ms.preflight!],
    ['export, source locked', (o) => o.phases_ms.export!],
    ['  of which: last byte read', (o) => o.locked_ms.copy!],
    ['  sha256 known (from the lock)', (o) => orNull(o.locked_ms.sha256)!],
    ['  of which: COUNT + CHECKSUM', (o) => o.locked_ms.checksum!],
    ['create, discard, place, IMPORT', (o) => o.phases_ms.import!],
    ['CHECKSUM TABLE on destination', (o) => o.phases_ms.verify!],
    ['the rest (sessions, waits)', (o) => o.total_ms - o.phases_ms.preflight! - o.phases_ms.export! - o.phases_ms.import! - o.phases_ms.verify!],
  ];
  const phases = table(
    'where a send spends its time (s)',
    sends.map((r) => r.label),
    phaseRows.map(([label, f]) => [label, ...sends.map((r) => { const v = f(r.job); return v === null ? null : v / 1000; })]),
    ['the copy and the source checksum run side by side while the lock is held; the sha256 too (HTTP), or of the copies after the copy, beside the import\'s first steps (same host)'],
  );
  console.log(`\n${text}\n\n${phases}\n`);
  const loadAtEnd = printFooter('table-transfer', startedAt);
  saveResults({
    bench: 'table-transfer',
    runId: RUN_ID,
    machine,
    loadavgAtEnd: loadAtEnd,
    durationS: Math.round((Date.now() - startedAt) / 1000),
    tables: [text, phases],
    raw: { tableMB: TABLE_MB, ibdBytes, rows: rowsIn, results },
  });
});

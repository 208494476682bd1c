// Restore to a time (coldrestore with restore_time) of a real MariaDB storage node through a real
// node-mgr, with the local-directory store: a DROP TABLE undone by restoring to a second before it,
// and the refusals that must come before the node is touched (a time in the future or before the
// first backup, a gap in the binlog archive, a corrupt archived binlog), a binlog that breaks in the
// middle of the replay, and node-mgr killed with SIGKILL while it replays.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { binlogArchiveDir, binlogIndexPath } from '../../src/backup/binlog-archive.ts';
import { LocalDirStore } from '../../src/backup/local-dir.ts';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, killProcessGroups, legacy, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { ADMIN, runLegacyJob, runRestJob } from '../support/backup-data.ts';
import { pitrFingerprint, purgeArchivedBinlogs, waitUntilArchived, writePitrHistory, type PitrHistory } from '../support/binlog-archive.ts';
import { isAlive } from '../../src/host/process-info.ts';
import { openEventStream } from '../support/sse.ts';

const iso = (d: Date) => d.toISOString();

describe('restore to a time, local store', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let config: Record<string, any>;
  let port: number;
  let store: LocalDirStore;
  let history: PitrHistory;
  let archiveDir: string;
  const pids: number[] = [];

  const legacyBody = () => ({ ver: '0.1', s_ip: '127.0.0.1', s_port: port, s_user: ADMIN.user, s_pwd: ADMIN.password });
  const node = () => waitForNode(mgr.url, port, () => true);
  const storeFile = (p: string) => path.join(root, 'backups', p);
  const nodeDirLeftovers = async () => (await readdir(path.join(root, 'storage'))).filter((n) => n.startsWith('.pitr') || n.startsWith('data.') || n === '.restore-journal.json');

  /** A refused restore: the job failed with `pattern`, and the node runs the same server on the same data. */
  async function assertRefusedUntouched(body: Record<string, unknown>, pattern: RegExp): Promise<any> {
    const before = await node();
    const data = await pitrFingerprint(port);
    const job = await runLegacyJob(mgr.url, { ...legacyBody(), job_type: 'coldrestore', ...body });
    assert.equal(job.result, 'error', JSON.stringify(job));
    assert.match(job.info, pattern);
    assert.match(job.info, /the node was not touched/);
    const now = await node();
    assert.equal(now.state, 'running');
    assert.equal(now.pid, before.pid, 'the node was restarted');
    assert.deepEqual(await pitrFingerprint(port), data);
    assert.deepEqual(await nodeDirLeftovers(), []);
    return job;
  }

  before(async () => {
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    config = {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      policy: { restart: { initialDelayMs: 200, jitter: 0 }, probe: { intervalMs: 1000, startTimeoutMs: 60_000 } },
      backup: { store: 'local', localDir: path.join(root, 'backups') },
      // The real archiver copies every closed binlog into the store.
      binlogArchive: { enabled: true, delaySeconds: 0.3, rotateEverySeconds: 0 },
      nodes: [{ kind: 'mysql', role: 'storage', port, dir: path.join(root, 'storage'), cluster: 'clust1', shard: 'shard1', ...ADMIN }],
    };
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    const created = await api(mgr.url, 'POST', `/v1/nodes/${port}/create`);
    assert.equal(created.status, 200, created.text);
    pids.push(created.body.pid);
    store = new LocalDirStore(path.join(root, 'backups'));
    history = await writePitrHistory(mgr.url, port);
    archiveDir = binlogArchiveDir({ role: 'storage', cluster: 'clust1', shard: 'shard1', port, host: hostname() });
    const index = await waitUntilArchived(store, archiveDir, port);
    assert.ok(index.length >= 5, `only ${index.length} binlogs archived`);
    // The node's own copies go, so that the archiver cannot put back what a test below takes out of the archive.
    await purgeArchivedBinlogs(port);
  });

  after(async () => {
    const live = mgr ? await api(mgr.url, 'GET', '/v1/nodes').then((r) => (r.body as { pid: number | null }[]).map((n) => n.pid)).catch(() => []) : [];
    await mgr?.stop('SIGKILL');
    await killProcessGroups([...pids, ...live]);
    await removeTempDirs();
  });

  it('a time in the future is refused before the node is touched', async () => {
    await assertRefusedUntouched({ restore_time: iso(new Date(Date.now() + 3600_000)) }, /is in the future/);
  });

  it('a time before the oldest backup is refused before the node is touched', async () => {
    await assertRefusedUntouched({ restore_time: '2001-01-01 00:00:00' }, /is before the oldest usable backup of \/coldbackup\/clust1\/shard1 \(coldback_\d{8}_\d{6}\.tgz/);
  });

  it('a time past the end of the archive is refused, naming where the archive ends', async () => {
    const c = await import('../support/backup-data.ts').then((m) => m.mysqlConn(port));
    await c.query("INSERT INTO pitr.events (at, phase) VALUES (NOW(6), 'unarchived')");
    await c.end();
    await sleep(1100);
    await assertRefusedUntouched({ restore_time: iso(new Date()) }, /the binlog archive .* ends at .*: restore_time .* is later, and its binlogs are not archived yet/);
  });

  it('a gap in the archive is refused before the node is touched, naming the missing binlog', async () => {
    const indexFile = storeFile(binlogIndexPath(archiveDir));
    const whole = await readFile(indexFile, 'utf8');
    const lines = whole.trim().split('\n');
    // The one between the backup's binlog and the one holding the drop.
    const dropped = JSON.parse(lines[lines.length - 2]!) as { file: string };
    await writeFile(indexFile, `${lines.filter((_, i) => i !== lines.length - 2).join('\n')}\n`);
    try {
      await assertRefusedUntouched({ restore_time: iso(new Date(history.droppedAt.getTime() - 1000)) }, new RegExp(`has a gap: ${dropped.file.replace('.', '\\.')} is missing between`));
    } finally {
      await writeFile(indexFile, whole);
    }
  });

  it('a corrupt archived binlog is refused before the node is touched', async () => {
    const index = (await readFile(storeFile(binlogIndexPath(archiveDir)), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { file: string });
    const victim = storeFile(`${archiveDir}/${index[index.length - 2]!.file}`);
    const good = await readFile(victim);
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)] ^= 0xff;
    await writeFile(victim, bad);
    try {
      await assertRefusedUntouched({ restore_time: iso(new Date(history.droppedAt.getTime() - 1000)) }, /failed while fetching and checking the archived binlogs: archived binlog .* is corrupt: its sha256 is [0-9a-f]{64}, its index line says/);
    } finally {
      await writeFile(victim, good);
    }
  });

  it('a binlog that breaks in the middle of the replay leaves the node on its old data', async () => {
    // Damaged at the source, before the archiver read it: the digest matches, the events do not.
    const indexFile = storeFile(binlogIndexPath(archiveDir));
    const whole = await readFile(indexFile, 'utf8');
    const lines = whole.trim().split('\n').map((l) => JSON.parse(l) as { file: string; sha256: string; size: number });
    const target = lines[lines.length - 2]!;
    const file = storeFile(`${archiveDir}/${target.file}`);
    const good = await readFile(file);
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length * 0.6)] ^= 0xff;
    const { createHash } = await import('node:crypto');
    target.sha256 = createHash('sha256').update(bad).digest('hex');
    await writeFile(file, bad);
    await writeFile(indexFile, `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
    try {
      const job = await assertRefusedUntouched({ restore_time: iso(new Date(history.droppedAt.getTime() - 1000)) }, /failed while replaying the archived binlogs: .*(mariadb-binlog|mariadb)/);
      assert.match(job.info, /crc|corrupt|error/i);
    } finally {
      await writeFile(file, good);
      await writeFile(indexFile, whole);
    }
  });

  it('restores to one second before a DROP TABLE: every row before it is back, the table too, nothing after it', async () => {
    const target = new Date(history.droppedAt.getTime() - 1000);
    const job = await runLegacyJob(mgr.url, { ...legacyBody(), job_type: 'coldrestore', restore_time: iso(target) });
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    const out = job.output;
    assert.ok(Date.parse(out.backup_completed) < history.droppedAt.getTime());
    assert.ok(out.binlogs.length >= 3, `replayed ${out.binlogs}`);
    assert.ok(out.events > 0);
    // The last event applied: a transaction from before the target, with its file, position and GTID.
    assert.ok(out.last_event, JSON.stringify(out));
    assert.ok(out.binlogs.includes(out.last_event.file));
    assert.ok(out.last_event.position > 0);
    assert.match(out.last_event.gtid, /^\d+-\d+-\d+$/);
    assert.ok(Date.parse(out.last_event.time) < Math.floor(target.getTime() / 1000) * 1000);
    assert.equal(out.gtid_binlog_pos, out.last_event.gtid);
    const data = await pitrFingerprint(port);
    assert.deepEqual(data, history.beforeDrop);
    assert.equal(data.afterDrop, 0);
    assert.equal((await node()).state, 'running');
    assert.deepEqual(await nodeDirLeftovers(), []);
    // The restored server continues the GTID sequence from the last event applied.
    const c = await import('../support/backup-data.ts').then((m) => m.mysqlConn(port));
    try {
      await c.query("INSERT INTO pitr.events (at, phase) VALUES (NOW(6), 'after restore')");
      const [[row]] = (await c.query('SELECT @@gtid_binlog_pos AS pos')) as unknown as [{ pos: string }[]];
      const [d, s, n] = out.last_event.gtid.split('-');
      assert.equal(row!.pos, `${d}-${port}-${Number(n) + 1}`, `after ${d}-${s}-${n}`);
    } finally {
      await c.end();
    }
  });

  it('takes restore_time as YYYY-MM-DD HH:MM:SS in the server time zone over REST, and reports files, events and bytes as progress in get_status and the event stream', async () => {
    const c = await import('../support/backup-data.ts').then((m) => m.mysqlConn(port));
    const [[row]] = (await c.query('SELECT DATE_FORMAT(FROM_UNIXTIME(?), "%Y-%m-%d %H:%i:%s") AS t', [Math.floor(history.droppedAt.getTime() / 1000) - 1])) as unknown as [{ t: string }[]];
    await c.end();
    const es = await openEventStream(`${mgr.url}/v1/events`);
    await es.waitFor((e) => e.event === 'hello');
    const r = await api(mgr.url, 'POST', `/v1/nodes/${port}/restore`, { restore_time: row!.t });
    assert.equal(r.status, 202, r.text);
    const phases = new Set<string>();
    const replaying: any[] = [];
    for (;;) {
      const reply = await legacy(mgr.url, { job_type: 'get_status', job_id: r.body.job_id });
      // The original clients read one reply of at most 2,047 bytes, headers included.
      assert.ok(Buffer.byteLength(reply.text) < 1800, `get_status is ${Buffer.byteLength(reply.text)} bytes: ${reply.text}`);
      const s = reply.body;
      if (s.progress?.phase) phases.add(s.progress.phase);
      if (s.result === 'busy' && s.progress?.phase === 'replaying') replaying.push(s.progress);
      if (s.result !== 'busy') {
        assert.equal(s.result, 'succeed', JSON.stringify(s));
        break;
      }
      await sleep(20);
    }
    es.close();
    // 'fetching binlogs' is not required: from a local store it can end between two polls (CI saw
    // planning, downloading, preparing, replaying, … without it). The replay's own reports are.
    assert.ok(phases.has('replaying'), [...phases].join(', '));
    // The replay's figures appear and move: no event applied while its server starts, all of them once it has read to the stop time.
    assert.ok(replaying.length >= 2, `saw ${replaying.length} replaying reports`);
    const [first, last] = [replaying[0], replaying.at(-1)];
    assert.ok(first.files_total >= 3 && first.bytes_total > 0, JSON.stringify(first));
    assert.equal(first.events, 0, JSON.stringify(first));
    assert.ok(last.events > first.events && last.bytes_done > first.bytes_done && last.files_done > first.files_done, `${JSON.stringify(first)} → ${JSON.stringify(last)}`);
    assert.equal(last.files_done, last.files_total);
    const streamed = es.events.filter((e) => e.event === 'job' && e.data.id === r.body.job_id);
    assert.ok(streamed.some((e) => e.data.progress?.files_total !== undefined), `job events: ${streamed.map((e) => JSON.stringify(e.data.progress)).join(' ')}`);
    assert.deepEqual(await pitrFingerprint(port), history.beforeDrop);
    const job = await api(mgr.url, 'GET', `/v1/jobs/${r.body.job_id}`);
    assert.equal(job.body.result?.restore_time ?? job.body.output?.restore_time, iso(new Date(Math.floor(history.droppedAt.getTime() / 1000) * 1000 - 1000)).replace('.000Z', 'Z'));
  });

  it('node-mgr killed with SIGKILL while it replays: the next node-mgr leaves the node on its old data and says so', async () => {
    const atKill = await pitrFingerprint(port);
    let jobId: string | undefined;
    let caught = false;
    for (let attempt = 0; attempt < 4 && !caught; attempt++) {
      const r = await legacy(mgr.url, { ...legacyBody(), job_type: 'coldrestore', restore_time: iso(new Date(history.droppedAt.getTime() - 1000)) });
      assert.equal(r.status, 200, r.text);
      jobId = r.body.job_id;
      for (;;) {
        const s = (await legacy(mgr.url, { job_type: 'get_status', job_id: jobId })).body;
        if (s.result === 'busy' && s.progress?.phase === 'replaying') {
          await mgr.stop('SIGKILL');
          caught = true;
          break;
        }
        if (s.result !== 'busy') break;
        await sleep(5);
      }
    }
    assert.ok(caught, 'never caught the restore while it replayed');
    const journal = JSON.parse(await readFile(path.join(root, 'storage/.restore-journal.json'), 'utf8'));
    assert.equal(journal.step, 'replaying');

    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    const back = await waitForNode(mgr.url, port, (n) => n.state === 'running', 120_000);
    pids.push(back.pid);
    if (journal.replayPid) {
      for (let i = 0; i < 100 && (await isAlive(journal.replayPid)); i++) await sleep(50);
      assert.equal(await isAlive(journal.replayPid), false, 'the replay server still runs');
    }
    assert.deepEqual(await pitrFingerprint(port), atKill);
    const status = (await legacy(mgr.url, { job_type: 'get_status', job_id: jobId })).body;
    assert.equal(status.result, 'error', JSON.stringify(status));
    assert.match(status.info, /node-mgr was killed while the restore was replaying; the node keeps its previous data/);
    for (let i = 0; i < 100 && (await nodeDirLeftovers()).length; i++) await sleep(50);
    assert.deepEqual(await nodeDirLeftovers(), []);
  });
});

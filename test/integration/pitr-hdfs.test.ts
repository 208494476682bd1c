// Restore to a time of a real MariaDB storage node with the binlog archive and the backups on a
// real HDFS (MiniDFSCluster through WebHDFS), node-mgr's own archiver filling the archive: a DROP
// TABLE undone, a corrupt archived binlog refused before the node is touched, and HDFS going away
// in the middle of the replay (the restore completes: everything it needs was fetched and checked
// before) and before the fetch (refused, the node untouched).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { binlogArchiveDir } from '../../src/backup/binlog-archive.ts';
import { WebHdfsStore } from '../../src/backup/webhdfs.ts';
import { startHdfs, type MiniHdfs } from '../support/hdfs.ts';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, killProcessGroups, legacy, startNodeMgrProcess, waitForJob, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { ADMIN, runLegacyJob } from '../support/backup-data.ts';
import { pitrFingerprint, purgeArchivedBinlogs, waitUntilArchived, writePitrHistory, type PitrHistory } from '../support/binlog-archive.ts';

async function readAll(store: WebHdfsStore, p: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of await store.read(p)) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

describe('restore to a time, HDFS store', () => {
  let hdfs: MiniHdfs;
  let store: WebHdfsStore;
  let root: string;
  let mgr: NodeMgrProcess;
  let port: number;
  let history: PitrHistory;
  let archiveDir: string;
  const pids: number[] = [];
  const legacyBody = () => ({ ver: '0.1', job_type: 'coldrestore', s_ip: '127.0.0.1', s_port: port, s_user: ADMIN.user, s_pwd: ADMIN.password });
  const node = () => waitForNode(mgr.url, port, () => true);
  const target = () => new Date(history.droppedAt.getTime() - 1000).toISOString();

  before(async () => {
    const hdfsStarting = startHdfs({ dataNodes: 1 });
    hdfsStarting.catch(() => undefined);
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    hdfs = await hdfsStarting;
    store = new WebHdfsStore({ url: hdfs.namenodeUrl, user: 'root' });
    const config = {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      policy: { restart: { initialDelayMs: 200, jitter: 0 }, probe: { intervalMs: 1000, startTimeoutMs: 60_000 } },
      backup: { store: 'webhdfs', webhdfs: { url: hdfs.namenodeUrl, user: 'root' } },
      binlogArchive: { enabled: true, delaySeconds: 0.3, rotateEverySeconds: 0 },
      nodes: [{ kind: 'mysql', role: 'storage', port, dir: path.join(root, 'storage'), cluster: 'clust1', shard: 'shard1', ...ADMIN }],
    };
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    const created = await api(mgr.url, 'POST', `/v1/nodes/${port}/create`);
    assert.equal(created.status, 200, created.text);
    pids.push(created.body.pid);
    history = await writePitrHistory(mgr.url, port);
    archiveDir = binlogArchiveDir({ role: 'storage', cluster: 'clust1', shard: 'shard1', port, host: hostname() });
    const index = await waitUntilArchived(store, archiveDir, port);
    assert.ok(index.length >= 5, `only ${index.length} binlogs archived`);
    await purgeArchivedBinlogs(port);
  });

  after(async () => {
    const live = mgr ? await api(mgr.url, 'GET', '/v1/nodes').then((r) => (r.body as { pid: number | null }[]).map((n) => n.pid)).catch(() => []) : [];
    await mgr?.stop('SIGKILL');
    await killProcessGroups([...pids, ...live]);
    await hdfs?.stop();
    await removeTempDirs();
  });

  it('a corrupt archived binlog in HDFS is refused before the node is touched', async () => {
    const index = await waitUntilArchived(store, archiveDir, port);
    const victim = `${archiveDir}/${index[index.length - 2]!.file}`;
    const good = await readAll(store, victim);
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)] ^= 0xff;
    await store.write(victim, [bad]);
    try {
      const before = await node();
      const data = await pitrFingerprint(port);
      const job = await runLegacyJob(mgr.url, { ...legacyBody(), restore_time: target() });
      assert.equal(job.result, 'error', JSON.stringify(job));
      assert.match(job.info, /archived binlog .* is corrupt: its sha256 is [0-9a-f]{64}, its index line says .*; the node was not touched/);
      assert.equal((await node()).pid, before.pid);
      assert.deepEqual(await pitrFingerprint(port), data);
    } finally {
      await store.write(victim, [good]);
    }
  });

  it('restores to one second before a DROP TABLE from HDFS: every row before it is back, the table too, nothing after it', async () => {
    const job = await runLegacyJob(mgr.url, { ...legacyBody(), restore_time: target() });
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    assert.ok(job.output.binlogs.length >= 3);
    assert.match(job.output.last_event.gtid, /^\d+-\d+-\d+$/);
    assert.deepEqual(await pitrFingerprint(port), history.beforeDrop);
    assert.equal((await node()).state, 'running');
  });

  it('HDFS gone in the middle of the replay: the restore completes from the binlogs it fetched and checked', async () => {
    const c = await import('../support/backup-data.ts').then((m) => m.mysqlConn(port));
    await c.query("INSERT INTO pitr.events (at, phase) VALUES (NOW(6), 'not restored')");
    await c.end();
    const r = await legacy(mgr.url, { ...legacyBody(), restore_time: target() });
    assert.equal(r.status, 200, r.text);
    let stopped = false;
    for (;;) {
      const s = (await legacy(mgr.url, { job_type: 'get_status', job_id: r.body.job_id })).body;
      if (!stopped && s.result === 'busy' && s.progress?.phase === 'replaying') {
        await hdfs.stopDataNode(0);
        stopped = true;
      }
      if (s.result !== 'busy') break;
      await sleep(5);
    }
    assert.ok(stopped, 'never caught the replay');
    const job = await waitForJob(mgr.url, r.body.job_id, 300_000);
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    assert.deepEqual(await pitrFingerprint(port), history.beforeDrop);
  });

  it('HDFS gone before the fetch: refused, the node untouched', async () => {
    const before = await node();
    const data = await pitrFingerprint(port);
    const job = await runLegacyJob(mgr.url, { ...legacyBody(), restore_time: target() }, 300_000);
    assert.equal(job.result, 'error', JSON.stringify(job));
    assert.match(job.info, /the node was not touched/);
    assert.equal((await node()).pid, before.pid);
    assert.deepEqual(await pitrFingerprint(port), data);
  });
});

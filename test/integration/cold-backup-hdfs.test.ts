// Cold backup and restore of a real MariaDB storage node to a real HDFS (MiniDFSCluster through
// WebHDFS), through a real node-mgr process: the round trip, a corrupted archive refused before the
// node is touched, verify and prune, the seed's own requests through curl, a block rotted on the DataNode's disk, and a DataNode that
// dies in the middle of a backup.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { WebHdfsStore } from '../../src/backup/webhdfs.ts';
import { sidecarPath, verifyRecordPath } from '../../src/backup/catalog.ts';
import { startHdfs, type MiniHdfs } from '../support/hdfs.ts';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, killProcessGroups, legacy, startNodeMgrProcess, waitForJob, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { ADMIN, changeMysqlData, loadMysqlData, mysqlChecksums, runLegacyJob, runRestJob } from '../support/backup-data.ts';

const run = promisify(execFile);
const DIR = '/coldbackup/clust1/shard1';
const SEED_FILE = `${DIR}/coldback_20211122_234303.tgz`;

async function readAll(store: WebHdfsStore, p: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of await store.read(p)) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** The path of the file named `name` somewhere under `dir`. */
async function findFile(dir: string, name: string): Promise<string | undefined> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const found = await findFile(p, name);
      if (found) return found;
    } else if (e.name === name) return p;
  }
  return undefined;
}

describe('cold backup to HDFS of a MariaDB storage node', () => {
  let hdfs: MiniHdfs;
  let store: WebHdfsStore;
  let root: string;
  let mgr: NodeMgrProcess;
  let config: Record<string, any>;
  let port: number;
  const pids: number[] = [];
  let goodBackup: string;
  let atBackup: Record<string, string>;

  const coldbackup = () => ({ ver: '0.1', job_type: 'coldbackup', s_ip: '127.0.0.1', s_port: port, s_user: ADMIN.user, s_pwd: ADMIN.password });
  const node = () => waitForNode(mgr.url, port, () => true);

  before(async () => {
    const hdfsStarting = startHdfs({ dataNodes: 1 });
    hdfsStarting.catch(() => undefined);
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    hdfs = await hdfsStarting;
    store = new WebHdfsStore({ url: hdfs.namenodeUrl, user: 'root' });
    config = {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      policy: { restart: { initialDelayMs: 200, jitter: 0 }, probe: { intervalMs: 1000, startTimeoutMs: 60_000 } },
      backup: { store: 'webhdfs', webhdfs: { url: hdfs.namenodeUrl, user: 'root' }, keep: 5 },
      nodes: [{ kind: 'mysql', role: 'storage', port, dir: path.join(root, 'storage'), cluster: 'clust1', shard: 'shard1', ...ADMIN }],
    };
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    const created = await api(mgr.url, 'POST', `/v1/nodes/${port}/create`);
    assert.equal(created.status, 200, created.text);
    pids.push(created.body.pid);
    await loadMysqlData(port, 50);
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await hdfs?.stop();
    await removeTempDirs();
  });

  it('backs up ~50 MB while the node keeps serving, and restores it exactly after the data changed', async () => {
    const before = await node();
    atBackup = await mysqlChecksums(port);
    const submitted = await legacy(mgr.url, coldbackup());
    assert.equal(submitted.status, 200, submitted.text);
    // While the job runs the node shows what is done to it, and keeps its server.
    const seen = new Set<string>();
    for (;;) {
      const status = (await legacy(mgr.url, { job_type: 'get_status', job_id: submitted.body.job_id })).body;
      const n = await node();
      seen.add(n.state);
      assert.equal(n.pid, before.pid);
      if (status.progress?.phase) seen.add(`phase:${status.progress.phase}`);
      if (status.result !== 'busy') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const done = await waitForJob(mgr.url, submitted.body.job_id);
    assert.equal(done.result, 'succeed', JSON.stringify(done));
    assert.ok(seen.has('backing_up'), `node states seen: ${[...seen].join(', ')}`);
    assert.ok(seen.has('phase:uploading'), `phases seen: ${[...seen].join(', ')}`);
    goodBackup = done.output.file;
    assert.match(goodBackup, /^\/coldbackup\/clust1\/shard1\/coldback_\d{8}_\d{6}\.tgz$/);
    assert.ok(done.output.data_bytes > 50 * 1000 * 1000, `only ${done.output.data_bytes} bytes of data`);
    assert.match(done.output.position, /^binlog\.\d+:\d+/);
    assert.equal((await store.stat(goodBackup))?.size, done.output.bytes);
    assert.match((await readAll(store, sidecarPath(goodBackup))).toString(), new RegExp(`^${done.output.sha256}  coldback_`));
    assert.ok((await readAll(store, '/coldbackup/storage.txt')).toString().split('\n').includes(goodBackup));
    assert.equal((await store.list(DIR)).filter((e) => e.name.endsWith('._COPYING_')).length, 0);
    assert.equal((await node()).state, 'running');

    await changeMysqlData(port);
    assert.notDeepEqual(await mysqlChecksums(port), atBackup);
    const restored = await runLegacyJob(mgr.url, { ...coldbackup(), job_type: 'coldrestore', file: goodBackup });
    assert.equal(restored.result, 'succeed', JSON.stringify(restored));
    assert.deepEqual(await mysqlChecksums(port), atBackup);
    const after = await node();
    assert.equal(after.state, 'running');
    assert.notEqual(after.pid, before.pid);
    pids.push(after.pid);
  });

  it('refuses a corrupted archive before touching the node', async () => {
    // A copy of the good backup under an older name, then one byte flipped in HDFS.
    const corrupt = `${DIR}/coldback_20000101_000000.tgz`;
    const bytes = await readAll(store, goodBackup);
    await store.write(corrupt, [bytes]);
    await store.write(sidecarPath(corrupt), [await readAll(store, sidecarPath(goodBackup))]);
    const stored = await readAll(store, corrupt);
    const at = Math.floor(stored.length / 2);
    stored[at] = stored[at]! ^ 0x01;
    await store.write(corrupt, [stored]);

    const before = await node();
    const job = await runLegacyJob(mgr.url, { ...coldbackup(), job_type: 'coldrestore', file: corrupt });
    assert.equal(job.result, 'error');
    assert.match(job.info, /coldrestore of mysql-\d+ from .*coldback_20000101_000000\.tgz failed while downloading and checking the backup: .*corrupt.*; the node was not touched/);
    const after = await node();
    assert.equal(after.state, 'running');
    assert.equal(after.pid, before.pid);
    assert.deepEqual(await mysqlChecksums(port), atBackup);
  });

  it('verify re-reads a backup and records the verdict next to it; the REST list shows it', async () => {
    const good = await runRestJob(mgr.url, '/v1/backups/verify', { file: goodBackup });
    assert.equal(good.result, 'succeed', JSON.stringify(good));
    assert.equal(good.output.backups[0].result, 'ok');
    const bad = await runRestJob(mgr.url, '/v1/backups/verify', { file: `${DIR}/coldback_20000101_000000.tgz` });
    assert.equal(bad.result, 'error');
    assert.match(bad.info, /corrupt/);

    const list = await api(mgr.url, 'GET', `/v1/backups?port=${port}`);
    assert.equal(list.status, 200, list.text);
    const backups = list.body[0].backups as any[];
    assert.deepEqual(
      backups.map((b) => [b.path, b.verify?.result]),
      [
        [goodBackup, 'ok'],
        [`${DIR}/coldback_20000101_000000.tgz`, 'failed'],
      ],
    );
    assert.equal(backups[0].verify.how, 'verify');
    assert.equal(backups[0].verify.position.kind, 'binlog');
  });

  it("the seed's coldbackup and coldrestore JSON work byte for byte through curl", async () => {
    const url = `http://127.0.0.1:${config.listen.port}/`;
    const curl = async (json: string) => JSON.parse((await run('curl', ['-s', '-d', json, url])).stdout);
    const backup = await curl(`{"ver":"0.1","job_id":"id123456","job_type":"coldbackup","s_ip":"127.0.0.1","s_port":${port},"s_user":"pgx","s_pwd":"pgx_pwd"}`);
    assert.deepEqual(backup, { result: 'succeed', info: 'accepted', job_id: 'id123456' });
    const done = await waitForJob(mgr.url, 'id123456');
    assert.equal(done.result, 'succeed', JSON.stringify(done));
    // The seed restores a backup taken at 2021-11-22 23:43:03: ours gets that name.
    await store.rename(done.output.file, SEED_FILE);
    await store.rename(sidecarPath(done.output.file), sidecarPath(SEED_FILE));
    await store.rename(verifyRecordPath(done.output.file), verifyRecordPath(SEED_FILE));
    const atSeedBackup = await mysqlChecksums(port);
    await changeMysqlData(port);

    // Both seed requests use job_id id123456: the same id with another body is a 409 (PROTOCOL
    // §3), so the restore goes to a node-mgr whose job store has not seen that id — this one,
    // restarted on a fresh state dir. It adopts the running server.
    const pid = (await node()).pid;
    await mgr.stop('SIGTERM');
    config.stateDir = path.join(root, 'state-2');
    mgr = await startNodeMgrProcess(path.join(root, 'mgr-2'), config);
    assert.equal((await waitForNode(mgr.url, port, (n) => n.state === 'running')).pid, pid);

    const restore = await curl(`{"ver":"0.1","job_id":"id123456","job_type":"coldrestore","s_ip":"127.0.0.1","s_port":${port},"s_user":"pgx","s_pwd":"pgx_pwd",
"file":"/coldbackup/clust1/shard1/coldback_20211122_234303.tgz"}`);
    assert.deepEqual(restore, { result: 'succeed', info: 'accepted', job_id: 'id123456' });
    const restored = await waitForJob(mgr.url, 'id123456');
    assert.equal(restored.result, 'succeed', JSON.stringify(restored));
    assert.equal(restored.job_type, 'coldrestore');
    assert.deepEqual(await mysqlChecksums(port), atSeedBackup);
    pids.push((await node()).pid);
  });

  it('prune keeps the newest backups and the newest verified one, and deletes the rest with their sidecars', async () => {
    // The newest backup fails verification: the newest verified one is older and must survive.
    const future = `${DIR}/coldback_20991231_000000.tgz`;
    await store.write(future, [await readAll(store, `${DIR}/coldback_20000101_000000.tgz`)]);
    await store.write(sidecarPath(future), [await readAll(store, sidecarPath(`${DIR}/coldback_20000101_000000.tgz`))]);
    assert.equal((await runRestJob(mgr.url, '/v1/backups/verify', { file: future })).result, 'error');

    const pruned = await runRestJob(mgr.url, '/v1/backups/prune', { port, keep: 1 });
    assert.equal(pruned.result, 'succeed', JSON.stringify(pruned));
    const decisions = Object.fromEntries(pruned.output.dirs[0].backups.map((d: any) => [d.path, `${d.action}: ${d.reason}`]));
    assert.deepEqual(decisions, {
      [future]: 'keep: one of the newest 1',
      [goodBackup]: 'keep: the newest verified backup',
      [SEED_FILE]: 'delete: beyond the newest 1',
      [`${DIR}/coldback_20000101_000000.tgz`]: 'delete: beyond the newest 1',
    });
    const names = (await store.list(DIR)).map((e) => e.name).sort();
    assert.deepEqual(
      names,
      [path.posix.basename(goodBackup), `${path.posix.basename(goodBackup)}.sha256`, `${path.posix.basename(goodBackup)}.verify.json`, 'coldback_20991231_000000.tgz', 'coldback_20991231_000000.tgz.sha256', 'coldback_20991231_000000.tgz.verify.json'].sort(),
    );
  });

  it('a restore from a backup whose HDFS block rotted on the DataNode says HDFS refused a block whose checksum failed, and marks the backup failed', async () => {
    // A verified copy of the good backup, then one byte flipped in its block file on the DataNode's disk.
    const rotten = '/coldbackup/clust1/rot/coldback_20000303_000000.tgz';
    await store.write(rotten, [await readAll(store, goodBackup)]);
    await store.write(sidecarPath(rotten), [await readAll(store, sidecarPath(goodBackup))]);
    assert.equal((await runRestJob(mgr.url, '/v1/backups/verify', { file: rotten })).result, 'succeed');
    const located = await fetch(`${hdfs.namenodeUrl}/webhdfs/v1${rotten}?op=GET_BLOCK_LOCATIONS&offset=0&length=1&user.name=root`);
    const blockId = ((await located.json()) as any).LocatedBlocks.locatedBlocks[0].block.blockId as number;
    const blockFile = await findFile(path.join(hdfs.baseDir, 'dfs', 'data'), `blk_${blockId}`);
    assert.ok(blockFile, `no block file blk_${blockId} under ${hdfs.baseDir}`);
    const fh = await open(blockFile, 'r+');
    try {
      const at = Math.floor((await fh.stat()).size / 2);
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, at);
      b[0] = b[0]! ^ 0x01;
      await fh.write(b, 0, 1, at);
    } finally {
      await fh.close();
    }

    const before = await node();
    const job = await runLegacyJob(mgr.url, { ...coldbackup(), job_type: 'coldrestore', file: rotten });
    assert.equal(job.result, 'error');
    assert.match(job.info, /HDFS refused the block at bytes \d+–\d+ of the file on DataNode \S+: its checksum failed/);
    assert.match(job.info, new RegExp(`hdfs fsck ${rotten} -files -blocks -locations`));
    assert.match(job.info, /another backup/);
    assert.doesNotMatch(job.info, /ECONNRESET|broke after/);
    assert.match(job.info, /; the node was not touched$/);
    assert.equal((await node()).pid, before.pid);
    const record = JSON.parse((await readAll(store, verifyRecordPath(rotten))).toString());
    assert.equal(record.result, 'failed');
    assert.equal(record.how, 'restore');
  });

  it('a DataNode stopped in the middle of a backup fails the job clearly; nothing is left under the final name and the node serves throughout', async () => {
    // More data, so that the upload lasts long enough to be cut in the middle.
    await loadMysqlData(port, 150, 'more');
    const before = await node();
    const submitted = await legacy(mgr.url, coldbackup());
    assert.equal(submitted.status, 200, submitted.text);
    const observed: { pid: number; state: string }[] = [];
    let stopped = false;
    let status: any;
    for (;;) {
      status = (await legacy(mgr.url, { job_type: 'get_status', job_id: submitted.body.job_id })).body;
      const n = await node();
      observed.push({ pid: n.pid, state: n.state });
      if (!stopped && status.progress?.phase === 'uploading' && (status.progress.bytes_done ?? 0) > 0) {
        await hdfs.stopDataNode(0);
        stopped = true;
      }
      if (status.result !== 'busy') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(stopped, `the upload was never seen under way: ${JSON.stringify(status)}`);
    assert.equal(status.result, 'error');
    assert.match(status.info, /coldbackup of mysql-\d+ failed while (uploading to|verifying the upload) \/coldbackup\/clust1\/shard1\/coldback_\d{8}_\d{6}\.tgz\._COPYING_/);
    assert.match(status.info, /DataNode|datanode|replication|blocks?/i);
    const finalName = (status.info as string).match(/(\/coldbackup\/clust1\/shard1\/coldback_\d{8}_\d{6}\.tgz)\._COPYING_/)![1]!;
    assert.equal(await store.stat(finalName), null);
    assert.equal(await store.stat(`${finalName}._COPYING_`), null);
    assert.equal(await store.stat(sidecarPath(finalName)), null);
    // The node served throughout: same server, never anything but running or backing_up.
    assert.deepEqual([...new Set(observed.map((o) => o.pid))], [before.pid]);
    assert.deepEqual([...new Set(observed.map((o) => o.state))].filter((s) => s !== 'running' && s !== 'backing_up'), []);
    assert.equal((await node()).state, 'running');
  });
});

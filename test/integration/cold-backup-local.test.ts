// Cold backup and restore through the local-directory store, through a real node-mgr process: a
// MariaDB storage node and a PostgreSQL computing node round trip, a new node rebuilt from another
// node's backup over REST, and node-mgr killed with SIGKILL in the middle of a restore.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, killProcessGroups, legacy, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { ADMIN, changeMysqlData, loadMysqlData, mysqlChecksums, mysqlConn, pgFingerprint, pgQuery, runLegacyJob, runRestJob } from '../support/backup-data.ts';

describe('cold backup to a local directory', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let config: Record<string, any>;
  const port = { storage: 0, spare: 0, computer: 0 };
  const pids: number[] = [];
  let storageBackup: string;
  let atBackup: Record<string, string>;

  const legacyBody = (nodePort: number) => ({ ver: '0.1', s_ip: '127.0.0.1', s_port: nodePort, s_user: ADMIN.user, s_pwd: ADMIN.password });
  const node = (p: number) => waitForNode(mgr.url, p, () => true);

  before(async () => {
    root = path.dirname(await tempNodeDir());
    for (const k of Object.keys(port) as (keyof typeof port)[]) port[k] = await freePort();
    config = {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      policy: { restart: { initialDelayMs: 200, jitter: 0 }, probe: { intervalMs: 1000, startTimeoutMs: 60_000 } },
      backup: { store: 'local', localDir: path.join(root, 'backups') },
      nodes: [
        { kind: 'mysql', role: 'storage', port: port.storage, dir: path.join(root, 'storage'), cluster: 'clust1', shard: 'shard1', ...ADMIN },
        // A second replica of the shard, configured but never created: rebuilt from a backup below.
        { kind: 'mysql', role: 'storage', port: port.spare, dir: path.join(root, 'spare'), cluster: 'clust1', shard: 'shard1', ...ADMIN },
        { kind: 'postgres', role: 'computer', port: port.computer, dir: path.join(root, 'computer'), cluster: 'clust1', ...ADMIN },
      ],
    };
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    for (const p of [port.storage, port.computer]) {
      const created = await api(mgr.url, 'POST', `/v1/nodes/${p}/create`);
      assert.equal(created.status, 200, created.text);
      pids.push(created.body.pid);
    }
    await loadMysqlData(port.storage, 50);
    await pgQuery(port.computer, "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 200000) g");
  });

  after(async () => {
    const live = mgr ? await api(mgr.url, 'GET', '/v1/nodes').then((r) => (r.body as { pid: number | null }[]).map((n) => n.pid)).catch(() => []) : [];
    await mgr?.stop('SIGKILL');
    await killProcessGroups([...pids, ...live]);
    await removeTempDirs();
  });

  it('MariaDB storage node: backup, change, restore gives the data back exactly', async () => {
    atBackup = await mysqlChecksums(port.storage);
    const done = await runLegacyJob(mgr.url, { ...legacyBody(port.storage), job_type: 'coldbackup' });
    assert.equal(done.result, 'succeed', JSON.stringify(done));
    storageBackup = done.output.file;
    const local = path.join(root, 'backups', storageBackup);
    assert.ok(existsSync(local));
    assert.equal((await readFile(`${local}.sha256`, 'utf8')).slice(0, 64), done.output.sha256);
    assert.ok((await readFile(path.join(root, 'backups/coldbackup/storage.txt'), 'utf8')).includes(`${storageBackup}\n`));
    // Nothing staged is left in the node dir.
    assert.deepEqual((await readdir(path.join(root, 'storage'))).filter((n) => n.startsWith('.coldbackup')), []);

    await changeMysqlData(port.storage);
    const restored = await runLegacyJob(mgr.url, { ...legacyBody(port.storage), job_type: 'coldrestore', file: storageBackup });
    assert.equal(restored.result, 'succeed', JSON.stringify(restored));
    assert.deepEqual(await mysqlChecksums(port.storage), atBackup);
    assert.equal((await node(port.storage)).state, 'running');
    assert.deepEqual((await readdir(path.join(root, 'storage'))).sort(), ['.node-mgr-owned', 'data', 'files', 'log', 'my.cnf', 'run', 'tmp']);
  });

  it('a restored MariaDB node has the GTID position of its backup, continues its sequence, and numbers its binlogs past every earlier one', async () => {
    const c = await mysqlConn(port.storage);
    const binlogs = async () => ((await c.query('SHOW BINARY LOGS')) as unknown as [{ Log_name: string }[]])[0].map((r) => Number(r.Log_name.slice(-6)));
    try {
      await c.query("INSERT INTO shop.notes (note) VALUES ('before the backup')");
      const done = await runLegacyJob(mgr.url, { ...legacyBody(port.storage), job_type: 'coldbackup' });
      assert.equal(done.result, 'succeed', JSON.stringify(done));
      const gtid = /\(GTID (\d+-\d+-\d+)\)$/.exec(done.output.position)?.[1];
      assert.ok(gtid, `the backup records no GTID: ${done.output.position}`);
      // Written after the backup, in newer binlog files: the restore takes the data back before them.
      await c.query("INSERT INTO shop.notes (note) VALUES ('after the backup')");
      await c.query('FLUSH BINARY LOGS');
      await c.query("INSERT INTO shop.notes (note) VALUES ('after the backup, next file')");
      const highestBefore = Math.max(...(await binlogs()));
      await c.end();

      const restored = await runLegacyJob(mgr.url, { ...legacyBody(port.storage), job_type: 'coldrestore', file: done.output.file });
      assert.equal(restored.result, 'succeed', JSON.stringify(restored));
      assert.equal(restored.output.gtid_binlog_pos, gtid);
      const r = await mysqlConn(port.storage);
      try {
        const q = async <T>(sql: string) => ((await r.query(sql)) as unknown as [T[]])[0][0]!;
        assert.equal((await q<{ pos: string }>('SELECT @@gtid_binlog_pos AS pos')).pos, gtid);
        assert.equal((await q<{ pos: string }>('SELECT @@gtid_slave_pos AS pos')).pos, gtid);
        const names = ((await r.query('SHOW BINARY LOGS')) as unknown as [{ Log_name: string }[]])[0].map((x) => Number(x.Log_name.slice(-6)));
        assert.ok(Math.min(...names) > highestBefore, `binlog files after the restore ${names} reuse numbers up to ${highestBefore}`);
        assert.equal((await q<{ File: string }>('SHOW MASTER STATUS')).File, restored.output.binlog_file);
        await r.query("INSERT INTO shop.notes (note) VALUES ('after the restore')");
        const [domain, , seq] = gtid.split('-');
        assert.equal((await q<{ pos: string }>('SELECT @@gtid_binlog_pos AS pos')).pos, `${domain}-${port.storage}-${Number(seq) + 1}`);
      } finally {
        await r.end();
      }
    } finally {
      await c.end().catch(() => undefined);
    }
  });

  it('a restore that finds the archive corrupt marks the backup failed, though it was verified before', async () => {
    // A copy of the good backup under an older name, verified, then one byte flipped on disk.
    const copy = storageBackup.replace(/coldback_\d{8}_\d{6}\.tgz$/, 'coldback_20000101_000000.tgz');
    const local = (p: string) => path.join(root, 'backups', p);
    await writeFile(local(copy), await readFile(local(storageBackup)));
    await writeFile(`${local(copy)}.sha256`, (await readFile(`${local(storageBackup)}.sha256`, 'utf8')).replace(/coldback_\S+/, 'coldback_20000101_000000.tgz'));
    const verified = await runRestJob(mgr.url, '/v1/backups/verify', { file: copy });
    assert.equal(verified.result, 'succeed', JSON.stringify(verified));
    const bytes = await readFile(local(copy));
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    await writeFile(local(copy), bytes);

    const job = await runLegacyJob(mgr.url, { ...legacyBody(port.storage), job_type: 'coldrestore', file: copy });
    assert.equal(job.result, 'error');
    assert.match(job.info, /failed while downloading and checking the backup: .*corrupt.*; the node was not touched/);
    const list = await api(mgr.url, 'GET', `/v1/backups?port=${port.storage}`);
    assert.equal(list.status, 200, list.text);
    const listed = (list.body[0].backups as any[]).find((b) => b.path === copy);
    assert.equal(listed?.verify?.result, 'failed', JSON.stringify(listed));
    assert.equal(listed.verify.how, 'restore');
    assert.match(listed.verify.error, /corrupt/);
    await rm(local(copy));
    await rm(`${local(copy)}.sha256`);
    await rm(`${local(copy)}.verify.json`);
  });

  it('PostgreSQL computing node: backup, change, restore gives the data back exactly', async () => {
    const before = await pgFingerprint(port.computer);
    const done = await runLegacyJob(mgr.url, { ...legacyBody(port.computer), job_type: 'coldbackup' });
    assert.equal(done.result, 'succeed', JSON.stringify(done));
    assert.match(done.output.file, new RegExp(`^/coldbackup/clust1/comp_${port.computer}/coldback_\\d{8}_\\d{6}\\.tgz$`));
    assert.match(done.output.position, /^WAL [0-9A-F]+\/[0-9A-F]+ /);
    assert.ok((await readFile(path.join(root, 'backups/coldbackup/computer.txt'), 'utf8')).includes(done.output.file));

    await pgQuery(port.computer, 'DELETE FROM items WHERE id % 7 = 0; CREATE TABLE later (x int)');
    assert.notEqual(await pgFingerprint(port.computer), before);
    const restored = await runLegacyJob(mgr.url, { ...legacyBody(port.computer), job_type: 'coldrestore', file: done.output.file });
    assert.equal(restored.result, 'succeed', JSON.stringify(restored));
    assert.equal(await pgFingerprint(port.computer), before);
    const [later] = await pgQuery<{ t: string | null }>(port.computer, "SELECT to_regclass('later')::text AS t");
    assert.equal(later!.t, null);
    assert.equal((await node(port.computer)).state, 'running');
  });

  it('a restored data dir the node cannot start on is rolled back: the old data comes back and the job names the failed step', async () => {
    // A setting that only matters at the next start goes into the backup, not into the live data dir.
    await pgQuery(port.computer, "ALTER SYSTEM SET shared_preload_libraries = 'no_such_library'");
    const backup = await runRestJob(mgr.url, `/v1/nodes/${port.computer}/backup`, {});
    assert.equal(backup.result, 'succeed', JSON.stringify(backup));
    await pgQuery(port.computer, 'ALTER SYSTEM RESET shared_preload_libraries');
    await pgQuery(port.computer, 'INSERT INTO items VALUES (-1, $$after the backup$$)');
    const before = await pgFingerprint(port.computer);

    const job = await runRestJob(mgr.url, `/v1/nodes/${port.computer}/restore`, { file: backup.output.file });
    assert.equal(job.result, 'error');
    assert.match(job.info, /failed while starting the node on the restored data: .*no_such_library/);
    assert.match(job.info, /the previous data dir was put back and the node is running again \(pid \d+\)/);
    const n = await node(port.computer);
    assert.equal(n.state, 'running');
    pids.push(n.pid);
    assert.equal(await pgFingerprint(port.computer), before);
    assert.deepEqual((await readdir(path.join(root, 'computer'))).sort(), ['.node-mgr-owned', 'data', 'log', 'run']);
  });

  it("rebuilds a configured, never-created node from another node's backup (POST /v1/nodes/:port/restore)", async () => {
    const spare = await node(port.spare);
    assert.equal(spare.state, 'stopped');
    assert.match(spare.lastError, /not initialised/);
    const done = await runRestJob(mgr.url, `/v1/nodes/${port.spare}/restore`, { file: storageBackup });
    assert.equal(done.result, 'succeed', JSON.stringify(done));
    const rebuilt = await node(port.spare);
    assert.equal(rebuilt.state, 'running');
    pids.push(rebuilt.pid);
    assert.deepEqual(await mysqlChecksums(port.spare), atBackup);
  });

  it('node-mgr killed with SIGKILL during a restore: the next node-mgr brings the node back on the old or the restored data, and the job says which', async () => {
    await changeMysqlData(port.storage);
    const atKill = await mysqlChecksums(port.storage);
    let killedIn: string | undefined;
    let jobId: string | undefined;
    // The node is down for about a second of the restore: aim the kill at it (stopping, swapping
    // or starting). Should the whole window pass between two polls, try again.
    for (let attempt = 0; attempt < 4 && !killedIn; attempt++) {
      const r = await legacy(mgr.url, { ...legacyBody(port.storage), job_type: 'coldrestore', file: storageBackup });
      assert.equal(r.status, 200, r.text);
      jobId = r.body.job_id;
      for (;;) {
        const s = (await legacy(mgr.url, { job_type: 'get_status', job_id: jobId })).body;
        const phase = s.progress?.phase;
        if (s.result === 'busy' && (phase === 'stopping' || phase === 'swapping' || phase === 'starting')) {
          await mgr.stop('SIGKILL');
          killedIn = phase;
          break;
        }
        if (s.result !== 'busy') break;
        await sleep(5);
      }
    }
    assert.ok(killedIn, 'never caught the restore while the node was down');

    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    const back = await waitForNode(mgr.url, port.storage, (n) => n.state === 'running', 120_000);
    pids.push(back.pid);
    const status = (await legacy(mgr.url, { job_type: 'get_status', job_id: jobId })).body;
    const now = await mysqlChecksums(port.storage);
    // The record says what the node really has.
    if (JSON.stringify(now) === JSON.stringify(atBackup)) {
      assert.equal(status.result, 'succeed', JSON.stringify(status));
      assert.match(status.info, /^restored mysql-\d+ from .*: node-mgr was killed while the restore was (swapping|swapped)/);
    } else {
      assert.deepEqual(now, atKill, `killed while ${killedIn}: the data is neither the old nor the restored one`);
      assert.equal(status.result, 'error', JSON.stringify(status));
      assert.match(status.info, /did not complete: node-mgr was killed while the restore was \w+; the node keeps its previous data/);
    }
    // No half-unpacked, old or failed data dir and no journal stays behind.
    const storageDir = path.join(root, 'storage');
    for (let i = 0; i < 100 && (await readdir(storageDir)).some((n) => n !== 'data' && n.startsWith('data')); i++) await sleep(50);
    assert.deepEqual((await readdir(storageDir)).sort(), ['.node-mgr-owned', 'data', 'files', 'log', 'my.cnf', 'run', 'tmp']);

    // The node works normally afterwards: another restore completes.
    const again = await runLegacyJob(mgr.url, { ...legacyBody(port.storage), job_type: 'coldrestore', file: storageBackup });
    assert.equal(again.result, 'succeed', JSON.stringify(again));
    assert.deepEqual(await mysqlChecksums(port.storage), atBackup);
    pids.push((await node(port.storage)).pid);
  });
});

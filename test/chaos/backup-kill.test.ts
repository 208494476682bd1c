// `kill -9` of node-mgr in the middle of cold backups and restores, against a real HDFS
// (MiniDFSCluster) and a real MariaDB storage node. After the restart: a backup cut off mid-upload
// leaves no `._COPYING_` in HDFS and no staging dir on disk, and its job record says what was
// removed; a restore cut off after the swap (while the node starts on the restored data) is
// reported with its real outcome, and the node runs on the restored data at the backup's GTID.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import { WebHdfsStore } from '../../src/backup/webhdfs.ts';
import { startHdfs, type MiniHdfs } from '../support/hdfs.ts';
import { api, legacy, waitForJob, waitForNode } from '../support/node-mgr-process.ts';
import { ADMIN, startChaosCluster, type ChaosCluster } from './support/cluster.ts';
import { chaosRng, eventually, scaled } from './support/chaos.ts';

const UPLOAD_KILLS = scaled(1, 6);
const RESTORE_KILLS = scaled(1, 4);
const DIR = '/coldbackup/chaos/shard1';

describe(`kill -9 of node-mgr during cold backups (${UPLOAD_KILLS}) and restores (${RESTORE_KILLS}) against HDFS`, () => {
  let hdfs: MiniHdfs;
  let store: WebHdfsStore;
  let c: ChaosCluster;
  const rng = chaosRng('backup-kill');

  const port = () => c.nodes.storage!.port;
  const body = (type: string, extra: Record<string, unknown> = {}) => ({ ver: '0.1', job_type: type, s_ip: '127.0.0.1', s_port: port(), s_user: ADMIN.user, s_pwd: ADMIN.password, ...extra });
  const status = async (id: string) => (await legacy(c.mgr.url, { job_type: 'get_status', job_id: id })).body;

  async function query<T>(sql: string, database = 'chaosdb'): Promise<T[]> {
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: port(), ...ADMIN, database });
    try {
      return (await conn.query(sql))[0] as T[];
    } finally {
      await conn.end();
    }
  }
  const fingerprint = async () => JSON.stringify(await query('CHECKSUM TABLE chaosdb.big, chaosdb.notes'));

  before(async () => {
    hdfs = await startHdfs({ dataNodes: 1 });
    store = new WebHdfsStore({ url: hdfs.namenodeUrl, user: 'root' });
    c = await startChaosCluster([{ name: 'storage', kind: 'mysql' }], { backup: { store: 'webhdfs', webhdfs: { url: hdfs.namenodeUrl, user: 'root' } } });
    // ~60 MB of incompressible rows: the upload lasts long enough to be cut in the middle.
    await query('CREATE DATABASE chaosdb', 'mysql');
    await query('CREATE TABLE chaosdb.big (id INT PRIMARY KEY, payload VARBINARY(1000)) ENGINE=InnoDB');
    for (let from = 1; from <= 60_000; from += 20_000) await query(`INSERT INTO chaosdb.big SELECT seq, RANDOM_BYTES(1000) FROM seq_${from}_to_${from + 19_999}`);
    await query('CREATE TABLE chaosdb.notes (id INT AUTO_INCREMENT PRIMARY KEY, note TEXT) ENGINE=InnoDB');
    await query("INSERT INTO chaosdb.notes (note) VALUES ('before the backup')");
  });

  after(async () => {
    await c?.teardown();
    await hdfs?.stop();
  });

  const stagingDirs = async () => (await readdir(c.nodes.storage!.dir)).filter((n) => n.startsWith('.coldbackup-staging-'));

  it('a backup killed mid-upload leaves no ._COPYING_ in HDFS and no staging dir, and its record says what was removed', async () => {
    for (let k = 0; k < UPLOAD_KILLS; k++) {
      const submitted = await legacy(c.mgr.url, body('coldbackup'));
      assert.equal(submitted.status, 200, submitted.text);
      const id = submitted.body.job_id as string;
      // Until the upload is under way in HDFS (its ._COPYING_ is there), or the job ended.
      const copyingNow = async () => (await store.list(DIR).catch(() => [])).filter((e) => e.name.endsWith('._COPYING_')).map((e) => `${DIR}/${e.name}`);
      let s: any;
      for (;;) {
        s = await status(id);
        if (s.result !== 'busy' || (s.progress?.phase === 'uploading' && (await copyingNow()).length > 0)) break;
        await sleep(20);
      }
      assert.equal(s.result, 'busy', `the backup ended before it could be killed: ${JSON.stringify(s)}`);
      await sleep(rng.int(0, 300));
      const copying = await copyingNow();
      assert.equal(copying.length, 1, 'the upload is under way in HDFS');
      assert.equal((await stagingDirs()).length, 1);
      await c.mgr.stop('SIGKILL');
      await c.restart();

      // The restart removes both, and the record names them.
      const record = await eventually('the interrupted backup is cleaned up', async () => {
        const r = await status(id);
        return /removed/.test(r.info) ? r : undefined;
      });
      assert.equal(record.result, 'error');
      assert.equal(record.job_status, 'interrupted by node-mgr restart');
      assert.match(record.info, /^interrupted by node-mgr restart while uploading; removed \S+\/\.coldbackup-staging-[0-9a-f]+ and /);
      assert.ok(record.info.includes(`${copying[0]} (webhdfs store)`), record.info);
      assert.deepEqual(record.output.removed.length, 2, JSON.stringify(record.output));
      assert.deepEqual((await store.list(DIR)).filter((e) => /_COPYING_|\.sha256$/.test(e.name) && !e.name.startsWith(record.output.file)), []);
      assert.deepEqual((await store.list(DIR)).filter((e) => e.name.includes('_COPYING_')), []);
      assert.deepEqual(await stagingDirs(), []);
      await waitForNode(c.mgr.url, port(), (n) => n.state === 'running');
    }
    // Nothing is left for prune either, and the next backup works.
    const pruned = await api(c.mgr.url, 'POST', '/v1/backups/prune', { port: port(), dry_run: true });
    assert.ok([200, 202].includes(pruned.status), pruned.text);
    const prunedJob = await waitForJob(c.mgr.url, pruned.body.job_id);
    assert.equal(prunedJob.result, 'succeed', JSON.stringify(prunedJob));
    assert.deepEqual(prunedJob.output.dirs[0].leftovers, []);
  });

  it('a restore killed after the swap, while the node starts on the restored data, is recorded as restored', async () => {
    const backup = await legacy(c.mgr.url, body('coldbackup'));
    const done = await waitForJob(c.mgr.url, backup.body.job_id, 300_000);
    assert.equal(done.result, 'succeed', JSON.stringify(done));
    const atBackup = await fingerprint();

    for (let k = 0; k < RESTORE_KILLS; k++) {
      await query(`INSERT INTO chaosdb.notes (note) VALUES ('after the backup, round ${k}')`);
      assert.notEqual(await fingerprint(), atBackup);
      let id: string | undefined;
      let killed = false;
      // The node starts in well under a second: poll closely, and try again if the moment passed.
      for (let attempt = 0; attempt < 5 && !killed; attempt++) {
        const r = await legacy(c.mgr.url, body('coldrestore', { file: done.output.file }));
        assert.equal(r.status, 200, r.text);
        id = r.body.job_id as string;
        for (;;) {
          const s = await status(id);
          if (s.result === 'busy' && s.progress?.phase === 'starting') {
            await c.mgr.stop('SIGKILL');
            killed = true;
            break;
          }
          if (s.result !== 'busy') break;
          await sleep(5);
        }
        if (!killed) await query(`INSERT INTO chaosdb.notes (note) VALUES ('missed attempt ${attempt}')`);
      }
      assert.ok(killed, 'never caught the restore while the node was starting');
      await c.restart();

      const s = await status(id!);
      assert.equal(s.result, 'succeed', JSON.stringify(s));
      assert.match(s.info, /^restored mysql-\d+ from \/coldbackup\/chaos\/shard1\/coldback_\d{8}_\d{6}\.tgz: node-mgr was killed while the restore was swapped; /);
      assert.equal(s.output.outcome, 'restored');
      const node = await waitForNode(c.mgr.url, port(), (n) => n.state === 'running', 120_000);
      c.pids.add(node.pid);
      assert.equal(await fingerprint(), atBackup);
      // The job was cut off before it could give the node the backup's GTID position: the restart does.
      const gtid = /\(GTID (\S+)\)$/.exec(done.output.position)![1]!;
      await eventually('the GTID position is set back', async () => ((await query<{ pos: string }>('SELECT @@gtid_binlog_pos AS pos'))[0]!.pos === gtid ? true : undefined));
      const finished = await eventually('the record names the GTID position', async () => {
        const r = await status(id!);
        return r.output?.gtid_binlog_pos ? r : undefined;
      });
      assert.equal(finished.output.gtid_binlog_pos, gtid);
      assert.match(finished.info, new RegExp(`its binlog GTID position was set back to ${gtid}`));
      // No old, unpacked or failed data dir and no journal stays behind.
      await eventually('only the restored data dir remains', async () => {
        const names = (await readdir(c.nodes.storage!.dir)).filter((n) => n.startsWith('data') || n.startsWith('.restore'));
        return names.length === 1 && names[0] === 'data' ? true : undefined;
      });
    }
  });
});

// Binlog archiving through a real node-mgr process and a real MariaDB storage node, against the
// local store and a MiniDFSCluster: closed binlogs reach the archive with the server's bytes, event
// times and GTID list; the forced rotation; a binlog swapped for a symbolic link is never read and
// never purged; retention follows the kept backups; node-mgr killed mid-upload leaves nothing
// visible and the next node-mgr completes the file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstat, open, readdir, readFile, rename, symlink, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import mysql from 'mysql2/promise';
import { LocalDirStore } from '../../src/backup/local-dir.ts';
import { WebHdfsStore } from '../../src/backup/webhdfs.ts';
import type { BackupStore } from '../../src/backup/store.ts';
import { readBinlogArchive, type ArchivedBinlog } from '../../src/backup/binlog-archive.ts';
import { sendSignal } from '../../src/host/process-info.ts';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, createNode, killProcessGroups, legacy, startNodeMgrProcess, waitForJob, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { ADMIN, runLegacyJob } from '../support/backup-data.ts';
import { startHdfs, type MiniHdfs } from '../support/hdfs.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Event times and the GTID list as mariadb-binlog prints them: an independent reading of the file. */
async function mariadbBinlogFacts(file: string): Promise<{ first: string; last: string; gtidList: string | null }> {
  const { stdout } = await execa('mariadb-binlog', ['--no-defaults', file], { env: { TZ: 'UTC' } });
  const times = [...stdout.matchAll(/^#(\d\d)(\d\d)(\d\d)\s+(\d+):(\d\d):(\d\d) server id/gm)].map(
    ([, y, mo, d, h, mi, s]) => `20${y}-${mo}-${d}T${h!.padStart(2, '0')}:${mi}:${s}.000Z`,
  );
  const gtid = /Gtid list \[([^\]]*)\]/.exec(stdout)?.[1] ?? null;
  return { first: times[0]!, last: times.at(-1)!, gtidList: gtid };
}

for (const kind of ['local', 'hdfs'] as const) {
  describe(`binlog archiving to the ${kind} store`, () => {
    let root: string;
    let hdfs: MiniHdfs | undefined;
    let store: BackupStore;
    let mgr: NodeMgrProcess;
    let config: Record<string, any>;
    let port: number;
    let conn: mysql.Connection;
    let archiveDir: string;
    const pids: number[] = [];

    const dataDir = () => path.join(root, 'storage/data');
    const view = async () => (await api(mgr.url, 'GET', `/v1/nodes/${port}`)).body.binlog_archive;
    const binlogs = async () => ((await conn.query('SHOW BINARY LOGS'))[0] as Array<{ Log_name: string }>).map((r) => r.Log_name);
    const current = async () => (((await conn.query('SHOW MASTER STATUS'))[0] as Array<{ File: string }>)[0]!).File;
    const index = async () => readBinlogArchive(store, archiveDir);
    const waitUntil = async (what: string, pred: () => Promise<boolean>, tries = 600) => {
      for (let i = 0; !(await pred().catch(() => false)); i++) {
        if (i >= tries) assert.fail(`timed out waiting until ${what}; archive: ${JSON.stringify(await view().catch(() => null))}`);
        await sleep(100);
      }
    };
    /** Waits until every closed binlog the server has is in the archive. */
    const waitArchived = async () => {
      await waitUntil('every closed binlog is archived', async () => {
        const [all, cur, idx] = await Promise.all([binlogs(), current(), index()]);
        const have = new Set(idx.entries.map((e) => e.file));
        return all.filter((f) => f !== cur && (idx.retiredThrough === null || Number(f.split('.')[1]) > idx.retiredThrough)).every((f) => have.has(f));
      });
    };
    const storeBytes = async (p: string) => {
      const parts: Buffer[] = [];
      for await (const c of await store.read(p)) parts.push(c as Buffer);
      return Buffer.concat(parts);
    };
    const reload = async (patch: Record<string, unknown>) => {
      config = { ...config, binlogArchive: { ...config.binlogArchive, ...patch } };
      const seen = mgr.lines.filter((l) => l.includes('config reloaded')).length;
      await writeFile(path.join(root, 'mgr/node-mgr.json'), JSON.stringify(config, null, 2));
      sendSignal(mgr.pid, 'SIGHUP');
      await waitUntil('the config is reloaded', async () => mgr.lines.filter((l) => l.includes('config reloaded')).length > seen);
    };
    const write = async (n: number, note = 'row') => {
      for (let i = 0; i < n; i++) await conn.query('INSERT INTO app.events (note) VALUES (?)', [`${note} ${i}`]);
    };

    before(async () => {
      root = path.dirname(await tempNodeDir());
      port = await freePort();
      if (kind === 'hdfs') {
        hdfs = await startHdfs({ dataNodes: 1 });
        store = new WebHdfsStore({ url: hdfs.namenodeUrl, user: 'root' });
      } else store = new LocalDirStore(path.join(root, 'backups'));
      config = {
        listen: { host: '127.0.0.1', port: await freePort() },
        stateDir: path.join(root, 'state'),
        runAs: TEST_RUN_AS,
        policy: { restart: { initialDelayMs: 200, jitter: 0 }, probe: { startTimeoutMs: 60_000 } },
        backup: kind === 'hdfs' ? { store: 'webhdfs', webhdfs: { url: hdfs!.namenodeUrl, user: 'root' } } : { store: 'local', localDir: path.join(root, 'backups') },
        binlogArchive: { enabled: true, delaySeconds: 0.3, rotateEverySeconds: 0 },
        nodes: [{ kind: 'mysql', role: 'storage', port, dir: path.join(root, 'storage'), cluster: 'c1', shard: 's1', ...ADMIN }],
      };
      mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
      pids.push(await createNode(mgr.url, port));
      archiveDir = `/coldbackup/c1/s1/binlogs/${hostname()}_${port}`;
      conn = await mysql.createConnection({ host: '127.0.0.1', port, ...ADMIN });
      await conn.query('CREATE DATABASE app');
      await conn.query('CREATE TABLE app.events (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(200), payload VARBINARY(1000))');
    });

    after(async () => {
      conn?.destroy();
      await mgr?.stop('SIGKILL');
      await killProcessGroups(pids);
      await hdfs?.stop();
      await removeTempDirs();
    });

    it('archives every closed binlog with the server\'s bytes, event times and GTID list, and shows it', async () => {
      for (let i = 0; i < 3; i++) {
        await write(5, `rotation ${i}`);
        await conn.query('FLUSH BINARY LOGS');
      }
      await waitArchived();
      const cur = await current();
      const closed = (await binlogs()).filter((f) => f !== cur);
      const { entries } = await index();
      assert.ok(entries.length >= 3, `at least three files archived: ${entries.map((e) => e.file)}`);
      for (const f of closed) {
        const e = entries.find((x) => x.file === f);
        assert.ok(e, `${f} is in the INDEX`);
        const local = await readFile(path.join(dataDir(), f));
        const archived = await storeBytes(`${archiveDir}/${f}`);
        assert.equal(e.size, local.length);
        assert.equal(e.sha256, sha256(local), `${f}: the INDEX digest is the server file's`);
        assert.equal(sha256(archived), e.sha256, `${f}: the stored bytes are the server file's`);
        const facts = await mariadbBinlogFacts(path.join(dataDir(), f));
        assert.equal(e.first_event_time, facts.first, `${f}: first event time`);
        assert.equal(e.last_event_time, facts.last, `${f}: last event time`);
        assert.equal(e.gtid_list ?? null, facts.gtidList, `${f}: GTID list`);
        assert.equal(e.seq, Number(f.split('.')[1]));
      }
      assert.deepEqual((await store.list(archiveDir)).filter((x) => x.name.includes('_COPYING_')), [], 'no upload is left');
      // One history: each file starts with the GTID list the one before ended with.
      const asSet = (l: string | undefined) => new Set((l ?? '').split(',').filter(Boolean));
      for (let i = 1; i < entries.length; i++) {
        assert.ok(entries[i - 1]!.gtid_end !== undefined, `${entries[i - 1]!.file} has gtid_end`);
        assert.deepEqual(asSet(entries[i]!.gtid_list), asSet(entries[i - 1]!.gtid_end), `${entries[i]!.file} continues ${entries[i - 1]!.file}`);
      }
      assert.ok(entries.some((e) => asSet(e.gtid_end).size > 0 && e.gtid_end !== e.gtid_list), 'some file added GTIDs');

      const v = await waitForNode(mgr.url, port, (n) => n.binlog_archive?.state === 'ok' && n.binlog_archive.last_archived?.file === entries.at(-1)!.file);
      assert.equal(v.binlog_archive.enabled, true);
      assert.deepEqual(v.binlog_archive.pending_files, []);
      assert.equal(v.binlog_archive.current_file, cur);
      // Nothing written since the last rotation: the archive has everything.
      assert.equal(v.binlog_archive.lag_bytes, 0);
      assert.equal(v.binlog_archive.lag_seconds, 0);
      const seed = await legacy(mgr.url, { ver: '0.1', job_type: 'get_node', node_type: 'storage_node' });
      assert.equal(seed.body.storage_node0.binlog_archive.last_archived, entries.at(-1)!.file, 'get_node shows the archive (its headline only)');
      const metrics = (await api(mgr.url, 'GET', '/metrics')).text;
      assert.match(metrics, new RegExp(`nodemgr_binlog_archive_lag_bytes\\{node="mysql-${port}",cluster="c1",shard="s1"\\} 0`));
      assert.match(metrics, new RegExp(`nodemgr_binlog_archived_files_total\\{node="mysql-${port}"\\} [1-9]`));

      // Written, not rotated: the archive lags by the current file's transactions.
      await write(1, 'unrotated');
      const lagging = await waitForNode(mgr.url, port, (n) => n.binlog_archive?.lag_bytes > 0);
      assert.equal(lagging.binlog_archive.current_file, cur);
    });

    it('rotates the current binlog once it is older than rotateEverySeconds and holds a transaction, and not an empty one', async () => {
      const before = await current();
      // Written before the rotation is turned on: a pass may rotate at once, and a row written after
      // that would land in the new file, which would then rightly be rotated too.
      await write(1, 'to be rotated');
      await reload({ rotateEverySeconds: 2 });
      await waitUntil('node-mgr rotated the binlog', async () => (await current()) !== before);
      await waitArchived();
      const rotated = (await index()).entries.find((e) => e.file === before);
      assert.ok(rotated, `${before} was archived after the rotation`);
      const after = await current();
      const passedAt = Date.now();
      // A pass that ran when the new (empty) file was older than the interval did not rotate it.
      await waitUntil('a pass ran past the rotation interval', async () => Date.parse((await view()).last_pass_at) > passedAt + 2500);
      assert.equal(await current(), after, 'a binlog without a transaction is not rotated');
      await reload({ rotateEverySeconds: 0 });
    });

    it('never reads a binlog swapped for a symbolic link, and the purge keeps it because it is not archived', async (t) => {
      // A root-only file the servers' account would like node-mgr to copy into the store.
      const secret = path.join(root, 'secret');
      const secretText = `root secret ${Math.random()}\n`.repeat(20);
      await writeFile(secret, secretText, { mode: 0o600 });
      await write(2, 'before the swap');
      const victim = await current();
      // The server keeps writing the open file; its name now leads to the secret.
      await rename(path.join(dataDir(), victim), path.join(dataDir(), `${victim}.real`));
      await symlink(secret, path.join(dataDir(), victim));
      // A failure below must not leave the link for the tests after this one.
      t.after(async () => {
        if ((await lstat(path.join(dataDir(), victim)).catch(() => null))?.isSymbolicLink()) {
          await unlink(path.join(dataDir(), victim));
          await rename(path.join(dataDir(), `${victim}.real`), path.join(dataDir(), victim));
        }
      });
      await conn.query('FLUSH BINARY LOGS');
      await write(1, 'after the swap');
      await conn.query('FLUSH BINARY LOGS');
      const refused = await waitForNode(mgr.url, port, (n) => n.binlog_archive?.state === 'error' && n.binlog_archive.pending_files.includes(victim));
      assert.match(refused.binlog_archive.detail, /not a plain file of its own/);
      // Pending bytes: the closed files the archive lacks (the link's target is not read: the server's
      // sizes count). A pass that ran between the two FLUSHes saw fewer files closed than there are
      // now: the figure is compared with the server's sizes once a pass has seen the same files.
      let lastSeen = '';
      await waitUntil('pending_bytes to be the server\'s sizes of the pending files', async () => {
        const seen = await view();
        const sizes = new Map(((await conn.query('SHOW BINARY LOGS'))[0] as Array<{ Log_name: string; File_size: number }>).map((b) => [b.Log_name, Number(b.File_size)]));
        const expected = (seen.pending_files as string[]).reduce((sum, f) => sum + (sizes.get(f) ?? NaN), 0);
        lastSeen = `pending_bytes ${seen.pending_bytes} for ${seen.pending_files.join(', ')}; the server's sizes sum to ${expected}`;
        return seen.pending_files.includes(victim) && seen.pending_bytes === expected && expected > 0;
      }).catch((err: Error) => assert.fail(`${err.message}: ${lastSeen}`));
      assert.ok(!(await index()).entries.some((e) => e.file === victim));
      for (const f of await store.list(archiveDir)) {
        if (f.type === 'file') assert.ok(!(await storeBytes(`${archiveDir}/${f.name}`)).toString('latin1').includes('root secret'), `${f.name} holds no byte of the secret`);
      }

      const r = await legacy(mgr.url, { ver: '0.1', job_type: 'delete', file_type: 'binlog', s_ip: '127.0.0.1', s_port: port, s_user: ADMIN.user, s_pwd: ADMIN.password });
      const purge = await waitForJob(mgr.url, r.body.job_id);
      assert.equal(purge.result, 'succeed', JSON.stringify(purge));
      const verdict = new Map<string, { action: string; reason: string }>(purge.output.binlogs.map((b: { file: string }) => [b.file, b]));
      assert.equal(verdict.get(victim)?.action, 'kept');
      assert.match(verdict.get(victim)!.reason, /not archived yet \(binlog archiving is on for this node/);
      // The pass stops at the first file it cannot archive: the later ones wait, and are kept too.
      const later = [...verdict.keys()].find((f) => f > victim && f !== (purge.output.current as string));
      assert.equal(verdict.get(later!)?.action, 'kept');
      assert.match(verdict.get(later!)!.reason, /not archived yet/);
      assert.ok([...verdict.values()].some((b) => b.action === 'purged'), 'archived files before it were purged');
      assert.ok((await binlogs()).includes(victim));

      // The real file back: the next pass archives it, and everything after it.
      await unlink(path.join(dataDir(), victim));
      await rename(path.join(dataDir(), `${victim}.real`), path.join(dataDir(), victim));
      await waitArchived();
      const e = (await index()).entries.find((x) => x.file === victim)!;
      assert.equal(e.sha256, sha256(await readFile(path.join(dataDir(), victim))));
      const caught = await waitForNode(mgr.url, port, (n) => n.binlog_archive?.state === 'ok');
      assert.equal(caught.binlog_archive.pending_bytes, 0);
    });

    it('prune removes the archived binlogs older than the oldest kept backup, and they are not archived again', async () => {
      const backupJob = async () => {
        const done = await runLegacyJob(mgr.url, { ver: '0.1', job_type: 'coldbackup', s_ip: '127.0.0.1', s_port: port, s_user: ADMIN.user, s_pwd: ADMIN.password });
        assert.equal(done.result, 'succeed', JSON.stringify(done));
        return done.output.file as string;
      };
      await backupJob();
      await write(3, 'between the backups');
      await conn.query('FLUSH BINARY LOGS');
      await sleep(1100); // backups are named to the second
      const second = await backupJob();
      await write(3, 'after the backups');
      await conn.query('FLUSH BINARY LOGS');
      await waitArchived();
      const keptFrom = Date.parse(second.replace(/.*coldback_(\d{4})(\d\d)(\d\d)_(\d\d)(\d\d)(\d\d)\.tgz$/, '$1-$2-$3T$4:$5:$6Z'));
      const beforePrune = (await index()).entries;
      const old = beforePrune.filter((e) => Date.parse(e.last_event_time) < keptFrom);
      assert.ok(old.length > 0 && old.length < beforePrune.length, `some archived files are older than the kept backup: ${beforePrune.map((e) => `${e.file}@${e.last_event_time}`)}`);

      const pruned = await api(mgr.url, 'POST', '/v1/backups/prune', { port, keep: 1 });
      assert.ok(pruned.status < 300, pruned.text);
      const job = await waitForJob(mgr.url, pruned.body.job_id);
      assert.equal(job.result, 'succeed', JSON.stringify(job));
      const listed = job.output.dirs[0].binlogs.map((b: { path: string }) => path.posix.basename(b.path)).sort();
      assert.deepEqual(listed, old.map((e) => e.file).sort());
      const after: ArchivedBinlog[] = (await index()).entries;
      assert.deepEqual(after.map((e) => e.file), beforePrune.filter((e) => !old.includes(e)).map((e) => e.file));
      for (const e of old) assert.equal(await store.stat(`${archiveDir}/${e.file}`), null, `${e.file} is gone from the store`);

      // Passes after the prune leave the retired files alone, even those the server still has.
      const since = Date.now();
      await waitUntil('two passes ran after the prune', async () => Date.parse((await view()).last_pass_at) > since + 700);
      for (const e of old) assert.equal(await store.stat(`${archiveDir}/${e.file}`), null, `${e.file} was not archived again`);
      assert.equal((await view()).state, 'ok');
    });

    it('node-mgr killed in the middle of an upload leaves no visible file or INDEX line, and the next one completes it', async () => {
      // ~60 MB in one binlog: its upload lasts long enough to be cut.
      await reload({ enabled: false });
      await conn.query('INSERT INTO app.events (note, payload) SELECT CONCAT(\'big \', seq), RANDOM_BYTES(1000) FROM app.seq_1_to_60000');
      const big = await current();
      await conn.query('FLUSH BINARY LOGS');
      const localDir = kind === 'local' ? path.join(root, 'backups', archiveDir) : null;
      const partial = async () =>
        localDir ? (await readdir(localDir)).some((n) => n.includes(`${big}._COPYING_`)) : (await store.list(archiveDir)).some((f) => f.name === `${big}._COPYING_`);
      await reload({ enabled: true });
      let seen = false;
      for (let i = 0; i < 20_000 && !seen; i++) {
        seen = await partial().catch(() => false);
        if (!seen) await sleep(2);
      }
      assert.ok(seen, `an upload of ${big} was seen in progress`);
      await mgr.stop('SIGKILL');
      assert.ok(!(await index()).entries.some((e) => e.file === big), 'no INDEX line for the cut upload');
      assert.equal(await store.stat(`${archiveDir}/${big}`), null, 'nothing under the final name');

      mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
      await waitArchived();
      const lines = (await storeBytes(`${archiveDir}/INDEX.jsonl`)).toString().split('\n').filter((l) => l.includes(`"${big}"`));
      assert.equal(lines.length, 1, 'one INDEX line for the file');
      const e = (await index()).entries.find((x) => x.file === big)!;
      const local = await readFile(path.join(dataDir(), big));
      assert.equal(e.sha256, sha256(local));
      assert.equal(sha256(await storeBytes(`${archiveDir}/${big}`)), e.sha256);
      assert.deepEqual((await store.list(archiveDir)).filter((x) => x.name.includes('_COPYING_')), [], 'the stale upload was replaced and renamed');
      // The local store's hidden temp file of the cut write is gone too (removed at start).
      if (localDir) await waitUntil('no temp file of the cut write is left', async () => !(await readdir(localDir)).some((n) => /^\..*\.tmp$/.test(n)), 100);
    });

    it('after a restart, trusts an archived binlog whose size and both ends are unchanged without reading it whole, and still refuses one whose head changed', async () => {
      // The biggest closed binlog the archive holds (the cut upload above: ~60 MB).
      const cur = await current();
      const entries = (await index()).entries.filter((e) => e.file !== cur && e.ends_sha256 !== undefined);
      const big = entries.reduce((a, b) => (b.size > a.size ? b : a));
      assert.ok(big.size > 1024 * 1024, `${big.file} has ${big.size} bytes`);
      const file = path.join(dataDir(), big.file);
      const flip = async (at: number) => {
        const fh = await open(file, 'r+');
        try {
          const b = Buffer.alloc(1);
          await fh.read(b, 0, 1, at);
          b[0] ^= 0xff;
          await fh.write(b, 0, 1, at);
        } finally {
          await fh.close();
        }
      };
      const restartAndPass = async () => {
        await mgr.stop('SIGKILL');
        mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
        const since = Date.now();
        await waitUntil('a pass ran after the restart', async () => Date.parse((await view()).last_pass_at) > since);
        return view();
      };
      // A byte in the middle: the first pass after a restart does not read there, so it still takes the file as archived.
      const middle = Math.floor(big.size / 2);
      await flip(middle);
      try {
        const v = await restartAndPass();
        assert.equal(v.state, 'ok', JSON.stringify(v));
      } finally {
        await flip(middle);
      }
      // A byte at its start (where the server's id, start time and GTID list are): another file under that name.
      await flip(100);
      try {
        const v = await restartAndPass();
        assert.equal(v.state, 'error', JSON.stringify(v));
        assert.match(v.detail, new RegExp(`${big.file.replace('.', '\\.')} of mysql-${port} \\(${big.size} bytes\\) differs from the file archived under that name .*the bytes at its start or end differ`));
      } finally {
        await flip(100);
      }
      assert.equal((await restartAndPass()).state, 'ok');
    });
  });
}


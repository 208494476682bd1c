// Resource faults: the state dir on a full disk (a small tmpfs, filled up) and the state file made
// read-only (chattr +i) under a running node-mgr, then at start-up. Expected: requests that need
// the state file get a clear sentence (503), reads and supervision go on (a killed database is still
// brought back), node-mgr does not die or loop, and everything works again once the fault is gone.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { cp, open, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { api, legacy, startNodeMgrProcess, waitForJob, waitForNode } from '../support/node-mgr-process.ts';
import { httpPostFile, parseRaw } from '../support/raw-http.ts';
import { ADMIN, startChaosCluster, type ChaosCluster } from './support/cluster.ts';
import { eventually, isAlive, PG_SERVERS, serversOnDataDir } from './support/chaos.ts';

const run = promisify(execFile);
const STATE_FILES = ['node-mgr.sqlite', 'node-mgr.sqlite-wal'];

/** Writes zeros until the file system says ENOSPC (bounded by `maxBytes`); returns the filler's path. */
async function fillUp(dir: string, maxBytes = 64 * 1024 * 1024): Promise<string> {
  const file = path.join(dir, `filler-${Date.now()}`);
  const fh = await open(file, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (let written = 0; written < maxBytes; written += chunk.length) await fh.write(chunk);
    throw new Error(`${dir} did not fill up within ${maxBytes} bytes`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close();
  }
  // Whatever single pages are left go too.
  const small = await open(`${file}-tail`, 'w');
  try {
    for (let i = 0; i < 4096; i++) await small.write(Buffer.alloc(512));
  } catch {
    /* full */
  } finally {
    await small.close();
  }
  return file;
}

async function chattr(flag: '+i' | '-i', dir: string): Promise<void> {
  for (const f of STATE_FILES) if (existsSync(path.join(dir, f))) await run('chattr', [flag, path.join(dir, f)]);
}

describe('resource faults of the state dir', () => {
  let c: ChaosCluster;
  let stateDir: string;
  let mounted = false;
  let diskStateDir = '';
  // Backups stage on a 1 MB tmpfs of their own and land in a store on the real disk.
  let stagingDir: string;
  let stagingMounted = false;
  let backupDir: string;
  const report: Record<string, unknown> = {};

  before(async () => {
    // The state dir is a 16 MB tmpfs of its own; the nodes live on the real disk.
    stateDir = mkdtempSync(path.join(os.tmpdir(), 'nm-statefs-'));
    await run('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', stateDir]);
    mounted = true;
    stagingDir = mkdtempSync(path.join(os.tmpdir(), 'nm-stagingfs-'));
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', stagingDir]);
    stagingMounted = true;
    backupDir = mkdtempSync(path.join(os.tmpdir(), 'nm-backups-'));
    // The MariaDB node is there for the backup test: mariabackup stages its copy, pg_basebackup streams.
    c = await startChaosCluster(
      [
        { name: 'computer', kind: 'postgres' },
        { name: 'storage', kind: 'mysql' },
      ],
      { stateDir, backup: { store: 'local', localDir: backupDir, stagingDir } },
    );
  });

  after(async () => {
    console.log(`[chaos] resources report ${JSON.stringify(report)}`);
    if (diskStateDir) await chattr('-i', diskStateDir).catch(() => {});
    await c?.teardown();
    if (mounted) await run('umount', ['-l', stateDir]).catch((err) => console.error(`umount ${stateDir}: ${err}`));
    if (stagingMounted) await run('umount', ['-l', stagingDir]).catch((err) => console.error(`umount ${stagingDir}: ${err}`));
    for (const d of [stateDir, stagingDir, backupDir]) if (d) await rm(d, { recursive: true, force: true });
  });

  const pgCmd = (verb: 'start' | 'stop', extra: Record<string, unknown> = {}) =>
    legacy(c.mgr.url, { ver: '0.1', job_type: 'pgsql_cmd', cmd: `python2 ${verb}_pg.py port=${c.nodes.computer!.port}`, ...extra });

  /** Kills the pg server and waits until node-mgr has brought it back under a new pid. */
  async function killAndRecover(): Promise<number> {
    const node = c.nodes.computer!;
    const before = await waitForNode(c.mgr.url, node.port, (x) => x.state === 'running');
    process.kill(before.pid, 'SIGKILL');
    const back = await waitForNode(c.mgr.url, node.port, (x) => x.state === 'running' && x.pid !== before.pid, 60_000);
    c.pids.add(back.pid);
    assert.deepEqual(await serversOnDataDir(node.dataDir, PG_SERVERS), [back.pid]);
    return back.pid;
  }

  it('on a full state disk: refuses new jobs with a clear 503, keeps serving reads and supervising, recovers once space is back', async () => {
    const pid = c.mgr.pid;
    const filler = await fillUp(stateDir);
    try {
      const refused = await pgCmd('start');
      report.fullDiskJob = refused.status;
      assert.equal(refused.status, 503, refused.text);
      assert.equal(refused.body.result, 'error');
      assert.match(refused.body.info, /state file .* full/);
      assert.doesNotMatch(refused.body.info, /\n/);

      assert.equal((await legacy(c.mgr.url, { ver: '0.1', job_type: 'get_node' })).status, 200);
      assert.equal((await legacy(c.mgr.url, { ver: '0.1', job_type: 'get_info' })).status, 200);
      const ready = await api(c.mgr.url, 'GET', '/readyz');
      assert.equal(ready.status, 503);
      assert.match(ready.body.info, /full/);

      // An upload lands in the state dir too: a clear refusal, and no partial file stays behind.
      const up = parseRaw(await httpPostFile(c.apiPort, '{"ver":"0.1","file_type":"pgsql"}', 'big.json', Buffer.alloc(256 * 1024, 0x20)));
      report.fullDiskUpload = up.statusLine;
      assert.match(up.statusLine, / 50[37] /);
      assert.equal(up.body.result, 'error');
      assert.match(up.body.info, /full|space/i);
      const pgUploads = path.join(stateDir, 'uploads', 'pgsql');
      if (existsSync(pgUploads)) assert.deepEqual(readdirSync(pgUploads).filter((f) => f.includes('big.json')), []);

      // Supervision does not need the disk: a killed server comes back, and node-mgr lives on.
      await killAndRecover();
      assert.equal(await isAlive(pid), true, 'node-mgr died on the full disk');
      assert.equal((await legacy(c.mgr.url, { ver: '0.1', job_type: 'auto_pullup', minutes: 0 })).status, 200);
    } finally {
      await unlink(filler);
      await unlink(`${filler}-tail`).catch(() => {});
    }
    await eventually('readyz once space is back', async () => ((await api(c.mgr.url, 'GET', '/readyz')).status === 200 ? true : undefined), 30_000);
    const accepted = await pgCmd('start');
    assert.equal(accepted.status, 200, accepted.text);
    assert.equal((await waitForJob(c.mgr.url, accepted.body.job_id)).result, 'succeed');
    assert.equal(c.mgr.pid, pid, 'the same node-mgr process throughout');
    assert.equal(await isAlive(pid), true);
  });

  it('refuses to start on a full state disk with one clear sentence, and starts (adopting the database) once space is back', async () => {
    const node = c.nodes.computer!;
    const running = await waitForNode(c.mgr.url, node.port, (x) => x.state === 'running');
    await c.mgr.stop('SIGKILL');
    const filler = await fillUp(stateDir);
    try {
      const failure = await startNodeMgrProcess(path.join(c.root, 'mgr'), c.config, 60_000).then(
        (mgr) => {
          c.mgr = mgr;
          return null;
        },
        (err: Error) => err.message,
      );
      report.fullDiskStart = failure ? failure.split('\n').find((l) => /full/.test(l))?.slice(0, 300) : 'started';
      if (failure === null) {
        // It may also come up while SQLite still finds room in its WAL; then it must say it is not ready.
        const ready = await api(c.mgr.url, 'GET', '/readyz');
        assert.equal(ready.status, 503, ready.text);
        await c.mgr.stop('SIGKILL');
      } else {
        assert.match(failure, /state file .*full/);
      }
    } finally {
      await unlink(filler);
      await unlink(`${filler}-tail`).catch(() => {});
    }
    await c.restart();
    const adopted = await waitForNode(c.mgr.url, node.port, (x) => x.state === 'running');
    assert.equal(adopted.pid, running.pid, 'the database kept running and was adopted');
  });

  it('with the state file made read-only (chattr +i) under it: clear 503s naming a read-only file, supervision goes on, recovery after chattr -i', async () => {
    // tmpfs does not stop writes through an open fd of an immutable file; ext4 (the real disk) does.
    // node-mgr moves to a state dir on the real disk, taking its state with it.
    await c.mgr.stop('SIGKILL');
    diskStateDir = path.join(c.root, 'state-on-disk');
    await cp(stateDir, diskStateDir, { recursive: true });
    c.config.stateDir = diskStateDir;
    await c.restart();
    const pid = c.mgr.pid;
    await chattr('+i', diskStateDir);
    try {
      const refused = await pgCmd('start');
      report.readOnlyJob = refused.status;
      assert.equal(refused.status, 503, refused.text);
      assert.match(refused.body.info, /read-only/);
      const ready = await api(c.mgr.url, 'GET', '/readyz');
      assert.equal(ready.status, 503);
      assert.match(ready.body.info, /read-only/);
      assert.equal((await legacy(c.mgr.url, { ver: '0.1', job_type: 'get_node' })).status, 200);
      await killAndRecover();
      assert.equal(await isAlive(pid), true, 'node-mgr died with a read-only state file');
    } finally {
      await chattr('-i', diskStateDir);
    }
    await eventually('readyz after chattr -i', async () => ((await api(c.mgr.url, 'GET', '/readyz')).status === 200 ? true : undefined), 30_000);
    const accepted = await pgCmd('start');
    assert.equal(accepted.status, 200, accepted.text);
    assert.equal((await waitForJob(c.mgr.url, accepted.body.job_id)).result, 'succeed');
    assert.equal(c.mgr.pid, pid);
  });

  it('refuses to start on a read-only state file with one clear sentence', async () => {
    await c.mgr.stop('SIGKILL');
    await chattr('+i', diskStateDir);
    try {
      const failure = await startNodeMgrProcess(path.join(c.root, 'mgr'), c.config, 60_000).then(
        async (mgr) => {
          await mgr.stop('SIGKILL');
          return 'started';
        },
        (err: Error) => err.message,
      );
      report.readOnlyStart = failure.split('\n').find((l) => /read-only/.test(l))?.slice(0, 300) ?? failure.slice(0, 300);
      assert.match(failure, /state file .*read-only/);
    } finally {
      await chattr('-i', diskStateDir);
    }
    await c.restart();
    await waitForNode(c.mgr.url, c.nodes.computer!.port, (x) => x.state === 'running');
  });

  it('a cold backup whose staging disk fills up fails with a clear sentence, leaves nothing behind, and works once there is room', async () => {
    const node = c.nodes.storage!;
    const before = await waitForNode(c.mgr.url, node.port, (x) => x.state === 'running');
    const body = { ver: '0.1', job_type: 'coldbackup', s_ip: '127.0.0.1', s_port: node.port, s_user: ADMIN.user, s_pwd: ADMIN.password };
    const submitted = await legacy(c.mgr.url, body);
    assert.equal(submitted.status, 200, submitted.text);
    const failed = await waitForJob(c.mgr.url, submitted.body.job_id, 120_000);
    report.stagingFullBackup = String(failed.info).slice(0, 300);
    assert.equal(failed.result, 'error', JSON.stringify(failed));
    assert.match(failed.info, /space|full|ENOSPC/i);
    assert.doesNotMatch(failed.info, /\n/);
    // The node goes on serving, nothing is left staged, and no archive is visible in the store.
    const after = await waitForNode(c.mgr.url, node.port, (x) => x.state === 'running');
    assert.equal(after.pid, before.pid);
    assert.deepEqual(readdirSync(stagingDir), []);
    const stored = readdirSync(backupDir, { recursive: true }).map(String);
    assert.deepEqual(stored.filter((f) => /\.tgz/.test(f)), [], `store holds ${stored.join(', ')}`);
    assert.equal(await isAlive(c.mgr.pid), true);

    await run('mount', ['-o', 'remount,size=512m', stagingDir]);
    const again = await legacy(c.mgr.url, body);
    const done = await waitForJob(c.mgr.url, again.body.job_id, 180_000);
    assert.equal(done.result, 'succeed', JSON.stringify(done));
    assert.ok(existsSync(path.join(backupDir, done.output.file)));
    assert.deepEqual(readdirSync(stagingDir), []);
  });
});

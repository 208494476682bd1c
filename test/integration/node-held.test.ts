// A node that is backing up is held by that job (PROTOCOL §1/§4): a restore, a stop or a second
// backup of it, by the seed's POST / or by REST, is refused at once with a 409 naming the job,
// never queued to run after it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, killProcessGroups, legacy, startNodeMgrProcess, waitForJob, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { ADMIN, changeMysqlData, loadMysqlData, mysqlChecksums, runLegacyJob } from '../support/backup-data.ts';
import { freezeDescendant, type FrozenChild } from '../support/child-procs.ts';

describe('requests that conflict with a running backup', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let port: number;
  let frozen: FrozenChild | undefined;
  const pids: number[] = [];
  const seed = (job_type: string, extra: Record<string, unknown> = {}) =>
    legacy(mgr.url, { ver: '0.1', job_type, s_ip: '127.0.0.1', s_port: port, s_user: ADMIN.user, s_pwd: ADMIN.password, ...extra });

  before(async () => {
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      policy: { probe: { intervalMs: 1000, startTimeoutMs: 60_000 } },
      backup: { store: 'local', localDir: path.join(root, 'backups') },
      nodes: [{ kind: 'mysql', role: 'storage', port, dir: path.join(root, 'storage'), cluster: 'c1', shard: 's1', ...ADMIN }],
    });
    const created = await api(mgr.url, 'POST', `/v1/nodes/${port}/create`);
    assert.equal(created.status, 200, created.text);
    pids.push(created.body.pid);
    // Two tables at least: changeMysqlData drops one.
    await loadMysqlData(port, 40);
  });

  after(async () => {
    frozen?.thaw();
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('seed coldrestore, mysql_cmd stop and a second coldbackup (and their REST forms) get 409 naming the backup job; the data stays as it is', async () => {
    // An older backup to restore from: had the restore been queued, it would bring this data back.
    const older = await runLegacyJob(mgr.url, { ver: '0.1', job_type: 'coldbackup', s_ip: '127.0.0.1', s_port: port, s_user: ADMIN.user, s_pwd: ADMIN.password });
    assert.equal(older.result, 'succeed', JSON.stringify(older));
    await changeMysqlData(port);
    const current = await mysqlChecksums(port);
    const pid = (await waitForNode(mgr.url, port, (n) => n.state === 'running')).pid;

    const started = await seed('coldbackup', { job_id: 'held-backup-1' });
    assert.equal(started.status, 200, started.text);
    // mariabackup stopped where it is: the backup certainly holds the node while the requests come.
    frozen = await freezeDescendant(mgr.pid, 'mariabackup', 60_000);

    const refused = {
      'seed coldrestore': await seed('coldrestore', { file: older.output.file }),
      'seed mysql_cmd stop': await legacy(mgr.url, { ver: '0.1', job_type: 'mysql_cmd', cmd: `./stopmysql.sh ${port}` }),
      'seed second coldbackup': await seed('coldbackup'),
      'REST restore': await api(mgr.url, 'POST', `/v1/nodes/${port}/restore`, { file: older.output.file }),
      'REST backup': await api(mgr.url, 'POST', `/v1/nodes/${port}/backup`, {}),
      'REST stop': await api(mgr.url, 'POST', `/v1/nodes/${port}/stop`),
    };
    for (const [what, r] of Object.entries(refused)) {
      assert.equal(r.status, 409, `${what}: ${r.text}`);
      assert.equal(r.body.result, 'error', `${what}: ${r.text}`);
      assert.match(r.body.info, /held-backup-1/, `${what}: ${r.text}`);
      assert.match(r.body.info, /backing up/, `${what}: ${r.text}`);
    }
    assert.match(refused['seed coldrestore'].body.info, /coldrestore was refused, not queued/);
    // The idempotent repeat of the backup itself is no conflict: the same job comes back.
    const repeat = await seed('coldbackup', { job_id: 'held-backup-1' });
    assert.equal(repeat.status, 200, repeat.text);
    assert.equal(repeat.body.job_id, 'held-backup-1');

    frozen.thaw();
    frozen = undefined;
    const done = await waitForJob(mgr.url, 'held-backup-1', 180_000);
    assert.equal(done.result, 'succeed', JSON.stringify(done));
    // Nothing ran after the backup: no restore, no stop; the node runs on its data as it was.
    const jobs = (await api(mgr.url, 'GET', '/v1/jobs')).body as { type: string; status: string }[];
    assert.deepEqual(jobs.filter((j) => j.status === 'queued' || j.status === 'running'), []);
    assert.equal(jobs.filter((j) => j.type === 'coldrestore' || j.type === 'mysql_cmd').length, 0, JSON.stringify(jobs));
    const after = await waitForNode(mgr.url, port, (n) => n.state === 'running');
    assert.equal(after.pid, pid);
    assert.deepEqual(await mysqlChecksums(port), current);
  });
});

// update_node: nodes listed by the Kunlun metadata DB or by cluster_mgr appear in get_node; a node
// removed there stops being supervised, and its server is left running.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, tempNodeDir, removeTempDirs, TEST_RUN_AS } from '../support/nodes.ts';
import { api, isRunning, killProcessGroups, legacy, startNodeMgrProcess, waitForJob, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { startMetaDb, type MetaDb } from '../support/meta-db.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('update_node with real discovery sources', () => {
  let root: string;
  let baseDir: string;
  let metaDb: MetaDb;
  let storagePort: number;
  let storagePid: number;
  let standin: ChildProcess | undefined;
  let mgr: NodeMgrProcess | undefined;

  before(async () => {
    root = path.dirname(await tempNodeDir());
    baseDir = path.join(root, 'kunlun');
    storagePort = await freePort();
    metaDb = await startMetaDb();
    // A storage node created by an earlier node-mgr: it keeps running after that node-mgr stops.
    const first = await startNodeMgrProcess(path.join(root, 'first'), {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'first-state'),
      runAs: TEST_RUN_AS,
      nodes: [{ kind: 'mysql', role: 'storage', port: storagePort, dir: path.join(baseDir, String(storagePort)), user: 'pgx', password: 'pgx_pwd' }],
    });
    const created = await api(first.url, 'POST', `/v1/nodes/${storagePort}/create`);
    assert.equal(created.status, 200, created.text);
    storagePid = created.body.pid;
    await first.stop('SIGTERM');
    await metaDb.addStorageNode({ hostaddr: '127.0.0.1', port: storagePort, cluster: 'clust9', shard: 'shard9' });
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    standin?.kill('SIGKILL');
    await killProcessGroups([storagePid]);
    await metaDb?.stop();
    await removeTempDirs();
  });

  async function startWith(discovery: Record<string, unknown>, name: string) {
    return startNodeMgrProcess(path.join(root, name), {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, `${name}-state`),
      runAs: TEST_RUN_AS,
      discovery: { ...discovery, baseDir },
    });
  }

  async function updateNode(url: string) {
    const job = (await legacy(url, { ver: '0.1', job_type: 'update_node' })).body;
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    const done = await waitForJob(url, job.job_id);
    assert.equal(done.result, 'succeed', JSON.stringify(done));
    return done;
  }

  it('adopts the storage node the metadata DB lists, with its cluster and shard', async () => {
    mgr = await startWith({ source: 'metadata_db', metadataDb: { host: metaDb.host, port: metaDb.port, user: metaDb.user, password: metaDb.password } }, 'meta');
    await updateNode(mgr.url);
    const n = await waitForNode(mgr.url, storagePort, (x) => x.state === 'running');
    assert.equal(n.pid, storagePid);
    const reply = (await legacy(mgr.url, { ver: '0.1', job_type: 'get_node', node_type: 'storage_node' })).body;
    assert.equal(reply.storage_node0.port, storagePort);
    assert.equal(reply.storage_node0.cluster, 'clust9');
    assert.equal(reply.storage_node0.shard, 'shard9');
    assert.equal(reply.storage_node0.state, 'running');
  });

  it('stops supervising a node removed from the metadata DB and leaves its server running', async () => {
    await metaDb.removeNode(storagePort);
    await updateNode(mgr!.url);
    const reply = (await legacy(mgr!.url, { ver: '0.1', job_type: 'get_node' })).body;
    assert.deepEqual(reply, {});
    assert.equal((await api(mgr!.url, 'GET', `/v1/nodes/${storagePort}`)).status, 404);
    assert.equal(await isRunning(storagePid), true);
    await mgr!.stop('SIGTERM');
    mgr = undefined;
  });

  it('learns the same node from the cluster_mgr stand-in, which answers from the metadata DB', async () => {
    await metaDb.addStorageNode({ hostaddr: '127.0.0.1', port: storagePort, cluster: 'clust9', shard: 'shard9' });
    const cmPort = await freePort();
    standin = spawn(process.execPath, [
      path.join(ROOT, 'test/support/cluster-mgr-standin.mjs'),
      '--port', String(cmPort),
      '--pidfile', path.join(root, 'standin.pid'),
      '--meta-host', metaDb.host,
      '--meta-port', String(metaDb.port),
      '--meta-user', metaDb.user,
      '--meta-password', metaDb.password,
    ], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if ((await fetch(`http://127.0.0.1:${cmPort}/health`).catch(() => null))?.ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    mgr = await startWith({ source: 'cluster_mgr', clusterMgrUrl: `http://127.0.0.1:${cmPort}` }, 'cm');
    await updateNode(mgr.url);
    const n = await waitForNode(mgr.url, storagePort, (x) => x.state === 'running');
    assert.equal(n.pid, storagePid);
    assert.equal(n.shard, 'shard9');
    await metaDb.removeNode(storagePort);
    await updateNode(mgr.url);
    assert.equal((await api(mgr.url, 'GET', `/v1/nodes/${storagePort}`)).status, 404);
    assert.equal(await isRunning(storagePid), true);
  });
});

// SIGHUP re-reads the config file: policies, static nodes and the per-request security settings
// change without a restart, and without touching the servers that run. Light fake cluster_mgr
// processes stand in for the nodes (the reload path is the same for every kind).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { sendSignal } from '../../src/host/process-info.ts';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { execa } from 'execa';
import { api, createNode, BIN, killProcessGroups, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { fakeClusterMgrEntry } from '../support/fake-cluster-mgr-nodes.ts';

const restart = (initialDelayMs: number) => ({ initialDelayMs, maxDelayMs: 60_000, jitter: 0, stableAfterMs: 60_000, maxRestarts: 10, windowMs: 60_000 });

describe('SIGHUP reloads the config file', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let file: string;
  let config: Record<string, any>;
  let a: number;
  let b: number;
  const pids: number[] = [];

  const rewrite = (next: Record<string, any> | string) => {
    writeFileSync(file, typeof next === 'string' ? next : JSON.stringify(next, null, 2));
    sendSignal(mgr.pid, 'SIGHUP');
  };
  const reloads = () => mgr.lines.filter((l) => l.includes('config reloaded') || l.includes('config not reloaded'));
  const nextReload = async (seen: number) => {
    for (let i = 0; i < 100 && reloads().length === seen; i++) await new Promise((r) => setTimeout(r, 50));
    return reloads()[seen];
  };

  before(async () => {
    root = path.dirname(await tempNodeDir());
    [a, b] = [await freePort(), await freePort()];
    config = {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      security: { token: 'token-one' },
      policy: { restart: restart(100) },
      nodes: [fakeClusterMgrEntry(root, a)],
    };
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    file = path.join(root, 'mgr', 'node-mgr.json');
    pids.push(await createNode(mgr.url, a, { authorization: 'Bearer token-one' }));
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('applies a new restart policy to a running node without touching its process', async () => {
    const before_ = await waitForNode(mgr.url, a, (n) => n.state === 'running');
    const seen = reloads().length;
    config = { ...config, policy: { restart: restart(4000) } };
    rewrite(config);
    assert.match(await nextReload(seen), /config reloaded/);
    const after_ = await waitForNode(mgr.url, a, (n) => n.policy.restart.initialDelayMs === 4000);
    assert.equal(after_.pid, before_.pid);
    assert.equal(after_.state, 'running');
    sendSignal(after_.pid, 'SIGKILL');
    const crashed = await waitForNode(mgr.url, a, (n) => n.state === 'backoff');
    assert.equal(crashed.backoffMs, 4000, 'the next backoff follows the reloaded policy');
    pids.push((await waitForNode(mgr.url, a, (n) => n.state === 'running' && n.pid !== after_.pid, 20_000)).pid);
  });

  it('starts a node added to the file, and re-registers a changed one, adopting its running server', async () => {
    const seen = reloads().length;
    const entryA = { ...fakeClusterMgrEntry(root, a), policy: { probe: { intervalMs: 1500 } } };
    config = { ...config, nodes: [entryA, fakeClusterMgrEntry(root, b)] };
    const pidA = (await waitForNode(mgr.url, a, (n) => n.state === 'running')).pid;
    rewrite(config);
    assert.match(await nextReload(seen), /config reloaded/);
    // Like a node in the file at start-up: supervised at once, started once created.
    const listed = await waitForNode(mgr.url, b, (n) => n.state === 'stopped');
    assert.equal(listed.source, 'static');
    assert.match(listed.lastError, /not initialised/);
    const created = await api(mgr.url, 'POST', `/v1/nodes/${b}/create`, undefined, { authorization: 'Bearer token-one' });
    assert.equal(created.status, 200, created.text);
    pids.push(created.body.pid);
    const changed = await waitForNode(mgr.url, a, (n) => n.policy.probe.intervalMs === 1500 && n.state === 'running');
    assert.equal(changed.pid, pidA, 'the running server was adopted, not restarted');
  });

  it('swaps the API token: the old one is refused, the new one works', async () => {
    const seen = reloads().length;
    config = { ...config, security: { token: 'token-two' } };
    rewrite(config);
    assert.match(await nextReload(seen), /config reloaded/);
    const old = await api(mgr.url, 'POST', `/v1/nodes/${b}/pause`, { minutes: 1 }, { authorization: 'Bearer token-one' });
    assert.equal(old.status, 403, old.text);
    const fresh = await api(mgr.url, 'POST', `/v1/nodes/${b}/pause`, { minutes: 0 }, { authorization: 'Bearer token-two' });
    assert.equal(fresh.status, 200, fresh.text);
  });

  it('`node-mgr reload --config FILE` finds the running node-mgr by its pid file and reloads it', async () => {
    const seen = reloads().length;
    config = { ...config, policy: { restart: restart(3000) } };
    writeFileSync(file, JSON.stringify(config, null, 2));
    const cli = await execa(process.execPath, [BIN, 'reload', '--config', file]);
    assert.match(cli.stdout, new RegExp(`sent SIGHUP to node-mgr pid ${mgr.pid}`));
    assert.match(await nextReload(seen), /config reloaded/);
    await waitForNode(mgr.url, a, (n) => n.policy.restart.initialDelayMs === 3000);
    config = { ...config, policy: { restart: restart(4000) } };
    writeFileSync(file, JSON.stringify(config, null, 2));
    await execa(process.execPath, [BIN, 'reload', '--config', file]);
    await waitForNode(mgr.url, a, (n) => n.policy.restart.initialDelayMs === 4000);
  });

  it('refuses a second node-mgr on the same state dir, naming the first, which carries on', async () => {
    const second = { ...config, listen: { host: '127.0.0.1', port: await freePort() } };
    await assert.rejects(startNodeMgrProcess(path.join(root, 'mgr-second'), second, 30_000), new RegExp(`another node-mgr \\(pid ${mgr.pid}\\) is using the state dir`));
    assert.equal((await api(mgr.url, 'GET', '/healthz')).status, 200);
  });

  it('keeps every setting when the file does not load, and says why', async () => {
    const seen = reloads().length;
    rewrite('{ "policy": ');
    const line = await nextReload(seen);
    assert.match(line, /config not reloaded/);
    assert.match(line, /not valid JSON/);
    const n = await waitForNode(mgr.url, a, () => true);
    assert.equal(n.policy.restart.initialDelayMs, 4000);
    assert.equal((await api(mgr.url, 'POST', `/v1/nodes/${b}/pause`, { minutes: 0 }, { authorization: 'Bearer token-two' })).status, 200);

    const refused = reloads().length;
    rewrite({ ...config, listen: { host: '0.0.0.0', port: 1 }, security: {} });
    // listen waits for a restart; an API on loopback may go without a token.
    const applied = await nextReload(refused);
    assert.match(applied, /config reloaded/);
    assert.match(applied, /"restartNeeded":\["listen"\]/);
  });
});

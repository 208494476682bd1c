// A killed postmaster that nobody has reaped yet. An adopted server's parent is not node-mgr (it
// is the node-mgr that died, then init), and until that parent reaps it, the dead postmaster is a
// zombie whose pid still "exists": PostgreSQL reads it from postmaster.pid and refuses to start
// ("lock file already exists"). The benchmark saw this as a second crash and a 2 s backoff after
// 3 of 5 kills of adopted servers. Here the parent is a helper process held with SIGSTOP, so the
// zombie lasts exactly as long as the test wants.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { engineFor } from '../../src/engines/index.ts';
import { processState, sendSignal } from '../../src/host/process-info.ts';
import { freePort, makeSpec, removeTempDirs, TEST_RUN_AS } from '../support/nodes.ts';
import { spawnFromForeignParent } from '../support/foreign-parent.ts';
import { api, killProcessGroups, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';

describe('a killed postmaster that is still a zombie', () => {
  let helper: ChildProcess | undefined;
  let mgr: NodeMgrProcess | undefined;
  const pids: number[] = [];

  after(async () => {
    if (helper?.pid) sendSignal(helper.pid, 'SIGKILL');
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('is waited for, so that the restart after kill -9 of an adopted postgres succeeds the first time', async () => {
    const entry = { port: await freePort(), user: 'admin', password: 'admin_pwd' };
    const spec = await makeSpec('postgres', entry);
    const engine = engineFor('postgres');
    await engine.initDataDir(spec);
    await engine.writeServerConfig(spec);

    // The helper plays the node-mgr that started the server: it spawns postgres and stays its parent.
    const started = await spawnFromForeignParent(spec, { parentStays: true });
    helper = started.parent;
    const postmaster = started.pid;
    pids.push(postmaster);
    await engine.waitReady(spec, postmaster, AbortSignal.timeout(30_000));

    mgr = await startNodeMgrProcess(path.join(path.dirname(spec.dir), 'mgr'), {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(path.dirname(spec.dir), 'state'),
      runAs: TEST_RUN_AS,
      policy: { restart: { initialDelayMs: 100, maxDelayMs: 2000, jitter: 0, stableAfterMs: 60_000, maxRestarts: 5, windowMs: 60_000 } },
      nodes: [{ kind: 'postgres', role: 'computer', dir: spec.dir, ...entry }],
    });
    const adopted = await waitForNode(mgr.url, entry.port, (n) => n.state === 'running');
    assert.equal(adopted.pid, postmaster, 'node-mgr adopted the helper\'s server');

    sendSignal(helper.pid!, 'SIGSTOP');
    sendSignal(postmaster, 'SIGKILL');
    await waitForNode(mgr.url, entry.port, (n) => n.state !== 'running' || n.pid !== postmaster);
    assert.equal(await processState(postmaster), 'zombie', 'the stopped parent has not reaped it');
    // Well past the 100 ms backoff: without the wait, postgres would have been started and refused.
    await new Promise((r) => setTimeout(r, 1500));
    sendSignal(helper.pid!, 'SIGCONT');
    sendSignal(helper.pid!, 'SIGKILL');

    const back = await waitForNode(mgr.url, entry.port, (n) => n.state === 'running' && n.pid !== postmaster, 30_000);
    pids.push(back.pid);
    assert.equal(back.restarts, 1, `one restart, not a failed one first: ${JSON.stringify(back.lastExit)}`);
    const { transitions } = (await api(mgr.url, 'GET', `/v1/nodes/${entry.port}`)).body as { transitions: Array<{ to: string }> };
    assert.equal(transitions.filter((t) => t.to === 'crashed').length, 1, `crashed once, by the kill: ${transitions.map((t) => t.to).join(' ')}`);
  });
});

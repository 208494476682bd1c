// security.peerToken: the credential another host's node-mgr holds for this one (its peers[].token).
// It opens the /v1 reads and the two table-receive routes, and nothing else: whoever reads a peer
// host's config file can hand this host a table but not stop, drop or restore its nodes. A real
// node-mgr process with one real MariaDB node, reads closed (openReads false) so reads need it too.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, killProcessGroups, startNodeMgrProcess, type NodeMgrProcess } from '../support/node-mgr-process.ts';

const TOKEN = 'the-operators-token-of-this-host';
const PEER_TOKEN = 'what-the-other-hosts-hold-for-this-one';
const OPERATOR = { authorization: `Bearer ${TOKEN}` };
const PEER = { authorization: `Bearer ${PEER_TOKEN}` };
const ADMIN = { user: 'admin', password: 'admin_pwd' };

describe('the peer token', () => {
  let mgr: NodeMgrProcess;
  let port: number;
  let pid: number | undefined;

  before(async () => {
    const root = path.dirname(await tempNodeDir());
    port = await freePort();
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      security: { token: TOKEN, peerToken: PEER_TOKEN, openReads: false },
      nodes: [{ kind: 'mysql', role: 'storage', port, dir: path.join(root, 'node'), ...ADMIN }],
    });
    const created = await api(mgr.url, 'POST', `/v1/nodes/${port}/create`, undefined, OPERATOR);
    assert.equal(created.status, 200, created.text);
    pid = created.body.pid;
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await killProcessGroups([pid]);
    await removeTempDirs();
  });

  it('reads /v1 as a peer does when it looks up a node', async () => {
    const r = await api(mgr.url, 'GET', `/v1/nodes/${port}`, undefined, PEER);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.state, 'running');
    assert.equal((await api(mgr.url, 'GET', `/v1/nodes/${port}`)).status, 401);
  });

  it('opens the table-receive routes (the request then answered on its merits)', async () => {
    const preflight = await api(mgr.url, 'POST', '/v1/recv/table/preflight', { destination: { port } }, PEER);
    assert.equal(preflight.status, 400, preflight.text);
    assert.match(preflight.body.info ?? preflight.text, /recv preflight: field/);
    const stream = await api(mgr.url, 'POST', '/v1/recv/table', 'not a table stream', { ...PEER, 'content-type': 'text/plain' });
    assert.notEqual(stream.status, 401, stream.text);
    assert.notEqual(stream.status, 403, stream.text);
    assert.equal((await api(mgr.url, 'POST', '/v1/recv/table/preflight', { destination: { port } })).status, 401);
  });

  it('is refused with 403 for everything that operates nodes, on the REST and the seed face, and the node keeps running', async () => {
    for (const [method, route, body] of [
      ['POST', `/v1/nodes/${port}/stop`, undefined],
      ['DELETE', `/v1/nodes/${port}`, undefined],
      ['POST', `/v1/nodes/${port}/backup`, {}],
      ['POST', '/', { ver: '0.1', job_type: 'mysql_cmd', s_ip: '127.0.0.1', s_port: port, s_user: ADMIN.user, s_pwd: ADMIN.password, cmd: 'stop' }],
    ] as const) {
      const r = await api(mgr.url, method, route, body, PEER);
      assert.equal(r.status, 403, `${method} ${route}: ${r.text}`);
      assert.match(r.text, /peer token \(security\.peerToken\) opens only a peer's reads and table sends/);
    }
    const n = await api(mgr.url, 'GET', `/v1/nodes/${port}`, undefined, OPERATOR);
    assert.equal(n.body.state, 'running');
    assert.equal(n.body.pid, pid);
  });

  it('cannot be configured alone or equal to the token', async () => {
    const { parseConfig } = await import('../../src/config/load.ts');
    assert.throws(() => parseConfig({ security: { peerToken: PEER_TOKEN } }), /peerToken.*needs security\.token or security\.allowFrom/s);
    assert.throws(() => parseConfig({ security: { token: PEER_TOKEN, peerToken: PEER_TOKEN } }), /peerToken.*must differ from security\.token/s);
  });
});

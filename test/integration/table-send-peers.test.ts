// A table send goes only to a node of this host or to a peer node-mgr listed in the config, and
// presents that peer's token, never node-mgr's own. A real node-mgr with a real MariaDB source
// node; the "other hosts" are plain sockets on loopback addresses that record who connected and
// what they were sent (a fake peer, since only the caller's side is under test here).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, killProcessGroups, startNodeMgrProcess, waitForJob, type NodeMgrProcess } from '../support/node-mgr-process.ts';

const TOKEN = 'own-token-of-this-node-mgr';
const PEER_TOKEN = 'token-of-the-peer-at-127.0.0.7';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const ADMIN = { user: 'admin', password: 'admin_pwd' };
const UNKNOWN = '127.0.0.9';
const PEER = '127.0.0.7';

describe('table sends go only to known node-mgrs, with their own credential', () => {
  let root: string;
  let apiPort: number;
  let srcPort: number;
  let mgr: NodeMgrProcess;
  let pid: number | undefined;
  let unknownHost: net.Server;
  let peerHost: http.Server;
  let unknownConnections = 0;
  const peerRequests: Array<{ url: string; authorization?: string; body: string }> = [];

  const send = (dIp: string, dPort: number) =>
    api(mgr.url, 'POST', '/', {
      ver: '0.1', job_type: 'send', file_type: 'table',
      s_ip: '127.0.0.1', s_port: srcPort, s_user: ADMIN.user, s_pwd: ADMIN.password, s_dbname: 'shop', s_table_name: 'orders',
      d_ip: dIp, d_port: dPort, d_user: 'victim', d_pwd: 'destination-secret', d_dbname: 'shop', d_table_name: 'orders',
    }, AUTH);

  before(async () => {
    root = path.dirname(await tempNodeDir());
    apiPort = await freePort();
    srcPort = await freePort();
    // What an attacker would point d_ip at: anything that connects is counted.
    unknownHost = net.createServer((sock) => {
      unknownConnections++;
      sock.destroy();
    });
    await new Promise<void>((resolve, reject) => unknownHost.once('error', reject).listen(apiPort, UNKNOWN, resolve));
    // A configured peer: records each request and refuses the table (the import side is not under test).
    peerHost = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        peerRequests.push({ url: req.url ?? '', authorization: req.headers.authorization, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(409, { 'content-type': 'application/json' }).end(JSON.stringify({ result: 'error', info: 'the fake peer takes no tables' }));
      });
    });
    await new Promise<void>((resolve, reject) => peerHost.once('error', reject).listen(apiPort, PEER, resolve));
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port: apiPort },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      security: { token: TOKEN },
      peers: [{ host: PEER, token: PEER_TOKEN }],
      nodes: [{ kind: 'mysql', role: 'storage', port: srcPort, dir: path.join(root, 'src'), ...ADMIN }],
    });
    const created = await api(mgr.url, 'POST', `/v1/nodes/${srcPort}/create`, undefined, AUTH);
    assert.equal(created.status, 200, created.text);
    pid = created.body.pid;
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: srcPort, ...ADMIN, multipleStatements: true });
    await conn.query('CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO shop.orders VALUES (1), (2);');
    await conn.end();
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await killProcessGroups([pid]);
    unknownHost?.close();
    peerHost?.close();
    await removeTempDirs();
  });

  it('refuses a d_ip that is neither a node of this host nor a configured peer with a 4xx, before any job or connection', async () => {
    // 127.0.0.9 is a loopback address, so it counts as this host: 404 (no such node here); a
    // foreign address gets 400 (see the unit test). Either way, not a configured peer.
    const r = await send(UNKNOWN, 3306);
    assert.ok(r.status === 404 || r.status === 400, r.text);
    assert.equal(r.body.result, 'error');
    assert.match(r.body.info, /127\.0\.0\.9 is not a configured peer/);
    // Give a wrongly started job every chance to connect.
    await new Promise((res) => setTimeout(res, 1500));
    assert.equal(unknownConnections, 0, 'node-mgr connected to the unknown d_ip');
    assert.deepEqual((await api(mgr.url, 'GET', '/v1/jobs?type=send', undefined, AUTH)).body, []);
  });

  it('refuses a local address without such a node (404), rather than calling a node-mgr there', async () => {
    const r = await send('127.0.0.1', 1);
    assert.equal(r.status, 404, r.text);
  });

  it('sends to a configured peer with the peer\'s token, never its own', async () => {
    const r = await send(PEER, 3306);
    assert.equal(r.status, 200, r.text);
    const job = await waitForJob(mgr.url, r.body.job_id);
    assert.notEqual(job.result, 'succeed');
    assert.match(JSON.stringify(job), /the fake peer takes no tables/);
    assert.equal(peerRequests.length, 1, JSON.stringify(peerRequests));
    assert.equal(peerRequests[0]!.url, '/v1/recv/table/preflight');
    assert.equal(peerRequests[0]!.authorization, `Bearer ${PEER_TOKEN}`);
    assert.ok(!peerRequests.some((p) => p.authorization?.includes(TOKEN) || p.body.includes(TOKEN)), 'node-mgr sent its own token to a peer');
    assert.equal(unknownConnections, 0);
  });
});

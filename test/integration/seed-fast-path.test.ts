// The seed polls (POST / with get_node, get_status, get_info) are answered before fastify, from
// replies prepared when what they show changes (src/http/seed-fast-path.ts, seed-replies.ts).
// These tests hold that path to what fastify answered before it existed: the same bytes, the same
// read rules, a reply as fresh as a build at that moment, and every other request untouched.
// node-mgr runs in this process so that the tests can count what the fast path answered.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { parseConfig } from '../../src/config/load.ts';
import { startNodeMgr, type NodeMgr } from '../../src/daemon.ts';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { fakeClusterMgrEntry } from '../support/fake-cluster-mgr-nodes.ts';
import { api, createNode, killProcessGroups, waitForJob, waitForNode } from '../support/node-mgr-process.ts';
import { rawRequest } from '../support/raw-http.ts';

const TOKEN = 'fast-path-token';

/** One request on its own connection; the reply read until the server closes (or `Connection: close` after keep-alive). */
function exchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.connect(port, '127.0.0.1', () => sock.write(request));
    sock.setTimeout(30_000, () => sock.destroy(new Error('no reply within 30 s')));
    sock.on('data', (c) => {
      chunks.push(c);
      // A kept-alive connection stays open: stop once the whole body is in.
      const text = Buffer.concat(chunks).toString();
      const head = text.indexOf('\r\n\r\n');
      const length = /\r\nContent-Length: (\d+)\r\n/.exec(text.slice(0, head + 2));
      if (head >= 0 && length && Buffer.byteLength(text) - (head + 4) >= Number(length[1])) sock.destroy();
    });
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}

/** The same POST / framed with Content-Length (the fast path's) or chunked (which only fastify takes). */
function post(json: string, framing: 'length' | 'chunked', head: string): string {
  if (framing === 'length') return `${head}Content-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`;
  return `${head}Transfer-Encoding: chunked\r\n\r\n${Buffer.byteLength(json).toString(16)}\r\n${json}\r\n0\r\n\r\n`;
}

const split = (raw: string) => {
  const i = raw.indexOf('\r\n\r\n');
  return { head: raw.slice(0, i), body: raw.slice(i + 4) };
};

async function start(root: string, name: string, extra: Record<string, unknown>): Promise<NodeMgr> {
  const port = await freePort();
  const config = parseConfig({
    listen: { host: '127.0.0.1', port },
    stateDir: path.join(root, `${name}-state`),
    runAs: TEST_RUN_AS,
    ...extra,
  });
  return startNodeMgr(config, { log: pino({ level: 'silent' }) });
}

const portOf = (mgr: NodeMgr) => Number(new URL(mgr.url).port);

describe('the seed polls answered before fastify', () => {
  let root: string;
  let mgr: NodeMgr;
  let port: number;
  const ports = { meta: 0, storage: 0, computer: 0 };
  const pids: number[] = [];

  before(async () => {
    root = path.dirname(await tempNodeDir());
    for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freePort();
    mgr = await start(root, 'open', {
      security: { requestTimeoutMs: 1_000 },
      nodes: [
        // Configured and never created: `stopped`, whose members do not move with the clock.
        { kind: 'mysql', role: 'meta', port: ports.meta, dir: path.join(root, 'meta'), cluster: 'meta', user: 'pgx', password: 'pgx_pwd' },
        { kind: 'mysql', role: 'storage', port: ports.storage, dir: path.join(root, 'storage'), cluster: 'c1', shard: 's1', user: 'pgx', password: 'pgx_pwd' },
        // A light process that runs: a computer node whose uptime_s moves every second.
        { ...fakeClusterMgrEntry(root, ports.computer), role: 'computer', cluster: 'c1' },
      ],
    });
    port = portOf(mgr);
    pids.push(await createNode(mgr.url, ports.computer));
    await waitForNode(mgr.url, ports.computer, (n) => n.state === 'running');
  });

  after(async () => {
    await mgr?.close({ stopNodes: true });
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('sends the bytes fastify sends for the same request, however the request is framed', async () => {
    const framings = [
      ['HTTP/1.0 (the original clients)', 'POST / HTTP/1.0\r\nHOST: 127.0.0.1\r\nAccept: */*\r\nContent-Type:application/x-www-form-urlencoded\r\n'],
      ['HTTP/1.0 asking for keep-alive', 'POST / HTTP/1.0\r\nConnection: keep-alive\r\n'],
      ['HTTP/1.1 keep-alive (cluster_mgr, curl)', `POST / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/x-www-form-urlencoded\r\n`],
      ['HTTP/1.1 closing', `POST / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n`],
    ];
    // Chunked bodies are for HTTP/1.1 only; the HTTP/1.0 framings compare with a body fastify gets another way below.
    const bodies = [
      '{"ver":"0.1","job_type":"get_node","node_type":"storage_node"}',
      '{"ver":"0.1","job_type":"get_node","node_type":"meta_node","node_ip0":"127.0.0.1"}',
      '{"ver":"0.1","job_type":"get_status","job_id":"no-such-job"}',
    ];
    for (const [what, head] of framings) {
      for (const json of bodies) {
        const served = mgr.http.seedFastPath.served;
        const fast = await exchange(port, post(json, 'length', head!));
        assert.equal(mgr.http.seedFastPath.served, served + 1, `${what} ${json}: answered by the fast path`);
        assert.match(fast, /^HTTP\/1\.1 200 OK\r\nContent-Type: application\/json\r\nContent-Length: \d+\r\nConnection: (close|keep-alive\r\nKeep-Alive: timeout=65)\r\n\r\n\{/, what);
        if (head!.includes('HTTP/1.1')) {
          const slow = await exchange(port, post(json, 'chunked', head!));
          assert.equal(mgr.http.seedFastPath.served, served + 1, `${what} ${json}: the chunked one went to fastify`);
          assert.equal(fast, slow, `${what} ${json}`);
        }
      }
    }
    // An HTTP/1.0 request fastify answers: the same body with a query string (the route is still /).
    const json = bodies[0]!;
    const viaFastify = await exchange(port, `POST /?x=1 HTTP/1.0\r\nContent-Length: ${json.length}\r\n\r\n${json}`);
    assert.equal(await exchange(port, `POST / HTTP/1.0\r\nContent-Length: ${json.length}\r\n\r\n${json}`), viaFastify);
  });

  it('answers get_info with the headers and fields fastify sends', async () => {
    const json = '{"ver":"0.1","job_type":"get_info"}';
    const head = `POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n`;
    // The first get_info after start waits for the host's first samples: that one is fastify's.
    await exchange(port, post(json, 'chunked', head));
    const served = mgr.http.seedFastPath.served;
    const fast = split(await exchange(port, post(json, 'length', head)));
    const slow = split(await exchange(port, post(json, 'chunked', head)));
    assert.equal(mgr.http.seedFastPath.served, served + 1);
    assert.equal(fast.head.replace(/Content-Length: \d+/, ''), slow.head.replace(/Content-Length: \d+/, ''));
    assert.equal(fast.head.match(/Content-Length: (\d+)/)![1], String(Buffer.byteLength(fast.body)));
    const [a, b] = [JSON.parse(fast.body), JSON.parse(slow.body)];
    assert.deepEqual(Object.keys(a), Object.keys(b));
    assert.deepEqual([a.meta_node, a.storage_node, a.computer_node], [1, 1, 1]);
    assert.deepEqual(a.disks, b.disks);
  });

  it('hands every other request to fastify with its body intact', async () => {
    const cases: Array<[string, number, RegExp]> = [
      ['{"ver":"0.1","job_type":"auto_pullup","minutes":0}', 200, /^\{"result":"succeed"\}$/],
      ['{"ver":"0.1","job_type":"get_status","job_id":"bad id!"}', 400, /job_id may hold only/],
      ['{"ver":"0.1","job_type":"get_node","node_type":"router"}', 400, /node_type/],
      ['{"ver":1,"job_type":"get_info"}', 400, /field "ver"/],
      ['{"ver":"0.1","job_type":', 400, /not valid JSON/],
      ['["get_node"]', 400, /must be a JSON object/],
      ['{"ver":"0.1","job_type":"format_disk"}', 400, /unknown job_type/],
    ];
    const served = mgr.http.seedFastPath.served;
    // Twice: the second time, what each body asks for is known already (the fast path keeps it by the body's text).
    for (const [json, status, info] of [...cases, ...cases]) {
      const r = split(await rawRequest(port, `POST / HTTP/1.0\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`));
      assert.ok(r.head.startsWith(`HTTP/1.1 ${status} `), `${json}: ${r.head}`);
      assert.match(status === 200 ? r.body : JSON.parse(r.body).info, info, json);
    }
    // Without Host an HTTP/1.1 request is fastify's 400.
    const noHost = await rawRequest(port, 'POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: 35\r\n\r\n{"ver":"0.1","job_type":"get_info"}');
    assert.match(noHost, /^HTTP\/1\.1 400 [^]*needs a Host header/);
    assert.equal(mgr.http.seedFastPath.served, served, 'none of these was answered by the fast path');
  });

  it('counts every poll it answers in the request-latency histogram, as fastify would', async () => {
    const count = async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const m = /^nodemgr_http_request_duration_seconds_count\{method="POST",route="\/",status_code="200"\} (\d+)$/m.exec(text);
      return m ? Number(m[1]) : 0;
    };
    const json = '{"ver":"0.1","job_type":"get_node","node_type":"storage_node"}';
    const before = await count();
    const served = mgr.http.seedFastPath.served;
    for (let i = 0; i < 3; i++) await exchange(port, post(json, 'length', 'POST / HTTP/1.0\r\n'));
    assert.equal(mgr.http.seedFastPath.served, served + 3);
    assert.equal(await count(), before + 3);
  });

  it('cuts off a poll whose body does not arrive within requestTimeoutMs', async () => {
    const reply = await rawRequest(port, 'POST / HTTP/1.0\r\nContent-Length: 35\r\n\r\n{"ver":"0.1"');
    assert.match(reply, /^HTTP\/1\.1 408 [^]*did not arrive in time/);
  });

  it('gives a get_node as fresh as one built at that moment: uptime_s, state and secrets', async () => {
    const json = '{"ver":"0.1","job_type":"get_node"}';
    const ask = async () => JSON.parse(split(await rawRequest(port, `POST / HTTP/1.0\r\nContent-Length: ${json.length}\r\n\r\n${json}`)).body);
    // uptime_s = round((reply time − since) / 1000): whatever the reply, it lies between the values at send and receipt.
    for (let i = 0; i < 12; i++) {
      const t0 = Date.now();
      const reply = await ask();
      const t1 = Date.now();
      const c = reply.computer_node0;
      const since = Date.parse(c.since);
      assert.equal(c.state, 'running');
      assert.ok(c.uptime_s >= Math.round((t0 - since) / 1000) && c.uptime_s <= Math.round((t1 - since) / 1000), `uptime_s ${c.uptime_s} at ${t0 - since}–${t1 - since} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
    // A change of state shows in the next reply: START of the storage node that was never created
    // goes to preflight and fails back to stopped, a new `since`.
    const before = (await ask()).storage_node0;
    assert.equal(before.state, 'stopped');
    await api(mgr.url, 'POST', `/v1/nodes/${ports.storage}/start`);
    const after = (await ask()).storage_node0;
    assert.equal(after.state, 'stopped');
    assert.ok(Date.parse(after.since) > Date.parse(before.since), `${before.since} → ${after.since}`);
    // exposeSecrets is read per request: reloaded, it shows in the next reply.
    assert.equal(after.pwd, '******');
    mgr.reload(parseConfig({ ...configOf(mgr), security: { ...mgr.config.security, exposeSecrets: true } }));
    assert.equal((await ask()).storage_node0.pwd, 'pgx_pwd');
  });

  it('gives a get_status as fresh as the job', async () => {
    const json = '{"ver":"0.1","job_type":"get_status","job_id":"fresh-job"}';
    const ask = async () => JSON.parse(split(await rawRequest(port, `POST / HTTP/1.0\r\nContent-Length: ${json.length}\r\n\r\n${json}`)).body);
    assert.equal((await ask()).job_status, 'none');
    const r = await api(mgr.url, 'POST', '/', { ver: '0.1', job_type: 'mysql_cmd', job_id: 'fresh-job', cmd: `./stopmysql.sh ${ports.meta}` });
    assert.equal(r.status, 200, r.text);
    assert.notEqual((await ask()).job_status, 'none');
    const done = await waitForJob(mgr.url, 'fresh-job');
    assert.equal(done.result, 'succeed', JSON.stringify(done));
    // GET /<job_id> is answered by fastify, from the same job.
    assert.deepEqual(await ask(), (await api(mgr.url, 'GET', '/fresh-job')).body);
  });
});

describe('the seed polls before fastify keep the read rules', () => {
  let root: string;
  let mgr: NodeMgr;
  let port: number;

  before(async () => {
    root = path.dirname(await tempNodeDir());
    mgr = await start(root, 'closed', { security: { token: TOKEN, openReads: false } });
    port = portOf(mgr);
  });

  after(async () => {
    await mgr?.close();
    await removeTempDirs();
  });

  it('answers a read without a credential with fastify\'s 401, and one with the token at once', async () => {
    const json = '{"ver":"0.1","job_type":"get_status","job_id":"x"}';
    const served = mgr.http.seedFastPath.served;
    const refused = await rawRequest(port, `POST / HTTP/1.0\r\nContent-Length: ${json.length}\r\n\r\n${json}`);
    assert.match(refused, /^HTTP\/1\.1 401 [^]*Authorization: Bearer <token>/);
    const wrong = await rawRequest(port, `POST / HTTP/1.0\r\nAuthorization: Bearer nope\r\nContent-Length: ${json.length}\r\n\r\n${json}`);
    assert.match(wrong, /^HTTP\/1\.1 403 /);
    assert.equal(mgr.http.seedFastPath.served, served);
    const ok = await rawRequest(port, `POST / HTTP/1.0\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: ${json.length}\r\n\r\n${json}`);
    assert.match(ok, /^HTTP\/1\.1 200 OK\r\n[^]*"job_status":"none"/);
    assert.equal(mgr.http.seedFastPath.served, served + 1);
  });

  it('leaves a request to fastify while node-mgr shuts down', async () => {
    const json = '{"ver":"0.1","job_type":"get_info"}';
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const served = mgr.http.seedFastPath.served;
    const replied = new Promise<string>((resolve) => {
      let text = '';
      sock.on('data', (c) => (text += c));
      sock.on('close', () => resolve(text));
    });
    const closing = mgr.close();
    sock.write(`POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: ${json.length}\r\n\r\n${json}`);
    const text = await replied;
    await closing;
    // Either the connection was closed before the request, or it got the 503 (never a prepared 200).
    if (text) assert.match(text, /^HTTP\/1\.1 503 /);
    assert.equal(mgr.http.seedFastPath.served, served);
  });
});

/** The raw config of a running node-mgr, to reload with a change. */
function configOf(mgr: NodeMgr): Record<string, unknown> {
  return JSON.parse(JSON.stringify(mgr.config));
}

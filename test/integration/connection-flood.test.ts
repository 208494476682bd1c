// Connection handling under a flood (docs/security.md, "Connection handling"). Every address of
// 127/8 is this host on Linux, so 127.0.0.2… stand for other machines; 127.0.0.1 is the local
// caller node-mgr never shuts out, and 127.0.0.99 is allow-listed (cluster_mgr's address).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { startNodeMgrProcess, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { buildSeedClient, seedPostPara, seedPostRaw } from '../support/seed-client.ts';

const run = promisify(execFile);
const TOKEN = 'flood-test-token';
const GET_NODE = '{"ver":"0.1","job_type":"get_node"}';

interface Held {
  socket: net.Socket;
  /** What the server sent (a refusal, when anything). */
  reply: string;
  closed: boolean;
}

/** Opens n connections from `source` that send nothing, 50 at a time (the listen backlog is finite). */
async function openIdle(port: number, source: string, n: number): Promise<Held[]> {
  const held: Held[] = [];
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, () => {
        const h: Held = { socket: net.connect({ port, host: '127.0.0.1', localAddress: source }), reply: '', closed: false };
        h.socket.on('data', (d) => (h.reply += d.toString('latin1')));
        h.socket.on('error', () => {});
        h.socket.on('close', () => (h.closed = true));
        held.push(h);
        return new Promise<void>((resolve) => {
          h.socket.once('connect', () => resolve());
          h.socket.once('close', () => resolve());
        });
      }),
    );
  }
  return held;
}

async function eventually(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const refusedWith = (held: Held[], status: number) => held.filter((h) => h.reply.startsWith(`HTTP/1.1 ${status} `));

function errorBodyOf(reply: string): { result: string; info: string } {
  const m = /\r\nContent-Length: (\d+)\r\n/.exec(reply);
  assert.ok(m, `no Content-Length: in ${JSON.stringify(reply)}`);
  return JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4, reply.indexOf('\r\n\r\n') + 4 + Number(m[1])));
}

describe('a flood of idle connections shuts out no one else', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let port: number;
  let url: string;
  const flood: Held[] = [];

  before(async () => {
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    // The default limits (512 in all, 64 per address); the header timeout is long here so that
    // the idle connections stay for the whole test (it has its own test below).
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      security: { token: TOKEN, allowFrom: ['127.0.0.99'], headersTimeoutMs: 600_000, idleTimeoutMs: 600_000 },
      nodes: [{ kind: 'mysql', role: 'storage', port: await freePort(), dir: path.join(root, 'storage'), cluster: 'c1', shard: 's1', user: 'pgx', password: 'pgx_pwd' }],
    });
    await buildSeedClient();
  });

  after(async () => {
    for (const h of flood) h.socket.destroy();
    await mgr?.stop('SIGKILL');
    await removeTempDirs();
  });

  it('600 idle connections from one address: 64 are held, the rest get a 429, and every other caller is served', async () => {
    const one = await openIdle(port, '127.0.0.2', 600);
    flood.push(...one);
    await eventually('536 refusals', () => refusedWith(one, 429).length >= 536);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(refusedWith(one, 429).length, 536);
    assert.equal(one.filter((h) => h.reply === '' && !h.closed).length, 64, 'held idle');
    assert.match(errorBodyOf(refusedWith(one, 429)[0]!.reply).info, /too many connections from 127\.0\.0\.2 \(64 open; security\.maxConnectionsPerSource\)/);

    // curl from the flooding address gets the refusal whole, as JSON.
    const { stdout } = await run('curl', ['-sS', '--interface', '127.0.0.2', '-d', GET_NODE, '-w', '\n%{http_code}', url]);
    const [refusal, code] = stdout.split('\n');
    assert.equal(code, '429');
    assert.equal(JSON.parse(refusal!).result, 'error');

    const local = await seedPostPara(url, GET_NODE);
    assert.match(local.stdout, /^result_str=\{"storage_node0":\{/);
    const other = await seedPostPara(url, GET_NODE, { bind: '127.0.0.3' });
    assert.match(other.stdout, /^result_str=\{"storage_node0":\{/);
  });

  it('many addresses together at security.maxConnections: loopback and allow-listed callers are still served, others get a 503', async () => {
    // 64 held from 127.0.0.2 already; 8 more addresses × 64 = 576 ordinary connections wanted, 512 allowed.
    const many = (await Promise.all(Array.from({ length: 8 }, (_, i) => openIdle(port, `127.0.0.${3 + i}`, 64)))).flat();
    flood.push(...many);
    await eventually('64 refusals', () => refusedWith(many, 503).length >= 64);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(refusedWith(many, 503).length, 64);
    assert.equal(refusedWith(many, 429).length, 0);

    // The original client from loopback, and an allow-listed address, are never crowded out.
    assert.match((await seedPostPara(url, GET_NODE)).stdout, /^result_str=\{"storage_node0":\{/);
    assert.match((await seedPostPara(url, GET_NODE, { bind: '127.0.0.99' })).stdout, /^result_str=\{"storage_node0":\{/);
    // An allow-listed caller may act as well as read: its address is its credential.
    assert.match((await seedPostPara(url, '{"ver":"0.1","job_type":"auto_pullup","minutes":0}', { bind: '127.0.0.99' })).stdout, /^result_str=\{"result":"succeed"\}\n$/);
    // Another address gets the refusal as a JSON error the original clients can take apart.
    const shut = await seedPostPara(url, GET_NODE, { bind: '127.0.0.50' });
    assert.equal(shut.stdout, 'http return code error\nresult_str=\n');
    assert.match(JSON.parse(shut.errorBody!).info, /node-mgr has 512 connections open, its limit for ordinary addresses \(security\.maxConnections\)/);

    // Once the flood goes, everyone is served again.
    for (const h of flood.splice(0)) h.socket.destroy();
    let served = '';
    for (let i = 0; i < 100 && !served.startsWith('result_str={'); i++) {
      served = (await seedPostPara(url, GET_NODE, { bind: '127.0.0.50' })).stdout;
      if (!served.startsWith('result_str={')) await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(served, /^result_str=\{"storage_node0":\{/);
  });
});

describe('the header timeout, and limits that change on reload', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let port: number;
  let config: Record<string, unknown>;

  before(async () => {
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    config = {
      listen: { host: '127.0.0.1', port },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      security: { headersTimeoutMs: 1000 },
    };
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    await buildSeedClient();
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await removeTempDirs();
  });

  it('closes a silent connection and a half-sent head with a 408 JSON error, and serves a prompt request', async () => {
    const [silent, partial] = [...(await openIdle(port, '127.0.0.2', 1)), ...(await openIdle(port, '127.0.0.3', 1))];
    partial!.socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Le');
    const started = Date.now();
    await eventually('both closed', () => silent!.closed && partial!.closed, 15_000);
    // 1 s, checked every second by Node: closed after 1–2 s, more on a busy machine, never the 60 s idle timeout.
    assert.ok(Date.now() - started < 10_000);
    for (const h of [silent!, partial!]) {
      assert.match(h.reply, /^HTTP\/1\.1 408 Request Timeout\r\n/);
      assert.equal(errorBodyOf(h.reply).info, 'the request did not arrive in time');
    }
    const r = await seedPostRaw(port, `POST / HTTP/1.0\r\nContent-Length: ${GET_NODE.length}\r\n\r\n${GET_NODE}`);
    assert.equal(r.stdout, 'result_str={}\n');
  });

  it('takes new connection limits on SIGHUP, without a restart', async () => {
    writeFileSync(path.join(root, 'mgr', 'node-mgr.json'), JSON.stringify({ ...config, security: { headersTimeoutMs: 1000, maxConnectionsPerSource: 1 } }));
    const reloads = () => mgr.lines.filter((l) => l.includes('config reloaded')).length;
    const before = reloads();
    process.kill(mgr.pid, 'SIGHUP');
    await eventually('config reloaded', () => reloads() > before);
    const two = await openIdle(port, '127.0.0.5', 2);
    await eventually('one refusal', () => refusedWith(two, 429).length === 1, 10_000);
    assert.match(errorBodyOf(refusedWith(two, 429)[0]!.reply).info, /too many connections from 127\.0\.0\.5 \(1 open; security\.maxConnectionsPerSource\)/);
    for (const h of two) h.socket.destroy();
  });
});

describe('the limits over TLS', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let port: number;
  let ca: Buffer;

  before(async () => {
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    const [key, cert] = [path.join(root, 'key.pem'), path.join(root, 'cert.pem')];
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=node-mgr test', '-addext', 'subjectAltName=IP:127.0.0.1']);
    ca = readFileSync(cert);
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port, tls: { cert, key } },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      security: { maxConnectionsPerSource: 2, headersTimeoutMs: 600_000 },
    });
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await removeTempDirs();
  });

  /** GET /healthz over HTTPS from `source`; resolves the status. */
  const healthz = (source: string) =>
    new Promise<number>((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port, path: '/healthz', ca, localAddress: source, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
    });

  it('closes a refused connection before the handshake, and serves other addresses', async () => {
    const three = await openIdle(port, '127.0.0.2', 3);
    await eventually('one closed', () => three.filter((h) => h.closed).length === 1, 10_000);
    assert.equal(three.find((h) => h.closed)!.reply, '');
    assert.equal(await healthz('127.0.0.1'), 200);
    assert.equal(await healthz('127.0.0.3'), 200);
    await assert.rejects(healthz('127.0.0.2'));
    for (const h of three) h.socket.destroy();
  });
});


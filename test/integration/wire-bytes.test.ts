// Every reply of the seed face as the original C clients read it (PROTOCOL §1, §7): one recv() of
// at most 2,047 bytes and case-sensitive searches for `200 OK`, `Content-Length:` and `\r\n\r\n`.
// test/support/seed-client.c does exactly that; here it first proves it fails where the originals
// fail, then reads node-mgr's replies, errors included; curl, wrk and autocannon read them too.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, createNode, killProcessGroups, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { fakeClusterMgrEntry } from '../support/fake-cluster-mgr-nodes.ts';
import { rawRequest } from '../support/raw-http.ts';
import { ORIGINAL_MEMBER_FIELDS } from '../../src/http/legacy-nodes.ts';
import { buildSeedClient, seedPostFile, seedPostPara, seedPostRaw } from '../support/seed-client.ts';

const run = promisify(execFile);

/** A one-shot server that answers whatever arrives with `reply` (split into writes `gapMs` apart). */
async function replyingServer(parts: string[], gapMs = 0): Promise<{ port: number; close(): void }> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', async () => {
      for (const [i, p] of parts.entries()) {
        if (i > 0) await new Promise((r) => setTimeout(r, gapMs));
        socket.write(p);
      }
      socket.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

const errorShape = (body: string | undefined) => {
  const parsed = JSON.parse(body ?? '');
  assert.equal(parsed.result, 'error');
  assert.equal(typeof parsed.info, 'string');
  assert.ok(parsed.info.length > 0);
  return parsed as { result: 'error'; info: string };
};

describe('the client-like test client fails where the original clients fail (a test of the test)', () => {
  before(async () => {
    await buildSeedClient();
  });

  const body = '{"result":"succeed"}';
  it('reads a reply spelled as the originals expect', async () => {
    const s = await replyingServer([`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`]);
    try {
      assert.equal((await seedPostPara(`http://127.0.0.1:${s.port}`, '{"ver":"0.1","job_type":"get_info"}')).stdout, `result_str=${body}\n`);
    } finally {
      s.close();
    }
  });

  it('prints "get content length fail" and an empty result for `content-length:` in lower case', async () => {
    const s = await replyingServer([`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`]);
    try {
      assert.equal((await seedPostPara(`http://127.0.0.1:${s.port}`, '{"ver":"0.1","job_type":"get_info"}')).stdout, 'get content length fail\nresult_str=\n');
    } finally {
      s.close();
    }
  });

  it('prints "http return code error" for anything but 200 OK', async () => {
    const s = await replyingServer([`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`]);
    try {
      assert.equal((await seedPostPara(`http://127.0.0.1:${s.port}`, '{}')).stdout, 'http return code error\nresult_str=\n');
    } finally {
      s.close();
    }
  });

  it('gets no result when the body comes in a second write after its headers', async () => {
    const s = await replyingServer([`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`, body], 300);
    try {
      const r = await seedPostPara(`http://127.0.0.1:${s.port}`, '{}');
      assert.equal(r.stdout, 'result_str=\n');
      assert.match(r.stderr, /reply cut: Content-Length 20, 0 body bytes/);
    } finally {
      s.close();
    }
  });

  it('gets a cut result when the reply is longer than its single 2,047-byte read', async () => {
    const long = JSON.stringify({ pad: 'x'.repeat(3000) });
    const s = await replyingServer([`HTTP/1.1 200 OK\r\nContent-Length: ${long.length}\r\n\r\n${long}`]);
    try {
      const r = await seedPostPara(`http://127.0.0.1:${s.port}`, '{}');
      assert.match(r.stderr, /reply cut/);
      assert.ok(r.result.length < 2047 && long.startsWith(r.result));
    } finally {
      s.close();
    }
  });
});

describe('node-mgr replies as the original clients read them', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let port: number;
  let url: string;
  const nodePorts: number[] = [];

  before(async () => {
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 8; i++) nodePorts.push(await freePort());
    // Configured nodes that were never created stay `stopped`: real get_node members, no servers.
    const [meta, computer, ...storage] = nodePorts;
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port },
      stateDir: path.join(root, 'state'),
      uploadDir: path.join(root, 'uploads'),
      runAs: TEST_RUN_AS,
      security: { bodyLimitBytes: 8 * 1024, uploadLimitBytes: 64 * 1024 },
      nodes: [
        { kind: 'mysql', role: 'meta', port: meta, dir: path.join(root, 'meta'), cluster: 'meta', user: 'pgx', password: 'pgx_pwd' },
        { kind: 'postgres', role: 'computer', port: computer, dir: path.join(root, 'comp'), cluster: 'clust1', user: 'pgx', password: 'pgx_pwd' },
        ...storage.map((p, i) => ({ kind: 'mysql', role: 'storage', port: p, dir: path.join(root, `storage${i}`), cluster: 'clust1', shard: `shard${i}`, user: 'pgx', password: 'pgx_pwd' })),
      ],
    });
    await buildSeedClient();
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await removeTempDirs();
  });

  it('answers the read-only seed requests with a result the client prints whole', async () => {
    for (const json of [
      '{"ver":"0.1","job_type":"get_node","node_type":"meta_node"}',
      '{"ver":"0.1","job_type":"get_node","node_type":"computer_node"}',
      '{"ver":"0.1","job_type":"get_info"}',
      '{"ver":"0.1","job_id":"id123456","job_type":"get_status"}',
      '{"ver":"0.1","job_type":"auto_pullup","minutes":0}',
    ]) {
      const r = await seedPostPara(url, json);
      assert.equal(r.stderr, '', json);
      assert.match(r.stdout, /^result_str=\{.*\}\n$/, json);
      const reply = JSON.parse(r.result);
      if (json.includes('meta_node')) assert.equal(reply.meta_node0.port, nodePorts[0]);
      if (json.includes('get_status')) assert.deepEqual(reply, { job_id: 'id123456', job_status: 'none', result: 'error', info: 'no such job' });
      if (json.includes('auto_pullup')) assert.deepEqual(reply, { result: 'succeed' });
    }
  });

  it('spells the seed face\'s headers exactly and sends nothing the clients do not need', async () => {
    const raw = await rawRequest(port, `POST / HTTP/1.0\r\nHOST: 127.0.0.1:${port}\r\nAccept: */*\r\nContent-Type:application/x-www-form-urlencoded\r\nContent-Length: 35\r\n\r\n{"ver":"0.1","job_type":"get_info"}`);
    const [head, body] = raw.split('\r\n\r\n');
    const lines = head!.split('\r\n');
    assert.equal(lines[0], 'HTTP/1.1 200 OK');
    assert.deepEqual(lines.slice(1).sort(), ['Connection: close', `Content-Length: ${Buffer.byteLength(body!)}`, 'Content-Type: application/json']);
    assert.doesNotMatch(body!, /\n|": /, 'compact JSON');
    // GET /<job_id> is the seed face too; the REST face keeps its Date, with the same spelling.
    const poll = await rawRequest(port, 'GET /id123456 HTTP/1.0\r\n\r\n');
    assert.match(poll, /^HTTP\/1\.1 200 OK\r\nContent-Type: application\/json\r\nContent-Length: \d+\r\nConnection: close\r\n\r\n\{"job_id":"id123456"/);
    const rest = await rawRequest(port, 'GET /v1/nodes HTTP/1.0\r\n\r\n');
    assert.match(rest, /\r\nContent-Length: \d+\r\n/);
    assert.doesNotMatch(rest, /\r\ncontent-/);
  });

  it('saves every upload of http_post_file byte for byte and answers with the saved path', async () => {
    for (const [fileType, name] of [['mysql', 'mysql_shard1.json'], ['pgsql', 'postgresql_comp.json'], ['cluster', 'cluster_mgr.cnf']] as const) {
      const file = path.join(root, name);
      const content = readFileSync(path.join(import.meta.dirname, '../../fixtures', name));
      writeFileSync(file, content);
      const r = await seedPostFile(url, `{"ver":"0.1","file_type":"${fileType}"}`, file);
      assert.match(r.stdout, new RegExp(`^file len = ${content.length}\\ncontentlen = \\d+\\nresult_str=\\{"result":"succeed","path":"[^"]+"\\}\\n$`), r.stdout);
      const saved = JSON.parse(r.result).path as string;
      assert.equal(path.basename(saved), name);
      assert.deepEqual(readFileSync(saved), content);
    }
  });

  it('gives every refusal the JSON error body, also those made before any route', async () => {
    const big = JSON.stringify({ ver: '0.1', job_type: 'get_node', pad: 'x'.repeat(10_000) });
    const cases: Array<[string, () => ReturnType<typeof seedPostPara>, RegExp]> = [
      ['a body that is not JSON (body parser)', () => seedPostPara(url, '{"ver":"0.1","job_type":'), /not valid JSON/],
      ['an unknown job_type', () => seedPostPara(url, '{"ver":"0.1","job_type":"format_disk"}'), /unknown job_type/],
      ['a path with no route', () => seedPostPara(`${url}/nope/x`, '{"ver":"0.1","job_type":"get_node"}'), /no route POST \/nope\/x/],
      ['a body over the limit', () => seedPostRaw(port, `POST / HTTP/1.0\r\nContent-Length: ${big.length}\r\n\r\n${big}`), /too large/],
      ['a broken request line (HTTP parser)', () => seedPostRaw(port, 'POST / HTTP/9.Z\r\n\r\n'), /not valid HTTP/],
      ['headers over 16 KiB (HTTP parser)', () => seedPostRaw(port, `GET / HTTP/1.0\r\nX-Pad: ${'y'.repeat(20_000)}\r\n\r\n`), /headers are too large/],
      ['Content-Length with Transfer-Encoding (HTTP parser)', () => seedPostRaw(port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'), /not valid HTTP/],
      ['an HTTP/1.1 request without Host', () => seedPostRaw(port, 'POST / HTTP/1.1\r\nContent-Length: 35\r\n\r\n{"ver":"0.1","job_type":"get_info"}'), /needs a Host header/],
      ['an upload with an unknown file_type', () => seedPostFile(url, '{"ver":"0.1","file_type":"etc"}', path.join(import.meta.dirname, '../../fixtures/cluster_mgr.cnf')), /file_type/],
    ];
    for (const [what, send, info] of cases) {
      const r = await send();
      assert.match(r.stdout, /http return code error\nresult_str=\n$/, `${what}: ${r.stdout}`);
      assert.match(errorShape(r.errorBody).info, info, what);
    }
    const huge = path.join(root, 'huge.json');
    writeFileSync(huge, Buffer.alloc(100 * 1024, 0x20));
    const r = await seedPostFile(url, '{"ver":"0.1","file_type":"mysql"}', huge);
    assert.match(r.stdout, /http return code error\nresult_str=\n$/);
    assert.match(errorShape(r.errorBody).info, /larger than|too large/);
  });

  it('a get_node too long whole for the clients\' single read reaches them with the original fields; one node_type keeps every field', async () => {
    const all = await seedPostPara(url, '{"ver":"0.1","job_type":"get_node"}');
    assert.equal(all.stderr, '');
    const reply = JSON.parse(all.result);
    assert.equal(Object.keys(reply).length, nodePorts.length);
    assert.deepEqual(Object.values(reply).map((m: any) => m.shard ?? '-').sort(), ['-', '-', 'shard0', 'shard1', 'shard2', 'shard3', 'shard4', 'shard5']);
    assert.ok(Object.values(reply).every((m: any) => m.state === undefined && m.pid === undefined), all.result);
    const meta = JSON.parse((await seedPostPara(url, '{"ver":"0.1","job_type":"get_node","node_type":"meta_node"}')).result);
    assert.deepEqual(Object.keys(meta), ['meta_node0']);
    assert.equal(meta.meta_node0.state, 'stopped');
  });

  it('curl reads every reply, success and refusal, over HTTP/1.1 and HTTP/1.0', async () => {
    for (const version of ['--http1.1', '--http1.0']) {
      for (const [json, status] of [['{"ver":"0.1","job_type":"get_node"}', 200], ['{"ver":"0.1","job_type":"get_info"}', 200], ['{"ver":"0.1","job_type":"nope"}', 400], ['{"ver":', 400]] as const) {
        const { stdout } = await run('curl', ['-sS', version, '-d', json, '-w', '\n%{http_code} %{size_download}', url]);
        const [body, tail] = [stdout.slice(0, stdout.lastIndexOf('\n')), stdout.slice(stdout.lastIndexOf('\n') + 1)];
        assert.equal(tail, `${status} ${Buffer.byteLength(body)}`, `${version} ${json}`);
        assert.equal(typeof JSON.parse(body), 'object');
      }
    }
  });

  it('wrk reads every reply without a socket or parse error', async () => {
    const script = path.join(root, 'post.lua');
    for (const [json, ok] of [['{"ver":"0.1","job_type":"get_node"}', true], ['{"ver":"0.1","job_type":"get_status","job_id":"x"}', true], ['{"ver":"0.1","job_type":"nope"}', false]] as const) {
      writeFileSync(script, `wrk.method = "POST"\nwrk.body = '${json}'\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n`);
      const { stdout } = await run('wrk', ['-t1', '-c2', '-d1s', '-s', script, `${url}/`], { timeout: 30_000 });
      const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
      assert.ok(requests > 0, stdout);
      assert.doesNotMatch(stdout, /Socket errors/, stdout);
      if (ok) assert.doesNotMatch(stdout, /Non-2xx/, stdout);
      else assert.equal(Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1]), requests, stdout);
    }
  });

  it('autocannon reads every reply without an error', async () => {
    for (const [json, ok] of [['{"ver":"0.1","job_type":"get_node"}', true], ['{"ver":"0.1","job_type":"get_info"}', true], ['{"ver":"0.1","job_type":"nope"}', false]] as const) {
      const r = await autocannon({ url: `${url}/`, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: json, connections: 2, duration: 1 });
      assert.ok(r.requests.total > 0, json);
      assert.equal(r.errors, 0, json);
      assert.equal(r.timeouts, 0, json);
      if (ok) assert.equal(r.non2xx, 0, json);
      else assert.ok(r['4xx'] > 0 && r['2xx'] === 0, json);
    }
  });
});

describe('a get_node of many running nodes as the original clients read it', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let port: number;
  let url: string;
  const storage: number[] = [];
  const meta: number[] = [];
  const pids: number[] = [];

  before(async () => {
    // Under /tmp whatever TMPDIR says: the members carry their paths, and the node count below is
    // sized so that their original fields fit the clients' read with paths of this length.
    root = path.dirname(await tempNodeDir('node', '/tmp'));
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 9; i++) storage.push(await freePort());
    for (let i = 0; i < 4; i++) meta.push(await freePort());
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      nodes: [
        // Light processes that run: members with a pid, a since, an uptime and usage figures
        // (about 330 bytes each whole), where ten MariaDB servers would be heavy for a test.
        ...storage.map((p, i) => ({ ...fakeClusterMgrEntry(root, p), role: 'storage', cluster: 'clust1', shard: `shard${i}`, user: 'pgx', password: 'pgx_pwd' })),
        // Configured and never created: `stopped`, small members.
        ...meta.map((p, i) => ({ kind: 'mysql', role: 'meta', port: p, dir: path.join(root, `meta${i}`), cluster: 'meta', user: 'pgx', password: 'pgx_pwd' })),
      ],
    });
    for (const p of storage) pids.push(await createNode(mgr.url, p));
    for (const p of storage) await waitForNode(mgr.url, p, (n) => n.state === 'running');
    await buildSeedClient();
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('reads a reply too long whole in one piece: every node, with the fields the original server sent', async (t) => {
    const r = await seedPostPara(url, '{"ver":"0.1","job_type":"get_node","node_type":"storage_node"}');
    t.diagnostic(`${Buffer.byteLength(r.result)} body bytes`);
    assert.equal(r.stderr, '', `the client's read was cut: ${r.stderr}`);
    const reply = JSON.parse(r.result);
    assert.deepEqual(Object.keys(reply), storage.map((_, i) => `storage_node${i}`));
    assert.deepEqual(Object.values(reply).map((m: any) => m.port), [...storage].sort((a, b) => a - b));
    for (const member of Object.values(reply) as any[]) {
      assert.deepEqual(Object.keys(member), ORIGINAL_MEMBER_FIELDS);
      assert.equal(member.user, 'pgx');
      assert.equal(member.pwd, '******');
      assert.match(member.shard, /^shard\d$/);
    }
    // GET /v1/nodes keeps every field.
    const listed = (await api(mgr.url, 'GET', '/v1/nodes')).body as Array<{ port: number; state: string; pid: number | null }>;
    for (const p of storage) assert.ok(listed.some((n) => n.port === p && n.state === 'running' && n.pid !== null), `node ${p} in /v1/nodes`);
  });

  it('keeps every field of a reply that fits whole', async () => {
    const r = await seedPostPara(url, '{"ver":"0.1","job_type":"get_node","node_type":"meta_node"}');
    assert.equal(r.stderr, '');
    const reply = JSON.parse(r.result);
    assert.deepEqual(Object.keys(reply), meta.map((_, i) => `meta_node${i}`));
    assert.equal(reply.meta_node0.kind, 'mysql');
    assert.equal(reply.meta_node0.state, 'stopped');
  });

  it('sends a reply too long even so as the original server did: the client\'s read is cut, curl gets every node', async () => {
    const json = '{"ver":"0.1","job_type":"get_node"}';
    const r = await seedPostPara(url, json);
    assert.match(r.stderr, /reply cut/);
    const { stdout } = await run('curl', ['-sS', '--http1.0', '-d', json, `${url}/`]);
    const reply = JSON.parse(stdout);
    assert.equal(Object.keys(reply).length, storage.length + meta.length);
    for (const member of Object.values(reply) as any[]) assert.deepEqual(Object.keys(member).filter((k) => !ORIGINAL_MEMBER_FIELDS.includes(k)), []);
    assert.ok(r.result.length > 0 && stdout.startsWith(r.result), 'the client got the start of the same bytes');
  });
});

// Where node-mgr learns its nodes (PROTOCOL §11), against real servers: a private MariaDB holding
// kunlun_metadata_db, and the cluster_mgr stand-in answering get_node from it. This host's
// addresses are injected, so "local" and "remote" nodes can both live in one test database.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { discoverLocalNodes, localIPv4Addresses, type DiscoveredNode } from '../../src/cluster/discovery.ts';
import { entryMapperFor, reconcile } from '../../src/cluster/reconcile.ts';
import { freePort, startMetaDb, type MetaDb } from '../support/meta-db.ts';

const STANDIN = fileURLToPath(new URL('../support/cluster-mgr-standin.mjs', import.meta.url));
const LOCAL = ['127.0.0.1', '198.51.100.7'];
const REMOTE = '203.0.113.5';

/** What both sources must report for LOCAL, in a stable order. */
const EXPECTED_LOCAL: DiscoveredNode[] = [
  { role: 'computer', ip: '127.0.0.1', port: 5401, user: 'abc', password: 'abc', cluster: 'clust1' },
  { role: 'meta', ip: '127.0.0.1', port: 6001, user: 'pgx', password: 'pgx_pwd' },
  { role: 'storage', ip: '127.0.0.1', port: 6004, user: 'pgx', password: 'pgx_pwd', cluster: 'clust1', shard: 'shard1' },
  { role: 'storage', ip: '198.51.100.7', port: 6007, user: 'pgx', password: 'pgx_pwd', cluster: 'clust1', shard: 'shard2' },
  { role: 'storage', ip: '127.0.0.1', port: 6010, user: 'u2', password: 'p2', cluster: 'clust2', shard: 'shard_a' },
];

const byPort = (nodes: DiscoveredNode[]) => [...nodes].sort((a, b) => a.port - b.port || a.ip.localeCompare(b.ip));

let db: MetaDb;
let tmp: string;
let standin: ChildProcess;
let standinPort: number;
let standinUrl: string;
let pidfile: string;
let standinOutput = '';

before(async () => {
  db = await startMetaDb({
    nodes: [
      { role: 'meta', hostaddr: '127.0.0.1', port: 6001 },
      { role: 'meta', hostaddr: REMOTE, port: 6001 },
      { role: 'storage', hostaddr: '127.0.0.1', port: 6004, cluster: 'clust1', shard: 'shard1' },
      { role: 'storage', hostaddr: '198.51.100.7', port: 6007, cluster: 'clust1', shard: 'shard2' },
      { role: 'storage', hostaddr: REMOTE, port: 6004, cluster: 'clust1', shard: 'shard1' },
      { role: 'storage', hostaddr: '127.0.0.1', port: 6010, cluster: 'clust2', shard: 'shard_a', user: 'u2', password: 'p2' },
      { role: 'computer', hostaddr: '127.0.0.1', port: 5401, cluster: 'clust1', user: 'abc', password: 'abc' },
      { role: 'computer', hostaddr: REMOTE, port: 5401, cluster: 'clust1' },
    ],
  });
  tmp = await mkdtemp(path.join(os.tmpdir(), 'nodemgr-discovery-'));
  pidfile = path.join(tmp, 'cluster_mgr.pid');
  standinPort = await freePort();
  standinUrl = `http://127.0.0.1:${standinPort}`;
  standin = spawn(
    process.execPath,
    [STANDIN, '--port', String(standinPort), '--pidfile', pidfile, '--meta-host', db.host, '--meta-port', String(db.port), '--meta-user', db.user],
    { env: { ...process.env, META_PASSWORD: db.password }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  standin.stdout!.on('data', (d: Buffer) => (standinOutput += d.toString()));
  standin.stderr!.on('data', (d: Buffer) => (standinOutput += d.toString()));
  await waitForHealth(`${standinUrl}/health`, standin, 10_000);
});

after(async () => {
  if (standin && standin.exitCode === null && standin.signalCode === null) {
    standin.kill('SIGKILL');
    await once(standin, 'exit');
  }
  await db?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('local addresses', () => {
  it('are every IPv4 address of the host, 127.0.0.1 first, without duplicates or IPv6', () => {
    const info = (address: string, family: 'IPv4' | 'IPv6') =>
      ({ address, family, netmask: '', mac: '', internal: false, cidr: null }) as os.NetworkInterfaceInfo;
    const addresses = localIPv4Addresses({
      lo: [info('127.0.0.1', 'IPv4'), info('::1', 'IPv6')],
      eth0: [info('192.0.2.2', 'IPv4'), info('fe80::1', 'IPv6')],
      eth1: [info('198.51.100.7', 'IPv4'), info('192.0.2.2', 'IPv4')],
    });
    assert.deepEqual(addresses, ['127.0.0.1', '192.0.2.2', '198.51.100.7']);
    assert.equal(localIPv4Addresses()[0], '127.0.0.1');
  });
});

describe('metadata_db discovery', () => {
  it('lists only the nodes on local addresses, with their cluster and shard names', async () => {
    const nodes = await discoverLocalNodes('metadata_db', { metadataDb: db, localAddresses: LOCAL });
    assert.deepEqual(byPort(nodes), EXPECTED_LOCAL);
  });

  it('asks only for the node types it is given', async () => {
    const nodes = await discoverLocalNodes('metadata_db', { metadataDb: db, localAddresses: LOCAL, roles: ['computer'] });
    assert.deepEqual(nodes, [EXPECTED_LOCAL[0]]);
  });

  it('says which metadata DB is unreachable', async () => {
    const port = await freePort();
    await assert.rejects(
      discoverLocalNodes('metadata_db', { metadataDb: { ...db, port }, localAddresses: LOCAL }),
      { name: 'MetadataDbError', message: `metadata DB at 127.0.0.1:${port} is unreachable: ECONNREFUSED` },
    );
  });

  it('says when the metadata DB refuses the login, without the password', async () => {
    await assert.rejects(discoverLocalNodes('metadata_db', { metadataDb: { ...db, password: 'wrong-pw' }, localAddresses: LOCAL }), (err: Error) => {
      assert.match(err.message, /refused the login of user 'kunlun'/);
      assert.doesNotMatch(err.message, /wrong-pw/);
      return true;
    });
  });
});

describe('cluster_mgr stand-in', () => {
  it('writes its pid to the pidfile and answers GET /health', async () => {
    assert.equal((await readFile(pidfile, 'utf8')).trim(), String(standin.pid));
    const res = await fetch(`${standinUrl}/health`);
    assert.equal(res.status, 200);
  });

  it("answers the seed's get_node, sent byte for byte as the original http_post_para does, in one reply", async () => {
    const body = '{"ver":"0.1","job_type":"get_node","node_type":"meta_node","node_ip0":"127.0.0.1","node_ip1":"192.168.207.145"}';
    const request =
      `POST / HTTP/1.0\r\nHOST: 127.0.0.1:${standinPort}\r\nAccept: */*\r\n` +
      `Content-Type:application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const { first, all } = await rawExchange(standinPort, request);
    // The original client does one recv() and looks for these three.
    assert.match(first, /^HTTP\/1\.[01] 200 OK\r\n/);
    assert.match(first, /\r\nContent-Length: \d+\r\n/i);
    assert.ok(first.includes('\r\n\r\n'));
    assert.equal(first, all);
    const reply = JSON.parse(all.slice(all.indexOf('\r\n\r\n') + 4));
    assert.deepEqual(reply, { meta_node0: { ip: '127.0.0.1', port: 6001, user: 'pgx', pwd: 'pgx_pwd' } });
  });

  it('answers get_node without node_type or node_ip with every node of every type', async () => {
    const reply = await postJson(standinUrl, { ver: '0.1', job_type: 'get_node' });
    assert.equal(reply.status, 200);
    assert.deepEqual(Object.keys(reply.body).sort(), [
      'computer_node0',
      'computer_node1',
      'meta_node0',
      'meta_node1',
      'storage_node0',
      'storage_node1',
      'storage_node2',
      'storage_node3',
    ]);
    assert.deepEqual(reply.body.storage_node1, { ip: '198.51.100.7', port: 6007, user: 'pgx', pwd: 'pgx_pwd', cluster: 'clust1', shard: 'shard2' });
  });

  it('answers anything else with {"result":"error","info":…}', async () => {
    for (const [body, status, info] of [
      ['not json', 400, /not JSON/],
      [JSON.stringify({ ver: '0.1', job_type: 'get_info' }), 400, /get_info.*get_node only/],
      [JSON.stringify({ job_type: 'get_node', node_type: 'disk_node' }), 400, /node_type "disk_node"/],
      [JSON.stringify({ job_type: 'get_node', node_ip0: 7 }), 400, /node_ip0/],
    ] as const) {
      const reply = await postRaw(standinUrl, body);
      assert.equal(reply.status, status, body);
      assert.equal(reply.body.result, 'error');
      assert.match(String(reply.body.info), info);
    }
    const res = await fetch(`${standinUrl}/nowhere`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { result: string }).result, 'error');
  });
});

describe('cluster_mgr discovery', () => {
  it('returns the same local nodes as the metadata DB', async () => {
    const fromClusterMgr = await discoverLocalNodes('cluster_mgr', { clusterMgrUrl: standinUrl, localAddresses: LOCAL });
    const fromMetadataDb = await discoverLocalNodes('metadata_db', { metadataDb: db, localAddresses: LOCAL });
    assert.deepEqual(byPort(fromClusterMgr), EXPECTED_LOCAL);
    assert.deepEqual(byPort(fromClusterMgr), byPort(fromMetadataDb));
  });

  it("asks one get_node per node type, carrying every local address, in the seed's exact bytes", async () => {
    const seen: string[] = [];
    await withServer(
      (req, res, body) => {
        seen.push(body);
        const type = (JSON.parse(body) as { node_type: string }).node_type;
        const reply =
          type === 'storage_node'
            ? { storage_node0: { ip: '127.0.0.1', port: 6004, user: 'pgx', pwd: 'pgx_pwd', cluster: 'c', shard: 's' } }
            : {};
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(reply));
      },
      async (url) => {
        const nodes = await discoverLocalNodes('cluster_mgr', { clusterMgrUrl: url, localAddresses: LOCAL });
        assert.deepEqual(nodes, [{ role: 'storage', ip: '127.0.0.1', port: 6004, user: 'pgx', password: 'pgx_pwd', cluster: 'c', shard: 's' }]);
      },
    );
    assert.deepEqual(seen, [
      '{"ver":"0.1","job_type":"get_node","node_type":"meta_node","node_ip0":"127.0.0.1","node_ip1":"198.51.100.7"}',
      '{"ver":"0.1","job_type":"get_node","node_type":"storage_node","node_ip0":"127.0.0.1","node_ip1":"198.51.100.7"}',
      '{"ver":"0.1","job_type":"get_node","node_type":"computer_node","node_ip0":"127.0.0.1","node_ip1":"198.51.100.7"}',
    ]);
  });

  it('ignores members on addresses that are not local, in index order', async () => {
    await withServer(
      (_req, res) =>
        res.writeHead(200).end(
          JSON.stringify({
            meta_node1: { ip: '127.0.0.1', port: 6002, user: 'u', pwd: 'p' },
            meta_node0: { ip: '127.0.0.1', port: 6001, user: 'u', pwd: 'p' },
            meta_node2: { ip: REMOTE, port: 6003, user: 'u', pwd: 'p' },
          }),
        ),
      async (url) => {
        const nodes = await discoverLocalNodes('cluster_mgr', { clusterMgrUrl: url, localAddresses: LOCAL, roles: ['meta'] });
        assert.deepEqual(nodes.map((n) => n.port), [6001, 6002]);
      },
    );
  });

  it('says which cluster_mgr is unreachable', async () => {
    const port = await freePort();
    await assert.rejects(discoverLocalNodes('cluster_mgr', { clusterMgrUrl: `http://127.0.0.1:${port}`, localAddresses: LOCAL }), {
      name: 'ClusterMgrError',
      message: `cluster_mgr at http://127.0.0.1:${port}/ is unreachable: ECONNREFUSED`,
    });
  });

  it('says which HTTP status cluster_mgr answered, with its info', async () => {
    await withServer(
      (_req, res) => res.writeHead(500).end('{"result":"error","info":"meta shard unavailable"}'),
      async (url) => {
        await assert.rejects(discoverLocalNodes('cluster_mgr', { clusterMgrUrl: url, localAddresses: LOCAL }), {
          message: `cluster_mgr at ${url}/ answered HTTP 500 to get_node: meta shard unavailable`,
        });
      },
    );
  });

  it('reports a reply that is not JSON, or a member it cannot use', async () => {
    await withServer(
      (_req, res) => res.writeHead(200).end('<html>oops</html>'),
      async (url) => {
        await assert.rejects(discoverLocalNodes('cluster_mgr', { clusterMgrUrl: url, localAddresses: LOCAL }), /answered get_node with something that is not JSON: <html>oops/);
      },
    );
    await withServer(
      (_req, res) => res.writeHead(200).end(JSON.stringify({ meta_node0: { ip: '127.0.0.1', port: 'x', user: 'u', pwd: 'p' } })),
      async (url) => {
        await assert.rejects(discoverLocalNodes('cluster_mgr', { clusterMgrUrl: url, localAddresses: LOCAL }), /unusable meta_node0: port/);
      },
    );
  });

  it('gives up on a cluster_mgr that does not answer within the timeout', async () => {
    await withServer(
      () => {
        /* never answers */
      },
      async (url) => {
        const started = Date.now();
        await assert.rejects(discoverLocalNodes('cluster_mgr', { clusterMgrUrl: url, localAddresses: LOCAL, timeoutMs: 300 }), {
          message: `cluster_mgr at ${url}/ did not answer get_node within 300 ms`,
        });
        assert.ok(Date.now() - started < 3000);
      },
    );
  });
});

describe('a node removed from the metadata DB', () => {
  it('disappears from both discoveries, and update_node would stop supervising it', async () => {
    const toEntry = entryMapperFor({ baseDir: path.join(tmp, 'nodes') });
    const before = await discoverLocalNodes('metadata_db', { metadataDb: db, localAddresses: LOCAL });
    const current = reconcile([], before, toEntry).add.map((e) => ({ id: `${e.kind}-${e.port}`, port: e.port, source: 'discovered' as const, role: e.role }));

    assert.equal(await db.removeNode(6007, '198.51.100.7'), 1);
    const expected = EXPECTED_LOCAL.filter((n) => n.port !== 6007);
    const fromMetadataDb = await discoverLocalNodes('metadata_db', { metadataDb: db, localAddresses: LOCAL });
    const fromClusterMgr = await discoverLocalNodes('cluster_mgr', { clusterMgrUrl: standinUrl, localAddresses: LOCAL });
    assert.deepEqual(byPort(fromMetadataDb), expected);
    assert.deepEqual(byPort(fromClusterMgr), expected);

    const r = reconcile(current, fromClusterMgr, toEntry);
    assert.deepEqual(r.remove, ['mysql-6007']);
    assert.deepEqual(r.add, []);
    assert.equal(r.keep.length, EXPECTED_LOCAL.length - 1);
  });
});

describe('cluster_mgr stand-in shutdown', () => {
  it('exits with code 0 on SIGTERM and removes its pidfile', async () => {
    const exited = once(standin, 'exit');
    standin.kill('SIGTERM');
    const [code, signal] = await exited;
    assert.equal(signal, null, standinOutput);
    assert.equal(code, 0, standinOutput);
    assert.equal(existsSync(pidfile), false);
    assert.doesNotMatch(standinOutput, new RegExp(db.password));
  });
});

// ---------------------------------------------------------------------------------------------

async function waitForHealth(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`cluster_mgr stand-in exited with code ${child.exitCode}:\n${standinOutput}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`cluster_mgr stand-in did not answer ${url} within ${timeoutMs} ms:\n${standinOutput}`);
}

/** Sends raw bytes, returns the first chunk received and everything until the server closes. */
function rawExchange(port: number, request: string): Promise<{ first: string; all: string }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    socket.on('data', (c) => chunks.push(c));
    socket.on('end', () => resolve({ first: chunks[0]?.toString() ?? '', all: Buffer.concat(chunks).toString() }));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('no reply within 5 s')));
  });
}

async function postRaw(url: string, body: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function postJson(url: string, body: unknown) {
  return postRaw(url, JSON.stringify(body));
}

/** Runs `fn` against a throwaway HTTP server playing cluster_mgr with `handler`. */
async function withServer(
  handler: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void,
  fn: (url: string) => Promise<void>,
): Promise<void> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handler(req, res, body));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  try {
    await fn(`http://127.0.0.1:${port}`);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

// The kept-alive health session of an http:// health URL, against real HTTP servers on loopback:
// node's own server (what a cluster_mgr stand-in runs) and raw TCP servers that misbehave the way
// servers do (closing a kept connection as the next request arrives, chunked bodies, 5xx, silence).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { chunkedBodyEnd, httpHealthSession } from '../../src/engines/http-health-session.ts';
import { engineFor } from '../../src/engines/index.ts';
import { monitorHealth } from '../../src/supervisor/health-monitor.ts';
import { makeSpec, removeTempDirs } from '../support/nodes.ts';

const servers: Array<net.Server> = [];
after(() => removeTempDirs());
after(() => {
  for (const s of servers) {
    (s as http.Server).closeAllConnections?.();
    s.close();
  }
});

async function listen(server: net.Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
}

/** A node http server counting connections and requests. */
async function nodeServer(status = 200): Promise<{ url: string; connections: () => number; requests: () => number }> {
  let connections = 0;
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end('{"status":"ok"}');
  });
  server.on('connection', () => connections++);
  return { url: await listen(server), connections: () => connections, requests: () => requests };
}

/** A raw server: `answer(n, socket)` handles the n-th request (from 1) over all connections. */
async function rawServer(answer: (n: number, socket: net.Socket) => void): Promise<{ url: string; connections: () => number }> {
  let n = 0;
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    let buffered = '';
    socket.setEncoding('latin1');
    socket.on('error', () => {});
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      while (buffered.includes('\r\n\r\n')) {
        buffered = buffered.slice(buffered.indexOf('\r\n\r\n') + 4);
        answer(++n, socket);
      }
    });
  });
  return { url: await listen(server), connections: () => connections };
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}';

describe('http health session', () => {
  it('probes on one kept-alive connection: ten probes, one TCP connection, ten requests', async () => {
    const srv = await nodeServer();
    const session = httpHealthSession(new URL(srv.url), 'cm-1: health check');
    for (let i = 0; i < 10; i++) await session.check(5000);
    await session.close();
    assert.equal(srv.requests(), 10);
    assert.equal(srv.connections(), 1);
  });

  it('connects again when the server closed the idle connection, and the probe passes', async () => {
    // Like a server's keep-alive timeout: the kept connection is closed 50 ms after each answer.
    const srv = await rawServer((_n, socket) => {
      socket.write(OK);
      setTimeout(() => socket.end(), 50);
    });
    const session = httpHealthSession(new URL(srv.url), 'cm-1: health check');
    await session.check(5000);
    await new Promise((r) => setTimeout(r, 300));
    await session.check(5000);
    await session.close();
    assert.equal(srv.connections(), 2);
  });

  it('sends the request once more on a fresh connection when the kept one is closed as the request arrives', async () => {
    // The race a server's idle timeout makes: the second request reaches a connection being closed.
    const srv = await rawServer((n, socket) => (n === 2 ? socket.destroy() : socket.write(OK)));
    const session = httpHealthSession(new URL(srv.url), 'cm-1: health check');
    await session.check(5000);
    await session.check(5000);
    await session.check(5000);
    await session.close();
    assert.equal(srv.connections(), 2);
  });

  it('fails a probe whose fresh connection closes without an answer (no endless retry)', async () => {
    const srv = await rawServer((_n, socket) => socket.destroy());
    const session = httpHealthSession(new URL(srv.url), 'cm-1: health check');
    await assert.rejects(session.check(5000), /^Error: cm-1: health check failed: the connection closed without an answer$|failed: .*(ECONNRESET|without an answer)/);
    assert.equal(srv.connections(), 1);
    session.destroy();
  });

  it('fails on a 5xx answer and passes on a 4xx one (a bare GET may be refused by a live program)', async () => {
    const bad = await nodeServer(503);
    const s1 = httpHealthSession(new URL(bad.url), 'cm-1: health check');
    await assert.rejects(s1.check(5000), /cm-1: health check failed: answered HTTP 503/);
    s1.destroy();
    const refused = await nodeServer(404);
    const s2 = httpHealthSession(new URL(refused.url), 'cm-1: health check');
    await s2.check(5000);
    s2.destroy();
  });

  it('reuses the connection after a chunked answer, even one arriving in pieces', async () => {
    const srv = await rawServer((_n, socket) => {
      socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\n{}');
      setTimeout(() => socket.write('\r\n3\r\n[1]\r\n0\r\nX-Trailer: t\r\n'), 20);
      setTimeout(() => socket.write('\r\n'), 40);
    });
    const session = httpHealthSession(new URL(srv.url), 'cm-1: health check');
    for (let i = 0; i < 3; i++) await session.check(5000);
    session.destroy();
    assert.equal(srv.connections(), 1);
  });

  it('does not reuse a connection after Connection: close or a body without a length, and still passes', async () => {
    const srv = await rawServer((n, socket) => {
      if (n === 1) socket.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}');
      else socket.end('HTTP/1.0 200 OK\r\n\r\n{}');
    });
    const session = httpHealthSession(new URL(srv.url), 'cm-1: health check');
    await session.check(5000);
    await session.check(5000);
    await session.check(5000);
    session.destroy();
    assert.equal(srv.connections(), 3);
  });

  it('finds the end of a chunked body only when it is complete', () => {
    assert.equal(chunkedBodyEnd('0\r\n\r\n'), 5);
    assert.equal(chunkedBodyEnd('f\r\n{"status":"ok"}\r\n0\r\n\r\n'), 25);
    assert.equal(chunkedBodyEnd('f\r\n{"status":"ok"}\r\n0\r\n'), null);
    assert.equal(chunkedBodyEnd('f\r\n{"status"'), null);
    assert.equal(chunkedBodyEnd('2\r\n{}\r\n0\r\nA: b\r\n\r\n'), 18);
    assert.equal(chunkedBodyEnd('zz\r\n{}\r\n'), -1);
    assert.equal(chunkedBodyEnd('2\r\n{}XX0\r\n\r\n'), -1);
  });

  it('gives up on a silent server within the timeout, and the next probe connects afresh', async () => {
    let silent = true;
    const srv = await rawServer((_n, socket) => {
      if (!silent) socket.write(OK);
    });
    const session = httpHealthSession(new URL(srv.url), 'cm-1: health check');
    await assert.rejects(session.check(200), /cm-1: health check failed: no answer within 200 ms/);
    silent = false;
    await session.check(5000);
    session.destroy();
    assert.equal(srv.connections(), 2);
  });

  it('refuses an answer that is not HTTP', async () => {
    const srv = await rawServer((_n, socket) => socket.write('SSH-2.0-OpenSSH_9.2\r\n\r\n'));
    const session = httpHealthSession(new URL(srv.url), 'cm-1: health check');
    await assert.rejects(session.check(5000), /cm-1: health check failed: the answer is not HTTP/);
    session.destroy();
  });

  it('refuses checks after close', async () => {
    const srv = await nodeServer();
    const session = httpHealthSession(new URL(srv.url), 'cm-1: health check');
    await session.check(5000);
    await session.close();
    await assert.rejects(session.check(5000), /the health session is closed/);
  });
});

describe('health monitoring of a cluster_mgr node with an http:// health URL', () => {
  it('probes on one connection through the engine and the monitor, never renewed (no login to prove)', async () => {
    const srv = await nodeServer();
    const spec = await makeSpec('cluster_mgr', { healthUrl: srv.url, command: ['/bin/true'], policy: { probe: { intervalMs: 10, timeoutMs: 5000 } } });
    let ok = 0;
    const failures: string[] = [];
    const stop = monitorHealth(spec, engineFor('cluster_mgr'), {
      ok: () => ok++,
      failed: (e) => failures.push(e),
      sessionLost: () => failures.push('session lost'),
      debug: () => {},
    }, 1);
    try {
      const deadline = Date.now() + 30_000;
      while (ok < 10 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    } finally {
      stop();
    }
    assert.deepEqual(failures, []);
    assert.ok(ok >= 10, `${ok} probes passed`);
    assert.equal(srv.connections(), 1, `${srv.requests()} probes over ${srv.connections()} connections`);
  });

  it('takes a status line followed by the close as the answer, as the one-shot probe does', async () => {
    const srv = await rawServer((_n, socket) => socket.end('HTTP/1.1 200 OK\r\n'));
    const session = httpHealthSession(new URL(srv.url), 'cm-1: health check');
    await session.check(5000);
    session.destroy();
  });
});

// The response class behind the seed face's exact bytes: every way Node lets a handler set a
// header comes out spelled `Content-Length`, never `content-length` (PROTOCOL §1).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { ExactHeaderResponse, exactHeaderName } from '../../src/http/exact-headers.ts';

/** Serves one request with `handler` on a server built with ExactHeaderResponse; resolves the raw reply head. */
async function rawHead(handler: (res: ExactHeaderResponse) => void): Promise<string> {
  const server = http.createServer({ ServerResponse: ExactHeaderResponse }, (_req, res) => handler(res as ExactHeaderResponse));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as net.AddressInfo;
    const raw = await new Promise<string>((resolve, reject) => {
      let out = '';
      const s = net.connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.0\r\n\r\n'));
      s.on('data', (d) => (out += d.toString('latin1')));
      s.on('error', reject);
      s.on('close', () => resolve(out));
    });
    return raw.slice(0, raw.indexOf('\r\n\r\n'));
  } finally {
    server.close();
  }
}

describe('ExactHeaderResponse', () => {
  it('spells header names as HTTP documents them, and leaves a name given with capitals alone', () => {
    assert.equal(exactHeaderName('content-length'), 'Content-Length');
    assert.equal(exactHeaderName('x-request-id'), 'X-Request-Id');
    assert.equal(exactHeaderName('ETag'), 'ETag');
  });

  it('spells names set by setHeader, appendHeader, and writeHead with an object, a flat list or pairs', async () => {
    const heads = [
      await rawHead((res) => {
        res.setHeader('content-type', 'application/json');
        res.appendHeader('x-one', 'a');
        res.end('{}');
      }),
      await rawHead((res) => res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' }).end('{}')),
      await rawHead((res) => res.writeHead(200, 'OK', ['content-type', 'application/json', 'content-length', '2']).end('{}')),
      await rawHead((res) => res.writeHead(200, [['content-type', 'application/json'], ['content-length', '2']]).end('{}')),
    ];
    for (const head of heads) {
      assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(head, /\r\nContent-Type: application\/json(\r\n|$)/);
      assert.doesNotMatch(head, /\r\n[a-z][a-z-]*:/, head);
    }
    assert.match(heads[0]!, /\r\nX-One: a/);
    assert.match(heads[1]!, /\r\nContent-Length: 2/);
  });

  it('sends no Date and no charset on the seed face, and both elsewhere', async () => {
    const reply = (seedFace: boolean) =>
      rawHead((res) => {
        res.seedFace = seedFace;
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': '2' }).end('{}');
      });
    assert.deepEqual((await reply(true)).split('\r\n').slice(1).sort(), ['Connection: close', 'Content-Length: 2', 'Content-Type: application/json']);
    const rest = await reply(false);
    assert.match(rest, /\r\nDate: /);
    assert.match(rest, /\r\nContent-Type: application\/json; charset=utf-8/);
  });
});

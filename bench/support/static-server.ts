// The API baselines: a server answering POST / with a static JSON body of the same size as
// node-mgr's reply to the same job_type, without actors, SQLite or node views. Three kinds:
//   fastify  bare fastify 5 (Node + fastify + JSON.parse of the request): the floor of the stack;
//   http     bare node:http, the reply written in the 'request' event: the floor of Node's HTTP;
//   net      a node:net server that reads the request (head + Content-Length body), writes the
//            prepared reply bytes and ends (HTTP/1.0) or reads the next request (HTTP/1.1 keep-
//            alive): the ceiling of Node itself for one connection per request.
// Replies are spelled as node-mgr's seed face spells them (`Content-Type:`, `Content-Length:`, no
// Date, Node's Connection/Keep-Alive lines: PROTOCOL §1), so every kind sends the same bytes.
//
//   node --import tsx bench/support/static-server.ts --port N --replies FILE [--kind fastify|http|net]
//
// FILE maps job_type → the exact reply text. Prints "static-server listening on <url>" when ready.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import { ExactHeaderResponse } from '../../src/http/exact-headers.ts';

const { values } = parseArgs({ options: { port: { type: 'string' }, replies: { type: 'string' }, kind: { type: 'string', default: 'fastify' } } });
if (!values.port || !values.replies || !['fastify', 'http', 'net'].includes(values.kind!)) {
  console.error('usage: static-server.ts --port N --replies FILE [--kind fastify|http|net]');
  process.exit(2);
}
const replies = JSON.parse(readFileSync(values.replies, 'utf8')) as Record<string, string>;
const port = Number(values.port);

const jobTypeOf = (body: string): string => {
  try {
    return (JSON.parse(body) as { job_type?: string }).job_type ?? '';
  } catch {
    return '';
  }
};

if (values.kind === 'http') {
  const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = replies[jobTypeOf(Buffer.concat(chunks).toString())];
      res.sendDate = false;
      if (text === undefined) {
        res.writeHead(400, ['Content-Type', 'application/json']).end('{"result":"error","info":"no static reply"}');
        return;
      }
      res.writeHead(200, ['Content-Type', 'application/json', 'Content-Length', String(Buffer.byteLength(text))]).end(text);
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen(port, '127.0.0.1', () => console.log(`static-server listening on http://127.0.0.1:${port}`));
  process.on('SIGTERM', () => process.exit(0));
} else if (values.kind === 'net') {
  /** The whole reply per job type and connection kind, prepared once. */
  const prepared = new Map<string, Buffer>();
  const replyFor = (jobType: string, keepAlive: boolean): Buffer | undefined => {
    const key = `${keepAlive ? 'k' : 'c'}${jobType}`;
    let bytes = prepared.get(key);
    const text = replies[jobType];
    if (bytes === undefined && text !== undefined) {
      const conn = keepAlive ? 'Connection: keep-alive\r\nKeep-Alive: timeout=65' : 'Connection: close';
      bytes = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n${conn}\r\n\r\n${text}`);
      prepared.set(key, bytes);
    }
    return bytes;
  };
  const server = net.createServer((socket) => {
    let held: Buffer = Buffer.alloc(0);
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
      for (;;) {
        const end = held.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = held.subarray(0, end).toString('latin1');
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (held.length < end + 4 + length) return;
        const body = held.subarray(end + 4, end + 4 + length).toString();
        held = held.subarray(end + 4 + length);
        const keepAlive = head.includes(' HTTP/1.1\r\n') && !/\r\nconnection:\s*close/i.test(head);
        const bytes = replyFor(jobTypeOf(body), keepAlive);
        if (!bytes) return void socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
        if (!keepAlive) return void socket.end(bytes);
        socket.write(bytes);
      }
    });
  });
  server.listen(port, '127.0.0.1', () => console.log(`static-server listening on http://127.0.0.1:${port}`));
  process.on('SIGTERM', () => process.exit(0));
} else {
  await startFastify();
}

async function startFastify(): Promise<void> {
  // keepAliveTimeout as node-mgr's (src/http/app.ts): the Keep-Alive line is the same too.
  const app = Fastify({ logger: false, keepAliveTimeout: 65_000, http: { ServerResponse: ExactHeaderResponse } });
  // Like node-mgr, the body is JSON whatever the Content-Type says (the original clients send form-urlencoded).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(String(body)));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  app.post('/', async (req, reply) => {
    const jobType = (req.body as { job_type?: string } | undefined)?.job_type ?? '';
    const text = replies[jobType];
    if (text === undefined) return reply.code(400).send({ result: 'error', info: `no static reply for ${jobType}` });
    (reply.raw as ExactHeaderResponse).seedFace = true;
    return reply.type('application/json').send(text);
  });

  const url = await app.listen({ host: '127.0.0.1', port });
  console.log(`static-server listening on ${url}`);
  process.on('SIGTERM', () => {
    void app.close().then(() => process.exit(0));
  });
}

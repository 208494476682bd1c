// The API baseline: a bare fastify answering POST / with a static JSON body of the same size as
// node-mgr's reply to the same job_type — the floor of the stack (Node + fastify + JSON.parse of
// the request), without actors, SQLite or node views. Its replies are spelled as node-mgr's seed
// face spells them (`Content-Type:`, `Content-Length:`, no Date: PROTOCOL §1), so both sides send
// the same bytes.
//
//   node --import tsx bench/support/static-server.ts --port N --replies FILE
//
// FILE maps job_type → the exact reply text. Prints "static-server listening on <url>" when ready.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import { ExactHeaderResponse } from '../../src/http/exact-headers.ts';

const { values } = parseArgs({ options: { port: { type: 'string' }, replies: { type: 'string' } } });
if (!values.port || !values.replies) {
  console.error('usage: static-server.ts --port N --replies FILE');
  process.exit(2);
}
const replies = JSON.parse(readFileSync(values.replies, 'utf8')) as Record<string, string>;

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

const url = await app.listen({ host: '127.0.0.1', port: Number(values.port) });
console.log(`static-server listening on ${url}`);
process.on('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});

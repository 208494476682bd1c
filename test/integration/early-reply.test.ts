// A body declared over the limit is refused (413) before it is read. The client is still sending it
// then; node-mgr must close so that the client reads the 413, not a reset (EPIPE / ECONNRESET),
// however many such requests come. Real node-mgr process, Node's own HTTP client over keep-alive
// (as the fuzz suite sends them), no database server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { freePort, removeTempDirs, tempNodeDir } from '../support/nodes.ts';
import { startNodeMgrProcess, type NodeMgrProcess } from '../support/node-mgr-process.ts';

const BODY_LIMIT = 256 * 1024;
const REQUESTS = 1500;
const CONCURRENCY = 16;

/** One POST over the agent: its status, or the error that ended it before a whole reply came. */
function post(agent: http.Agent, port: number, body: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/', agent, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, timeout: 60_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(`${res.statusCode} ${Buffer.concat(chunks).toString()}`));
        res.on('error', (e: NodeJS.ErrnoException) => resolve(`reply error ${e.code ?? e.message}`));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(`request error ${e.code ?? e.message}`));
    req.end(body);
  });
}

describe('a body over the limit', () => {
  let mgr: NodeMgrProcess;
  let port: number;

  before(async () => {
    const root = path.dirname(await tempNodeDir());
    port = await freePort();
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port },
      stateDir: path.join(root, 'state'),
      security: { bodyLimitBytes: BODY_LIMIT },
    });
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await removeTempDirs();
  });

  it(`gets its 413 and never a reset, ${REQUESTS} times over keep-alive while the client still sends`, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const outcomes = new Map<string, number>();
    const body = (i: number) => JSON.stringify({ ver: '0.1', job_type: 'update_node', pad: ['x', 'é', '🐘'][i % 3]!.repeat([300_000, 600_000, 400_000][i % 4 % 3]!) });
    for (let i = 0; i < REQUESTS; i += CONCURRENCY) {
      const round = await Promise.all(Array.from({ length: Math.min(CONCURRENCY, REQUESTS - i) }, (_, k) => post(agent, port, body(i + k))));
      for (const r of round) outcomes.set(r, (outcomes.get(r) ?? 0) + 1);
    }
    agent.destroy();
    assert.deepEqual(Object.fromEntries(outcomes), { '413 {"result":"error","info":"request body is too large"}': REQUESTS });
    // And it keeps serving.
    assert.match(await post(new http.Agent(), port, '{"ver":"0.1","job_type":"get_info"}'), /^200 /);
  });
});

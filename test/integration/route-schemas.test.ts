// The routes' JSON schemas are compiled at each route's first request, not at start
// (http/lazy-schemas.ts): every one of them still compiles, and the first request of a route is
// validated, coerced and serialised as before.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import pino from 'pino';
import { parseConfig } from '../../src/config/load.ts';
import { startNodeMgr, type NodeMgr } from '../../src/daemon.ts';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api } from '../support/node-mgr-process.ts';

describe("the routes' schemas, compiled at first use", () => {
  let mgr: NodeMgr;

  before(async () => {
    const root = path.dirname(await tempNodeDir());
    const config = parseConfig({ listen: { host: '127.0.0.1', port: await freePort() }, stateDir: path.join(root, 'state'), runAs: TEST_RUN_AS });
    mgr = await startNodeMgr(config, { log: pino({ level: 'silent' }) });
  });

  after(async () => {
    await mgr?.close();
    await removeTempDirs();
  });

  it('refuses a path parameter of the wrong type at the first request of its route, in one sentence', async () => {
    const r = await api(mgr.url, 'GET', '/v1/nodes/not-a-port');
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(r.body, { result: 'error', info: 'invalid request: params/port must be integer' });
  });

  it('coerces a query parameter and serialises the reply by its schema at the first request of its route', async () => {
    const r = await api(mgr.url, 'GET', '/v1/backups?port=70000');
    assert.equal(r.status, 400, r.text);
    assert.match(r.body.info, /querystring\/port must be <= 65535/);
    const listed = await api(mgr.url, 'GET', '/v1/nodes');
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(listed.body, []);
  });

  it('compiles the schema of every route', () => {
    assert.doesNotThrow(() => mgr.http.schemas.compileAll());
  });
});

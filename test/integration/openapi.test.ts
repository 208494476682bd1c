// GET /docs/json: a valid OpenAPI description (swagger-parser, and Redocly's recommended rules
// with no error and no warning), with the bearer scheme, an operationId and 2xx/4xx replies on
// every operation, the probes and metrics documented; the docs UI at /docs/ui.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import SwaggerParser from '@apidevtools/swagger-parser';
import { freePort, removeTempDirs, tempNodeDir } from '../support/nodes.ts';
import { startNodeMgrProcess, type NodeMgrProcess } from '../support/node-mgr-process.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Operation {
  operationId?: string;
  summary?: string;
  security?: unknown[];
  responses: Record<string, unknown>;
}

describe('the OpenAPI description', () => {
  let mgr: NodeMgrProcess;
  let file: string;
  let doc: { openapi: string; paths: Record<string, Record<string, Operation>>; components: { securitySchemes: Record<string, { type: string; scheme: string }> } };

  before(async () => {
    const root = path.dirname(await tempNodeDir());
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), { listen: { host: '127.0.0.1', port: await freePort() }, stateDir: path.join(root, 'state'), security: { token: 't' } });
    const res = await fetch(`${mgr.url}/docs/json`);
    assert.equal(res.status, 200);
    doc = (await res.json()) as typeof doc;
    file = path.join(root, 'openapi.json');
    writeFileSync(file, JSON.stringify(doc));
  });

  after(async () => {
    await mgr?.stop();
    await removeTempDirs();
  });

  it('passes swagger-parser', async () => {
    await SwaggerParser.validate(structuredClone(doc) as never);
  });

  it("passes Redocly's recommended rules with no error and no warning", async () => {
    const r = await execa(path.join(ROOT, 'node_modules/.bin/redocly'), ['lint', '--extends', 'recommended', '--format', 'json', file], {
      reject: false,
      env: { REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    });
    const report = JSON.parse(r.stdout) as { totals: { errors: number; warnings: number }; problems: Array<{ ruleId: string; message: string }> };
    assert.deepEqual(report.totals, { errors: 0, warnings: 0, ignored: 0 }, report.problems.map((p) => `${p.ruleId}: ${p.message}`).join('\n'));
  });

  it('declares the bearer scheme, and every operation has an operationId, a 2xx and a 4xx', () => {
    assert.deepEqual(doc.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer', description: "security.token of node-mgr's config" });
    for (const [route, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const codes = Object.keys(op.responses);
        assert.ok(op.operationId, `${method} ${route} has an operationId`);
        assert.ok(codes.some((c) => /^2/.test(c)), `${method} ${route} documents a 2xx: ${codes}`);
        assert.ok(codes.some((c) => /^4/.test(c)), `${method} ${route} documents a 4xx: ${codes}`);
      }
    }
  });

  it('documents the probes and the metrics; the probes need no token', () => {
    for (const route of ['/healthz', '/readyz', '/metrics', '/v1/nodes/{port}/health']) assert.ok(doc.paths[route]?.get, route);
    assert.deepEqual(doc.paths['/readyz']!.get!.security, []);
    assert.equal(doc.paths['/v1/nodes/{port}/start']!.post!.security, undefined, 'the global bearer requirement applies');
  });

  it('serves the docs UI at /docs/ui, and GET /docs points there instead of looking up a job "docs"', async () => {
    const ui = await fetch(`${mgr.url}/docs/ui/`);
    assert.equal(ui.status, 200);
    const page = await ui.text();
    assert.match(page, /swagger-ui/i);
    // The UI is loaded at the first request (http/openapi.ts): its scripts, styles and the
    // document it shows are served whole, with their own types.
    const assets = [...page.matchAll(/(?:src|href)="\.\/([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(assets.some((a) => a.endsWith('swagger-ui-bundle.js')) && assets.some((a) => a.endsWith('.css')), assets.join(' '));
    for (const asset of assets) {
      const res = await fetch(`${mgr.url}/docs/ui/${asset}`);
      assert.equal(res.status, 200, asset);
      const body = Buffer.from(await res.arrayBuffer());
      assert.ok(body.length > 0, `${asset} is empty`);
      if (res.headers.has('content-length')) assert.equal(Number(res.headers.get('content-length')), body.length, asset);
      if (asset.endsWith('.js')) assert.match(res.headers.get('content-type') ?? '', /javascript/, asset);
    }
    const shown = await fetch(`${mgr.url}/docs/ui/json`);
    assert.equal(shown.status, 200);
    assert.deepEqual(Object.keys(((await shown.json()) as typeof doc).paths).sort(), Object.keys(doc.paths).sort(), 'the UI shows the document of /docs/json');
    const docs = await fetch(`${mgr.url}/docs`, { redirect: 'manual' });
    assert.equal(docs.status, 302);
    assert.equal(docs.headers.get('location'), '/docs/ui/');
  });
});

// The auth plugin (src/http/auth.ts): each route's declared access becomes its check, and a route
// that declares none keeps node-mgr from starting.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { installAuth, type Access } from '../../src/http/auth.ts';
import { errorHandler } from '../../src/http/errors.ts';
import { parseConfig } from '../../src/config/load.ts';

const AUTH = { authorization: 'Bearer t' };

async function appWith(security: Record<string, unknown>) {
  const config = parseConfig({ security });
  const app = Fastify();
  app.setErrorHandler(errorHandler);
  installAuth(app, config);
  const ok = async () => ({ result: 'succeed' });
  app.get('/open', { config: { access: 'open' } }, ok);
  app.get('/read', { config: { access: 'read' } }, ok);
  app.post('/mutate', { config: { access: 'mutate' }, schema: { body: { type: 'object', required: ['x'] } } }, ok);
  const byBody = (req: { body?: unknown }): Access => ((req.body as { kind?: Access } | undefined)?.kind ?? 'open');
  app.post('/decided', { config: { access: byBody } }, ok);
  await app.ready();
  return { app, config };
}

describe('route access (auth.ts)', () => {
  it('refuses to start when a route declares no access, naming the route', async () => {
    const app = Fastify();
    installAuth(app, parseConfig({}));
    app.get('/forgotten', async () => 'x');
    await assert.rejects(async () => app.ready(), /route GET \/forgotten declares no access/);
  });

  it('lets a plugin mark its own routes open from an onRoute hook of its scope', async () => {
    const app = Fastify();
    installAuth(app, parseConfig({ security: { token: 't', openReads: false } }));
    await app.register(async (scope) => {
      scope.addHook('onRoute', (route) => {
        route.config = { ...route.config, access: 'open' };
      });
      scope.get('/ui', async () => 'ui');
    });
    await app.ready();
    assert.equal((await app.inject({ url: '/ui' })).statusCode, 200);
  });

  it('refuses a mutation without a credential before its body is validated', async () => {
    const { app } = await appWith({ token: 't' });
    const refused = await app.inject({ method: 'POST', url: '/mutate', payload: {} });
    assert.equal(refused.statusCode, 401, refused.body);
    const invalid = await app.inject({ method: 'POST', url: '/mutate', payload: {}, headers: AUTH });
    assert.equal(invalid.statusCode, 400, invalid.body);
    assert.equal((await app.inject({ method: 'POST', url: '/mutate', payload: { x: 1 }, headers: { authorization: 'Bearer u' } })).statusCode, 403);
  });

  it('opens reads by security.openReads, read at each request', async () => {
    const { app, config } = await appWith({ token: 't' });
    assert.equal((await app.inject({ url: '/read' })).statusCode, 200);
    config.security = { ...config.security, openReads: false };
    assert.equal((await app.inject({ url: '/read' })).statusCode, 401);
    assert.equal((await app.inject({ url: '/read', headers: AUTH })).statusCode, 200);
    assert.equal((await app.inject({ url: '/open' })).statusCode, 200);
  });

  it('asks a route that decides by its request, after the body is parsed', async () => {
    const { app } = await appWith({ token: 't', openReads: false });
    assert.equal((await app.inject({ method: 'POST', url: '/decided', payload: { kind: 'open' } })).statusCode, 200);
    assert.equal((await app.inject({ method: 'POST', url: '/decided', payload: { kind: 'read' } })).statusCode, 401);
    assert.equal((await app.inject({ method: 'POST', url: '/decided', payload: { kind: 'mutate' } })).statusCode, 401);
    assert.equal((await app.inject({ method: 'POST', url: '/decided', payload: { kind: 'mutate' }, headers: AUTH })).statusCode, 200);
  });

  it('treats any method but GET and HEAD on an unknown URL as a mutation', async () => {
    const { app } = await appWith({ token: 't' });
    assert.equal((await app.inject({ method: 'POST', url: '/nope' })).statusCode, 401);
    assert.equal((await app.inject({ method: 'POST', url: '/nope', headers: AUTH })).statusCode, 404);
    assert.equal((await app.inject({ method: 'GET', url: '/nope' })).statusCode, 404);
  });
});

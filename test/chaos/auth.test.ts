// Authentication with security.token configured: every mutating legacy job type and every
// mutating REST route is refused (401 without a credential, 403 with a wrong one) and does nothing;
// reads follow security.openReads; the probes stay open by design.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { legacyRequests } from '../../src/http/legacy-requests.ts';
import { api } from '../support/node-mgr-process.ts';
import { ADMIN, authHeaders, startChaosCluster, type ChaosCluster } from './support/cluster.ts';
import { errorShapeProblem } from './support/chaos.ts';

const TOKEN = `chaos-${randomBytes(12).toString('hex')}`;
const READ_ONLY = new Set(['get_node', 'get_info', 'get_status']);
/** Probes answer without credentials on purpose (src/http/health.ts). */
const ALWAYS_OPEN = new Set(['/healthz', '/readyz', '/docs/json', '/v1/nodes/{port}/health']);

/** Credentials that must not pass: none, a wrong token, the right one in the wrong form, a spoofed source. */
const BAD_CREDENTIALS: Array<[string, Record<string, string>, number[]]> = [
  ['no credential', {}, [401]],
  ['a wrong token', { authorization: 'Bearer not-the-token' }, [403]],
  ['the token with a suffix', { authorization: `Bearer ${TOKEN}x` }, [403]],
  ['a prefix of the token', { authorization: `Bearer ${TOKEN.slice(0, -1)}` }, [403]],
  ['an empty bearer', { authorization: 'Bearer ' }, [401, 403]],
  ['Basic with the token', { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` }, [401, 403]],
  ['the bare token', { authorization: TOKEN }, [401, 403]],
  ['the token in another header', { 'x-auth-token': TOKEN, 'x-api-key': TOKEN }, [401]],
  ['X-Forwarded-For of the allow-listed address', { 'x-forwarded-for': '10.0.0.5', 'x-real-ip': '10.0.0.5' }, [401]],
];

describe('authentication when security.token is configured', () => {
  let c: ChaosCluster;
  const counts = { refusals: 0, legacyTypes: 0, restRoutes: 0, reads: 0 };
  let keep: { storage: number; computer: number };

  before(async () => {
    c = await startChaosCluster(
      [
        { name: 'storage', kind: 'mysql' },
        { name: 'computer', kind: 'postgres' },
      ],
      { security: { token: TOKEN, allowFrom: ['10.0.0.5'], openReads: true } },
    );
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: c.nodes.storage!.port, ...ADMIN });
    await conn.query('CREATE DATABASE chaos');
    await conn.query('CREATE TABLE chaos.keep (id INT PRIMARY KEY) ENGINE=InnoDB');
    await conn.end();
    const h = authHeaders(c.config);
    keep = {
      storage: (await api(c.mgr.url, 'GET', `/v1/nodes/${c.nodes.storage!.port}`, undefined, h)).body.pid,
      computer: (await api(c.mgr.url, 'GET', `/v1/nodes/${c.nodes.computer!.port}`, undefined, h)).body.pid,
    };
  });

  after(async () => {
    console.log(`[chaos] auth ${JSON.stringify(counts)}`);
    await c?.teardown();
  });

  /** A valid body for each legacy job type, aimed at the real nodes: it would act if it were let in. */
  function validBody(jobType: string): Record<string, unknown> {
    const s = { s_ip: '127.0.0.1', s_port: c.nodes.storage!.port, s_user: ADMIN.user, s_pwd: ADMIN.password };
    const bodies: Record<string, Record<string, unknown>> = {
      auto_pullup: { minutes: -1 },
      update_node: {},
      mysql_cmd: { cmd: `./stopmysql.sh ${c.nodes.storage!.port}` },
      pgsql_cmd: { cmd: `python2 stop_pg.py port=${c.nodes.computer!.port}` },
      cluster_cmd: { cmd: 'bash -x bin/cluster_mgr_safe --debug --pidfile=run.pid --stop cluster_mgr.cnf' },
      delete: { file_type: 'table', ...s, s_dbname: 'chaos', s_table_name: 'keep' },
      send: { file_type: 'table', ...s, s_dbname: 'chaos', s_table_name: 'keep', d_ip: '127.0.0.1', d_port: c.nodes.storage!.port, d_user: ADMIN.user, d_pwd: ADMIN.password, d_dbname: 'chaos', d_table_name: 'copy' },
      coldbackup: s,
      coldrestore: { ...s, file: '/coldbackup/chaos/shard1/coldback_20260101_000000.tgz' },
      get_node: { node_type: 'storage_node' },
      get_info: {},
      get_status: { job_id: 'nope' },
    };
    return { ver: '0.1', job_type: jobType, ...(bodies[jobType] ?? {}) };
  }

  async function restRoutes(): Promise<Array<{ method: string; route: string }>> {
    const docs = (await api(c.mgr.url, 'GET', '/docs/json')).body as { paths: Record<string, Record<string, unknown>> };
    const out: Array<{ method: string; route: string }> = [];
    for (const [route, ops] of Object.entries(docs.paths)) for (const method of Object.keys(ops)) out.push({ method: method.toUpperCase(), route });
    return out;
  }

  const fill = (route: string) => route.replace('{port}', String(c.nodes.storage!.port)).replace(/\{[^}]+\}/g, 'x');

  it('refuses every mutating legacy job type and upload without a valid credential', async () => {
    for (const jobType of Object.keys(legacyRequests).filter((t) => !READ_ONLY.has(t))) {
      counts.legacyTypes++;
      for (const [what, headers, statuses] of BAD_CREDENTIALS) {
        const r = await api(c.mgr.url, 'POST', '/', validBody(jobType), headers);
        assert.ok(statuses.includes(r.status), `${jobType} with ${what}: HTTP ${r.status} ${r.text}`);
        assert.equal(errorShapeProblem({ status: r.status, body: r.text }), null);
        counts.refusals++;
      }
    }
    const boundary = 'chaosBoundary';
    const multipart = `--${boundary}\r\nContent-Disposition: form-data; name="parameters"\r\n\r\n{"ver":"0.1","file_type":"mysql"}\r\n--${boundary}\r\nContent-Disposition: form-data; name="filename"; filename="auth.json"\r\n\r\n{}\r\n--${boundary}--\r\n`;
    for (const [what, headers, statuses] of BAD_CREDENTIALS) {
      const res = await fetch(`${c.mgr.url}/`, { method: 'POST', headers: { ...headers, 'content-type': `multipart/form-data; boundary=${boundary}` }, body: multipart });
      assert.ok(statuses.includes(res.status), `upload with ${what}: HTTP ${res.status}`);
      counts.refusals++;
    }
  });

  it('refuses every mutating REST route without a valid credential', async () => {
    for (const { method, route } of await restRoutes()) {
      // POST / is the legacy protocol, covered job type by job type above.
      if (method === 'GET' || method === 'HEAD' || route === '/') continue;
      counts.restRoutes++;
      for (const [what, headers, statuses] of BAD_CREDENTIALS) {
        const r = await api(c.mgr.url, method, fill(route), method === 'DELETE' ? undefined : {}, headers);
        assert.ok(statuses.includes(r.status), `${method} ${route} with ${what}: HTTP ${r.status} ${r.text}`);
        counts.refusals++;
      }
    }
    assert.ok(counts.restRoutes >= 10, `only ${counts.restRoutes} mutating routes found in /docs/json`);
  });

  it('did nothing for any refused request', async () => {
    const h = authHeaders(c.config);
    const storage = (await api(c.mgr.url, 'GET', `/v1/nodes/${c.nodes.storage!.port}`, undefined, h)).body;
    const computer = (await api(c.mgr.url, 'GET', `/v1/nodes/${c.nodes.computer!.port}`, undefined, h)).body;
    assert.equal(storage.pid, keep.storage);
    assert.equal(storage.state, 'running');
    assert.equal(storage.paused, false);
    assert.equal(computer.pid, keep.computer);
    assert.equal(computer.state, 'running');
    assert.deepEqual((await api(c.mgr.url, 'GET', '/v1/jobs', undefined, h)).body, []);
    const uploads = path.join(c.root, 'state', 'uploads');
    assert.deepEqual(existsSync(uploads) ? readdirSync(uploads, { recursive: true }).map(String).filter((f) => f.endsWith('.json')) : [], []);
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: c.nodes.storage!.port, ...ADMIN });
    const [rows] = await conn.query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'chaos'");
    await conn.end();
    assert.equal(Number((rows as Array<{ n: number }>)[0]!.n), 1);
    // The same request with the token is let in: the refusals above were the credential's doing.
    const ok = await api(c.mgr.url, 'POST', '/', { ver: '0.1', job_type: 'auto_pullup', minutes: 0 }, h);
    assert.equal(ok.status, 200, ok.text);
  });

  it('leaves reads open with openReads (the default), and closes them with openReads: false', async () => {
    const reads = async (expectOpen: boolean) => {
      for (const jobType of READ_ONLY) {
        counts.reads++;
        const r = await api(c.mgr.url, 'POST', '/', validBody(jobType));
        if (expectOpen) assert.equal(r.status, 200, `${jobType}: ${r.text}`);
        else assert.equal(r.status, 401, `${jobType}: ${r.text}`);
      }
      for (const { method, route } of await restRoutesWith(expectOpen)) {
        if (method !== 'GET' || /events/.test(route)) continue;
        counts.reads++;
        const r = await api(c.mgr.url, 'GET', fill(route));
        if (ALWAYS_OPEN.has(route) || expectOpen) assert.notEqual(r.status, 401, `GET ${route}: ${r.text}`);
        else assert.equal(r.status, 401, `GET ${route} without a credential: HTTP ${r.status}`);
      }
      // The server-sent event stream: only its status line matters.
      const ctl = new AbortController();
      const res = await fetch(`${c.mgr.url}/v1/events`, { signal: ctl.signal });
      ctl.abort();
      assert.equal(res.status === 401, !expectOpen, `GET /v1/events: ${res.status}`);
      const job = await api(c.mgr.url, 'GET', '/nope-job');
      assert.equal(job.status === 401, !expectOpen);
    };
    const restRoutesWith = async (open: boolean) => {
      if (open) return restRoutes();
      const docs = (await api(c.mgr.url, 'GET', '/docs/json')).body as { paths: Record<string, Record<string, unknown>> };
      return Object.entries(docs.paths).flatMap(([route, ops]) => Object.keys(ops).map((m) => ({ method: m.toUpperCase(), route })));
    };
    await reads(true);

    await c.mgr.stop('SIGTERM');
    (c.config.security as Record<string, unknown>).openReads = false;
    await c.restart();
    await reads(false);
    const h = authHeaders(c.config);
    for (const jobType of READ_ONLY) assert.equal((await api(c.mgr.url, 'POST', '/', validBody(jobType), h)).status, 200);
    assert.equal((await api(c.mgr.url, 'GET', '/v1/nodes', undefined, h)).status, 200);
    assert.equal((await api(c.mgr.url, 'GET', '/healthz')).status, 200);
  });
});

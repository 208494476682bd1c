// Fuzzing a real node-mgr over real MariaDB and PostgreSQL nodes: requests generated from the
// seed's shapes and mutated, broken multipart, odd framing, slow clients holding sockets open.
// Every reply must be 2xx or 4xx (JSON with an info sentence when 4xx), never 5xx; node-mgr must
// not crash; its memory and open fds must come back to their baseline; the nodes keep running.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { api, legacy } from '../support/node-mgr-process.ts';
import { freePort } from '../support/nodes.ts';
import { startChaosCluster, type ChaosCluster } from './support/cluster.ts';
import { chaosRng, errorShapeProblem, eventually, isAlive, openFds, rawExchange, rssBytes, scaled, type RawResponse } from './support/chaos.ts';
import { nextCase, type CorpusContext, type FuzzCase } from './support/corpus.ts';

const REQUESTS = scaled(1500, 12_000);
const WORKERS = 8;
const STALLED = scaled(20, 100);
const UPLOAD_LIMIT = 64 * 1024;
const BODY_LIMIT = 256 * 1024;
/** RSS may stay this much above the baseline once the run is over (V8 keeps some heap it grew). */
const RSS_MARGIN = 64 * 1024 * 1024;

interface Reply {
  status: number;
  body: string;
}

/** One request over a keep-alive agent; resolves null when no reply came (socket error, timeout). */
function send(agent: http.Agent, port: number, c: Extract<FuzzCase, { kind: 'http' }>, timeoutMs = 30_000): Promise<Reply | null> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: c.method, path: c.path, agent, headers: { ...c.headers, ...(c.body ? { 'content-length': String(c.body.length) } : {}) }, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', () => resolve(null));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(null));
    if (c.body) req.end(c.body);
    else req.end();
  });
}

describe(`fuzzing node-mgr with ${REQUESTS} requests`, () => {
  let c: ChaosCluster;
  const rng = chaosRng('fuzz');
  const tally = {
    requests: 0,
    responses: 0,
    status: {} as Record<string, number>,
    fiveXX: 0,
    noReply: 0,
    shapeProblems: 0,
    expectationMisses: 0,
    byKind: {} as Record<string, number>,
  };
  const problems: string[] = [];
  const seenProblems = new Map<string, number>();
  /** Each kind of problem once (by its first words), with how often it happened. */
  const note = (msg: string) => {
    const key = msg.slice(0, 70);
    seenProblems.set(key, (seenProblems.get(key) ?? 0) + 1);
    if (seenProblems.get(key) === 1) problems.push(msg);
  };
  const report: Record<string, unknown> = {};

  before(async () => {
    c = await startChaosCluster(
      [
        { name: 'storage', kind: 'mysql' },
        { name: 'computer', kind: 'postgres' },
      ],
      { security: { uploadLimitBytes: UPLOAD_LIMIT, bodyLimitBytes: BODY_LIMIT } },
    );
  });

  after(async () => {
    console.log(`[chaos] fuzz report ${JSON.stringify({ ...tally, ...report })}`);
    if (problems.length) console.log(`[chaos] fuzz problems:\n  ${problems.map((p) => `${seenProblems.get(p.slice(0, 70))}x ${p}`).join('\n  ')}`);
    // Whatever the fuzz paused is resumed before the nodes are torn down.
    await legacy(c.mgr.url, { ver: '0.1', job_type: 'auto_pullup', minutes: 0 }).catch(() => {});
    await c?.teardown();
  });

  function check(cs: FuzzCase, replies: RawResponse[] | Reply[], noReplyOk: boolean): void {
    tally.byKind[cs.kind] = (tally.byKind[cs.kind] ?? 0) + 1;
    const wanted = cs.kind === 'raw' ? cs.replies : 1;
    if (replies.length === 0 && !noReplyOk) {
      tally.noReply++;
      note(`no reply: ${cs.label}`);
    }
    replies.forEach((r, i) => {
      tally.responses++;
      const cls = `${Math.floor(r.status / 100)}xx`;
      tally.status[r.status] = (tally.status[r.status] ?? 0) + 1;
      if (r.status >= 500 || r.status < 200) {
        tally.fiveXX += r.status >= 500 ? 1 : 0;
        note(`HTTP ${r.status} for ${cs.label}: ${r.body.slice(0, 200)}`);
        return;
      }
      // Errors are always JSON with an info sentence; 2xx bodies may be pages (/metrics, /inspect).
      const isHead = cs.kind === 'http' && cs.method === 'HEAD';
      const shape = r.status >= 400 && !isHead ? errorShapeProblem(r) : null;
      if (shape) {
        tally.shapeProblems++;
        note(`${shape} (${cs.label})`);
      }
      if (cs.expect !== 'any' && cls !== cs.expect) {
        tally.expectationMisses++;
        note(`expected ${cs.expect}, got ${r.status} for ${cs.label}: ${r.body.slice(0, 160)}`);
      }
    });
    if (cs.kind === 'raw' && replies.length > 0 && replies.length < wanted && cs.expect === '2xx') {
      tally.noReply++;
      note(`only ${replies.length} of ${wanted} replies: ${cs.label}`);
    }
  }

  async function runCase(agent: http.Agent, cs: FuzzCase): Promise<void> {
    tally.requests++;
    if (cs.kind === 'http') {
      const r = await send(agent, c.apiPort, cs);
      check(cs, r ? [r] : [], false);
      if (r && r.status === 200 && cs.path === '/') {
        try {
          const id = (JSON.parse(r.body) as { job_id?: string }).job_id;
          if (id && ctx.jobIds.length < 500) ctx.jobIds.push(id);
        } catch {
          /* not JSON */
        }
      }
      return;
    }
    const x = await rawExchange(c.apiPort, cs.chunks, { expect: cs.replies, timeoutMs: 15_000, gapMs: cs.gapMs, halfClose: cs.halfClose });
    check(cs, x.responses, cs.mayGetNoReply === true);
    if (x.trailing.trim() !== '') note(`bytes after the last framed reply (${cs.label}): ${JSON.stringify(x.trailing.slice(0, 120))}`);
  }

  let ctx: CorpusContext;

  it('answers every request with 2xx or 4xx and an info sentence, never 5xx, and does not crash', async () => {
    const docs = (await api(c.mgr.url, 'GET', '/docs/json')).body as { paths: Record<string, Record<string, unknown>> };
    ctx = {
      realPorts: { mysql: c.nodes.storage!.port, postgres: c.nodes.computer!.port },
      unknownPorts: [1, 2, 65535, await freePort(), await freePort()],
      jobIds: [],
      // Server-sent events never end: they are not fuzzed here.
      getRoutes: Object.entries(docs.paths)
        .filter(([p, ops]) => 'get' in ops && !/events/.test(p))
        .map(([p]) => p),
      uploadLimitBytes: UPLOAD_LIMIT,
      bodyLimitBytes: BODY_LIMIT,
    };
    const pid = c.mgr.pid;
    const keep = {
      storage: (await api(c.mgr.url, 'GET', `/v1/nodes/${c.nodes.storage!.port}`)).body.pid,
      computer: (await api(c.mgr.url, 'GET', `/v1/nodes/${c.nodes.computer!.port}`)).body.pid,
    };

    const agent = new http.Agent({ keepAlive: true, maxSockets: WORKERS });
    const cases: FuzzCase[] = Array.from({ length: REQUESTS }, () => nextCase(rng, ctx));
    // Warm-up: the first tenth, so that JIT, pools and caches are in place before the baseline.
    const warm = Math.ceil(REQUESTS / 10);
    let next = 0;
    const workers = async (until: number) => {
      await Promise.all(
        Array.from({ length: WORKERS }, async () => {
          while (next < until) await runCase(agent, cases[next++]!);
        }),
      );
    };
    await workers(warm);
    await sleep(2000);
    const baseline = { rss: (await rssBytes(pid))!, fds: await openFds(pid) };

    // Slow clients: a header and then nothing, for the whole run.
    const stalled: net.Socket[] = [];
    for (let i = 0; i < STALLED; i++) {
      const s = net.connect(c.apiPort, '127.0.0.1');
      s.on('error', () => {});
      s.write(i % 2 === 0 ? 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"ver":' : 'POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
      stalled.push(s);
    }
    const started = Date.now();
    await workers(REQUESTS);
    report.seconds = Math.round((Date.now() - started) / 1000);
    const stillOpen = stalled.filter((s) => !s.destroyed).length;
    for (const s of stalled) s.destroy();
    agent.destroy();

    report.stalledClientsStillOpenAtEnd = stillOpen;
    assert.equal(await isAlive(pid), true, 'node-mgr crashed');
    assert.equal(c.mgr.child.exitCode, null);
    assert.deepEqual(problems, []);
    assert.equal(tally.fiveXX, 0);
    assert.equal(tally.noReply, 0);

    // Back to its baseline once idle: open fds at once (sockets closed), RSS after GC settles.
    const fds = await eventually('open fds back to the baseline', async () => {
      const n = await openFds(pid);
      return n <= baseline.fds + 5 ? n : undefined;
    }, 30_000, 500).catch(async () => openFds(pid));
    const rss = await eventually('RSS back to the baseline', async () => {
      const n = (await rssBytes(pid))!;
      return n <= baseline.rss + RSS_MARGIN ? n : undefined;
    }, 60_000, 1000).catch(async () => (await rssBytes(pid))!);
    Object.assign(report, { baselineRssMb: Math.round(baseline.rss / 1048576), finalRssMb: Math.round(rss / 1048576), baselineFds: baseline.fds, finalFds: fds });
    assert.ok(fds <= baseline.fds + 5, `node-mgr holds ${fds} fds, ${baseline.fds} before the fuzz`);
    assert.ok(rss <= baseline.rss + RSS_MARGIN, `node-mgr RSS ${rss} is more than ${RSS_MARGIN} above its baseline ${baseline.rss}`);

    // The nodes were never touched: same servers; no job left behind.
    assert.equal((await api(c.mgr.url, 'GET', `/v1/nodes/${c.nodes.storage!.port}`)).body.pid, keep.storage);
    assert.equal((await api(c.mgr.url, 'GET', `/v1/nodes/${c.nodes.computer!.port}`)).body.pid, keep.computer);
    await eventually('no job left queued or running', async () => {
      const left = [
        ...((await api(c.mgr.url, 'GET', '/v1/jobs?status=running')).body as unknown[]),
        ...((await api(c.mgr.url, 'GET', '/v1/jobs?status=queued')).body as unknown[]),
      ];
      return left.length === 0 ? true : undefined;
    }, 60_000, 500);
    assert.equal(c.mgr.lines.filter((l) => /uncaught|unhandled/i.test(l)).length, 0);
  });
});

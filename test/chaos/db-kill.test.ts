// Process faults: `kill -9` of the database servers again and again, at random moments (also while
// a server is still starting), with a writer committing rows the whole time. Never two servers on
// one data dir, every node back to `running` (or `failed` where the policy says so), and every
// row the database acknowledged is still there.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { api, waitForNode } from '../support/node-mgr-process.ts';
import { ADMIN, startChaosCluster, type ChaosCluster, type ChaosNode } from './support/cluster.ts';
import {
  chaosRng,
  DataDirWatch,
  MYSQL_SERVERS,
  mysqlAckWriter,
  PG_SERVERS,
  pgAckWriter,
  scaled,
  serversOnDataDir,
  Rng,
  type AckWriter,
} from './support/chaos.ts';

const KILLS = scaled(10, 100);
const programsOf = (n: ChaosNode) => (n.kind === 'mysql' ? MYSQL_SERVERS : PG_SERVERS);

describe(`kill -9 of database servers, ${KILLS} times each`, () => {
  let c: ChaosCluster;
  const rng = chaosRng('db-kill');
  const report: Record<string, unknown> = {};

  before(async () => {
    c = await startChaosCluster([
      { name: 'storage', kind: 'mysql' },
      { name: 'computer', kind: 'postgres' },
      // The policy gives up on this one after two restarts in the window.
      { name: 'fragile', kind: 'postgres', policy: { restart: { maxRestarts: 2, windowMs: 600_000, initialDelayMs: 100 } } },
    ]);
  });

  after(async () => {
    console.log(`[chaos] db-kill report ${JSON.stringify(report)}`);
    await c?.teardown();
  });

  /**
   * Kills whatever server runs on the node's data dir, `kills` times, after random gaps (a quarter
   * of them under 50 ms, so that starting servers are hit too). A gap that finds no server (the
   * node is in backoff) waits for the next one, bounded.
   */
  async function killLoop(node: ChaosNode, kills: number, r: Rng): Promise<{ kills: number; whileStarting: number; killed: Set<number> }> {
    let done = 0;
    let whileStarting = 0;
    // A pid SIGKILLed a moment ago may still show in /proc: each kill must hit a new server.
    const killed = new Set<number>();
    const deadline = Date.now() + kills * 15_000;
    while (done < kills && Date.now() < deadline) {
      await sleep(r.chance(0.25) ? r.int(0, 50) : r.int(50, 1500));
      let victims: number[] = [];
      for (let i = 0; i < 1200 && victims.length === 0; i++) {
        victims = (await serversOnDataDir(node.dataDir, programsOf(node))).filter((pid) => !killed.has(pid));
        if (victims.length === 0) await sleep(25);
      }
      if (victims.length === 0) {
        const v = (await api(c.mgr.url, 'GET', `/v1/nodes/${node.port}`)).body;
        const recent = (v.transitions ?? []).slice(0, 8).map((t: { from: string; to: string; detail: string | null }) => `${t.from}->${t.to}${t.detail ? ` (${t.detail})` : ''}`);
        throw new Error(`${node.name}: no server came back within 30 s after kill ${done}: ${JSON.stringify({ state: v.state, restarts: v.restarts, lastError: v.lastError, lastExit: v.lastExit, recent })}`);
      }
      const view = await api(c.mgr.url, 'GET', `/v1/nodes/${node.port}`);
      if (view.body.state === 'starting') whileStarting++;
      for (const pid of victims) {
        killed.add(pid);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      done++;
    }
    return { kills: done, whileStarting, killed };
  }

  async function ackedMissing(node: ChaosNode, writer: AckWriter): Promise<number[]> {
    let present: Set<number>;
    if (node.kind === 'mysql') {
      const conn = await mysql.createConnection({ host: '127.0.0.1', port: node.port, ...ADMIN });
      const [rows] = await conn.query('SELECT id FROM chaos.acks');
      await conn.end();
      present = new Set((rows as Array<{ id: number }>).map((x) => x.id));
    } else {
      const client = new pg.Client({ host: '127.0.0.1', port: node.port, ...ADMIN, database: 'postgres' });
      await client.connect();
      const r = await client.query('SELECT id FROM acks');
      await client.end();
      present = new Set(r.rows.map((x: { id: number }) => x.id));
    }
    return writer.acked.filter((id) => !present.has(id));
  }

  it('keeps one server per data dir, restarts each node every time, and loses no acknowledged row', async () => {
    const { storage, computer } = c.nodes as Record<string, ChaosNode>;
    const m = await mysql.createConnection({ host: '127.0.0.1', port: storage!.port, ...ADMIN });
    await m.query('CREATE DATABASE chaos');
    await m.query('CREATE TABLE chaos.acks (id INT PRIMARY KEY) ENGINE=InnoDB');
    await m.end();
    const p = new pg.Client({ host: '127.0.0.1', port: computer!.port, ...ADMIN, database: 'postgres' });
    await p.connect();
    await p.query('CREATE TABLE acks (id int PRIMARY KEY)');
    await p.end();

    const watch = new DataDirWatch(c.mgr.pid, [storage!, computer!].map((n) => ({ dataDir: n.dataDir, programs: programsOf(n) })));
    const writers = {
      storage: mysqlAckWriter({ port: storage!.port, ...ADMIN, table: 'chaos.acks' }),
      computer: pgAckWriter({ port: computer!.port, ...ADMIN, table: 'acks' }),
    };
    let ms: Awaited<ReturnType<typeof killLoop>>;
    let ps: Awaited<ReturnType<typeof killLoop>>;
    let back: Array<{ pid: number; restarts: number; wanted: string }>;
    const started = Date.now();
    try {
      [ms, ps] = await Promise.all([killLoop(storage!, KILLS, new Rng(rng.int(1, 2 ** 30))), killLoop(computer!, KILLS, new Rng(rng.int(1, 2 ** 30)))]);
      report.killSeconds = Math.round((Date.now() - started) / 1000);
      // Every node comes back on its own after the last kill, as a server that was not killed.
      back = await Promise.all(
        ([[storage!, ms], [computer!, ps]] as const).map(([n, k]) => waitForNode(c.mgr.url, n.port, (x) => x.state === 'running' && !k.killed.has(x.pid), 60_000)),
      );
      back.forEach((v) => c.pids.add(v.pid));
      // Let the writers commit against the final servers before they stop.
      await sleep(500);
    } finally {
      await writers.storage.stop();
      await writers.computer.stop();
      await watch.stop();
    }
    const maxServers = watch.max;

    report.kills = { storage: { kills: ms.kills, whileStarting: ms.whileStarting }, computer: { kills: ps.kills, whileStarting: ps.whileStarting } };
    report.acked = { storage: writers.storage.acked.length, computer: writers.computer.acked.length };
    report.writeFailures = { storage: writers.storage.failures, computer: writers.computer.failures };
    report.restarts = { storage: back[0].restarts, computer: back[1].restarts };
    report.watchSamples = watch.samples.count;
    report.maxServersPerDataDir = Object.fromEntries([...maxServers].map(([d, n]) => [d.split('/').slice(-2, -1)[0], n]));

    assert.equal(ms.kills, KILLS);
    assert.equal(ps.kills, KILLS);
    for (const [dir, n] of maxServers) assert.ok(n <= 1, `${n} servers at once on ${dir}: ${watch.evidence.join('; ')}`);
    assert.ok(writers.storage.acked.length > 0 && writers.computer.acked.length > 0, 'the writers committed rows');
    const lost = { storage: await ackedMissing(storage!, writers.storage), computer: await ackedMissing(computer!, writers.computer) };
    report.rowsLost = { storage: lost.storage.length, computer: lost.computer.length };
    assert.deepEqual(lost, { storage: [], computer: [] }, 'acknowledged rows are missing');
    for (const v of back) assert.equal(v.wanted, 'running');
  });

  it('ends a node in `failed` once its policy gives up, and then leaves it alone', async () => {
    const fragile = c.nodes.fragile!;
    let kills = 0;
    for (let i = 0; i < 20; i++) {
      const view = (await api(c.mgr.url, 'GET', `/v1/nodes/${fragile.port}`)).body;
      if (view.state === 'failed') break;
      const victims = await serversOnDataDir(fragile.dataDir, PG_SERVERS);
      for (const pid of victims) process.kill(pid, 'SIGKILL');
      kills += victims.length > 0 ? 1 : 0;
      await sleep(victims.length > 0 ? 300 : 100);
    }
    const failed = await waitForNode(c.mgr.url, fragile.port, (x) => x.state === 'failed', 30_000);
    report.fragile = { kills, restarts: failed.restarts, lastExit: failed.lastExit?.cause };
    assert.equal(failed.restarts, 2);
    assert.equal(failed.pid, null);
    // No crash loop: nothing starts on that data dir while the node is failed.
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(await serversOnDataDir(fragile.dataDir, PG_SERVERS), []);
      await sleep(100);
    }
    assert.equal((await api(c.mgr.url, 'GET', `/v1/nodes/${fragile.port}`)).body.state, 'failed');
    // An operator's START brings it back.
    const started = await api(c.mgr.url, 'POST', `/v1/nodes/${fragile.port}/start`);
    assert.equal(started.body.state, 'running', started.text);
    c.pids.add(started.body.pid);
  });
});

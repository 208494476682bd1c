// Health monitoring on one long-lived session per node, against real MariaDB and PostgreSQL
// servers started by a foreign parent (so node-mgr adopts them, as after its own restart).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { pino } from 'pino';
import { createActor } from 'xstate';
import { stateName } from '../../machines/node.machine.ts';
import type { NodeSpec } from '../../src/engines/node-spec.ts';
import { engineFor } from '../../src/engines/index.ts';
import { isAlive, sendSignal } from '../../src/host/process-info.ts';
import { monitorHealth } from '../../src/supervisor/health-monitor.ts';
import { nodeMachineFor } from '../../src/supervisor/node-actor.ts';
import { spawnFromForeignParent } from '../support/foreign-parent.ts';
import { makeSpec, removeTempDirs, tempNodeDir } from '../support/nodes.ts';

const started: number[] = [];
after(async () => {
  for (const pid of started) if (await isAlive(pid)) sendSignal(pid, 'SIGKILL');
  await removeTempDirs();
});

/** What a test needs to see from the server side, per engine. */
interface ServerView {
  /** The server's ids (MySQL connection id, PostgreSQL backend pid) of node-mgr's monitoring sessions now open. */
  monitorSessionIds(spec: NodeSpec): Promise<number[]>;
  /** Ends one session from the server side, as a DBA's KILL would. */
  killSession(spec: NodeSpec, id: number): Promise<void>;
  /** Logins the server accepted so far (the observer's excluded); null where not counted exactly. */
  logins(spec: NodeSpec): Promise<number | null>;
  /** Clients that went away without the protocol's goodbye (MariaDB logs "Aborted connection"); null where not counted. */
  abortedClients(spec: NodeSpec): Promise<number | null>;
}

/** Every observer login is counted, so that `logins` can leave them out. */
let mysqlObserverLogins = 0;
async function withMysql<T>(spec: NodeSpec, fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
  const c = await mysql.createConnection({ host: '127.0.0.1', port: spec.port, user: spec.user, password: spec.password });
  mysqlObserverLogins++;
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function withPg<T>(spec: NodeSpec, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host: '127.0.0.1', port: spec.port, user: spec.user, password: spec.password, database: 'postgres' });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const mysqlStatus = async (c: mysql.Connection, name: string) => {
  const [rows] = await c.query('SHOW GLOBAL STATUS LIKE ?', [name]);
  return Number((rows as Array<{ Value: string }>)[0]!.Value);
};

const mysqlView: ServerView = {
  monitorSessionIds: (spec) =>
    withMysql(spec, async (c) => {
      const [rows] = await c.query('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()', [spec.user]);
      return (rows as Array<{ ID: number }>).map((r) => Number(r.ID));
    }),
  killSession: (spec, id) => withMysql(spec, async (c) => void (await c.query(`KILL ${Number(id)}`))),
  async logins(spec) {
    const total = await withMysql(spec, (c) => mysqlStatus(c, 'Connections'));
    return total - mysqlObserverLogins;
  },
  abortedClients: (spec) => withMysql(spec, (c) => mysqlStatus(c, 'Aborted_clients')),
};

const pgView: ServerView = {
  monitorSessionIds: (spec) =>
    withPg(spec, async (c) => {
      const r = await c.query("SELECT pid FROM pg_stat_activity WHERE application_name = 'node-mgr health'");
      return r.rows.map((row: { pid: number }) => row.pid);
    }),
  killSession: (spec, id) => withPg(spec, async (c) => void (await c.query('SELECT pg_terminate_backend($1)', [id]))),
  // PostgreSQL counts sessions only in lagging statistics: the backend pid tells the story exactly.
  logins: async () => null,
  abortedClients: async () => null,
};

interface Results {
  ok: number;
  failed: string[];
  lost: number;
  stop: () => void;
}

function watchHealth(spec: NodeSpec, renewAfterMs?: number): Results {
  const results: Results = { ok: 0, failed: [], lost: 0, stop: () => {} };
  results.stop = monitorHealth(spec, engineFor(spec.kind), {
    ok: () => results.ok++,
    failed: (e) => results.failed.push(e),
    sessionLost: () => results.lost++,
    debug: () => {},
  }, renewAfterMs);
  return results;
}

/** Direct children of pid, from /proc/<n>/stat (field 4 is the parent pid). */
async function childrenOf(pid: number): Promise<number[]> {
  const kids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === pid) kids.push(Number(name));
  }
  return kids;
}

async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function healthSession(title: string, kind: 'mysql' | 'postgres', view: ServerView) {
  describe(title, () => {
    const engine = engineFor(kind);
    let spec: NodeSpec;
    let pid: number;

    before(async () => {
      spec = await makeSpec(kind, { user: 'nm_admin', password: 'health_pw', policy: { probe: { intervalMs: 100, timeoutMs: 1000 } } });
      await engine.initDataDir(spec);
      await engine.writeServerConfig(spec);
      const foreign = await spawnFromForeignParent(spec, { parentStays: false });
      if (foreign.parent.exitCode === null) await once(foreign.parent, 'exit');
      pid = foreign.pid;
      started.push(pid);
      await engine.waitReady(spec, pid, AbortSignal.timeout(60_000));
    });

    it('probes every interval on one session: one login for many probes, closed with the goodbye', async () => {
      const logins0 = await view.logins(spec);
      const aborted0 = await view.abortedClients(spec);
      const health = watchHealth(spec);
      await until('a first probe', () => health.ok >= 1);
      const [session, ...others] = await view.monitorSessionIds(spec);
      assert.deepEqual(others, []);
      await until('15 probes', () => health.ok >= 15);
      assert.deepEqual(await view.monitorSessionIds(spec), [session], 'the same session throughout');
      const logins1 = await view.logins(spec);
      if (logins0 !== null) assert.equal(logins1! - logins0, 1, `${health.ok} probes, one login`);
      assert.deepEqual(health.failed, []);
      health.stop();
      await until('the session to be closed', async () => (await view.monitorSessionIds(spec)).length === 0);
      const aborted1 = await view.abortedClients(spec);
      if (aborted0 !== null) assert.equal(aborted1, aborted0, 'no client aborted: the session ended with its goodbye');
    });

    it('reports a session the server ended at once, and the next probe logs in again', async () => {
      const health = watchHealth(spec);
      try {
        await until('a first probe', () => health.ok >= 1);
        const [session] = await view.monitorSessionIds(spec);
        const okBefore = health.ok;
        await view.killSession(spec, session!);
        await until('the loss to be reported', () => health.lost >= 1, 2000);
        await until('probes to pass again', () => health.ok >= okBefore + 3);
        const now = await view.monitorSessionIds(spec);
        assert.equal(now.length, 1);
        assert.notEqual(now[0], session, 'a new session replaced the ended one');
        // A probe in flight at the very moment of the KILL may fail once; the count resets at the next.
        assert.ok(health.failed.length <= 1, health.failed.join('; '));
      } finally {
        health.stop();
      }
    });

    it('counts a hung server as failed probes, each bounded by the timeout, and recovers when it answers again', async () => {
      const health = watchHealth(spec);
      try {
        await until('a first probe', () => health.ok >= 1);
        // The whole server hangs: the postmaster and its backends alike (each backend is a session leader of its own).
        const all = [pid, ...(await childrenOf(pid))];
        for (const p of all) sendSignal(p, 'SIGSTOP');
        const t0 = Date.now();
        try {
          await until('two failed probes', () => health.failed.length >= 2, 10_000);
        } finally {
          for (const p of all) sendSignal(p, 'SIGCONT');
        }
        assert.ok(Date.now() - t0 < 8000, 'each failure came within the probe timeout');
        assert.match(health.failed[0]!, new RegExp(`${spec.id}: SELECT 1 on .*:${spec.port} failed`));
        const okAt = health.ok;
        await until('probes to pass again', () => health.ok >= okAt + 2);
      } finally {
        health.stop();
      }
    });

    it('proves the login path too, by renewing the session: a server that accepts no login fails its probes', async () => {
      const health = watchHealth(spec, 300);
      try {
        await until('a first probe', () => health.ok >= 1);
        // Only the process that accepts logins hangs (the postmaster; for MariaDB, the server itself).
        sendSignal(pid, 'SIGSTOP');
        try {
          await until('a failed probe', () => health.failed.length >= 1, 10_000);
        } finally {
          sendSignal(pid, 'SIGCONT');
        }
        const okAt = health.ok;
        await until('probes to pass again', () => health.ok >= okAt + 2);
        assert.equal((await view.monitorSessionIds(spec)).length, 1, 'renewals leave one session, the old ones ended');
      } finally {
        health.stop();
      }
    });

    it('notices the exit of an adopted server when its session closes, long before the /proc poll', async (t) => {
      const trashDir = await tempNodeDir('trash');
      const machine = nodeMachineFor({
        spec,
        engine,
        trashDir,
        log: pino({ level: 'silent' }),
        serverLog: { maxBytes: 10_000_000, keep: 1 },
        adoptPollMs: 60_000,
      });
      const actor = createActor(machine, { input: { nodeId: spec.id, policy: spec.policy, wanted: 'stopped' } });
      let leftRunningAt = 0;
      actor.subscribe((snap) => {
        if (!leftRunningAt && stateName(snap.value) === 'crashed') leftRunningAt = Date.now();
      });
      actor.start();
      try {
        await until('adoption', () => stateName(actor.getSnapshot().value) === 'running');
        assert.equal(actor.getSnapshot().context.adopted, true);
        await until('the monitoring session', async () => (await view.monitorSessionIds(spec)).length === 1);
        const killedAt = Date.now();
        sendSignal(pid, 'SIGKILL');
        await until('the crash to be noticed', () => leftRunningAt > 0, 10_000);
        const latency = leftRunningAt - killedAt;
        t.diagnostic(`${kind}: kill -9 → crashed in ${latency} ms (the /proc poll is every 60 s here)`);
        assert.ok(latency < 5000, `noticed after ${latency} ms`);
        await until('stopped (it was wanted stopped)', () => stateName(actor.getSnapshot().value) === 'stopped');
      } finally {
        actor.stop();
      }
    });
  });
}

healthSession('MariaDB health session', 'mysql', mysqlView);
healthSession('PostgreSQL health session', 'postgres', pgView);

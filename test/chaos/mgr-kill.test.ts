// node-mgr faults: `kill -9` of node-mgr itself at random moments while jobs run on real nodes.
// Each round stops or starts one MariaDB node through mysql_cmd, drops a table on another through
// `delete`, refreshes the node list, kills node-mgr somewhere in the middle, and starts it again.
// Then: no job is left queued or running, every job that says it succeeded really did (the node's
// real processes, the table's real absence), and the databases nobody touched keep their pids.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import { api, legacy } from '../support/node-mgr-process.ts';
import { ADMIN, startChaosCluster, type ChaosCluster } from './support/cluster.ts';
import { chaosRng, eventually, MYSQL_SERVERS, scaled, serversOnDataDir } from './support/chaos.ts';

const ROUNDS = scaled(3, 20);
const SETTLED = new Set(['running', 'stopped', 'failed']);
const FINISHED = new Set(['succeeded', 'failed', 'interrupted', 'cancelled']);

describe(`kill -9 of node-mgr while jobs run, ${ROUNDS} rounds`, () => {
  let c: ChaosCluster;
  const rng = chaosRng('mgr-kill');
  const outcomes: Record<string, Record<string, number>> = {};
  const count = (type: string, status: string) => {
    outcomes[type] ??= {};
    outcomes[type]![status] = (outcomes[type]![status] ?? 0) + 1;
  };

  before(async () => {
    c = await startChaosCluster([
      { name: 'target', kind: 'mysql' },
      { name: 'tables', kind: 'mysql' },
      { name: 'bystander', kind: 'postgres' },
    ]);
  });

  after(async () => {
    console.log(`[chaos] mgr-kill outcomes ${JSON.stringify(outcomes)}`);
    await c?.teardown();
  });

  async function tableExists(port: number, table: string): Promise<boolean> {
    const conn = await mysql.createConnection({ host: '127.0.0.1', port, ...ADMIN });
    try {
      const [rows] = await conn.query('SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = ? AND table_name = ?', ['chaos', table]);
      return Number((rows as Array<{ n: number }>)[0]!.n) === 1;
    } finally {
      await conn.end();
    }
  }

  it('leaves no job running, reports no success that did not happen, and keeps untouched databases', async () => {
    const { target, tables, bystander } = c.nodes;
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: tables!.port, ...ADMIN });
    await conn.query('CREATE DATABASE chaos');
    for (let k = 0; k < ROUNDS; k++) await conn.query(`CREATE TABLE chaos.t${k} (id INT PRIMARY KEY) ENGINE=InnoDB`);
    await conn.end();
    const keep = {
      tables: (await api(c.mgr.url, 'GET', `/v1/nodes/${tables!.port}`)).body.pid as number,
      bystander: (await api(c.mgr.url, 'GET', `/v1/nodes/${bystander!.port}`)).body.pid as number,
    };
    const tag = rng.int(1, 2 ** 30).toString(36);

    for (let k = 0; k < ROUNDS; k++) {
      const before = (await api(c.mgr.url, 'GET', `/v1/nodes/${target!.port}`)).body;
      const verb = before.state === 'running' ? rng.pick(['stop', 'stop', 'restart'] as const) : 'start';
      const script = { stop: 'stopmysql.sh', start: 'startmysql.sh', restart: 'restartmysql.sh' }[verb];
      const ids = { cmd: `${tag}-r${k}-cmd`, drop: `${tag}-r${k}-drop`, update: `${tag}-r${k}-update` };
      const submitted = await Promise.all([
        legacy(c.mgr.url, { ver: '0.1', job_id: ids.cmd, job_type: 'mysql_cmd', cmd: `./${script} ${target!.port}` }),
        legacy(c.mgr.url, {
          ver: '0.1',
          job_id: ids.drop,
          job_type: 'delete',
          file_type: 'table',
          s_ip: '127.0.0.1',
          s_port: tables!.port,
          s_user: ADMIN.user,
          s_pwd: ADMIN.password,
          s_dbname: 'chaos',
          s_table_name: `t${k}`,
        }),
        legacy(c.mgr.url, { ver: '0.1', job_id: ids.update, job_type: 'update_node' }),
      ]);
      for (const r of submitted) assert.equal(r.status, 200, r.text);

      await sleep(rng.chance(0.2) ? 0 : rng.int(0, 1500));
      await c.mgr.stop('SIGKILL');
      await c.restart();

      // At once after the restart: no job of the killed node-mgr is still queued or running.
      const status: Record<string, { result: string; job_status: string; output?: { state?: string }; info: string }> = {};
      for (const [k2, id] of Object.entries(ids)) {
        const s = (await legacy(c.mgr.url, { ver: '0.1', job_type: 'get_status', job_id: id })).body;
        assert.notEqual(s.result, 'busy', `job ${id} is still ${s.job_status} after the restart`);
        assert.ok(['succeed', 'error'].includes(s.result), JSON.stringify(s));
        status[k2] = s;
      }
      for (const st of ['running', 'queued']) {
        const left = (await api(c.mgr.url, 'GET', `/v1/jobs?status=${st}`)).body as Array<{ id: string }>;
        assert.deepEqual(left.map((j) => j.id), [], `jobs still ${st} after the restart`);
      }

      // The target node, once settled, says what its processes really are.
      const view = await eventually('target settles', async () => {
        const v = (await api(c.mgr.url, 'GET', `/v1/nodes/${target!.port}`)).body;
        return SETTLED.has(v.state) ? v : undefined;
      });
      const servers = await serversOnDataDir(target!.dataDir, MYSQL_SERVERS);
      if (view.state === 'running') assert.deepEqual(servers, [view.pid], `target is running as ${view.pid}; /proc shows ${servers}`);
      else assert.deepEqual(servers, [], `target is ${view.state}; /proc shows servers ${servers}`);
      if (view.pid) c.pids.add(view.pid);

      const cmdStatus = (await api(c.mgr.url, 'GET', `/v1/jobs/${ids.cmd}`)).body.status as string;
      count(`mysql_cmd ${verb}`, cmdStatus);
      if (cmdStatus === 'succeeded') {
        const goal = verb === 'stop' ? 'stopped' : 'running';
        assert.equal(status.cmd!.output?.state, goal, JSON.stringify(status.cmd));
        assert.equal(view.state, goal, `the ${verb} job succeeded but the node is ${view.state}`);
      }

      const dropStatus = (await api(c.mgr.url, 'GET', `/v1/jobs/${ids.drop}`)).body.status as string;
      count('delete table', dropStatus);
      const exists = await tableExists(tables!.port, `t${k}`);
      if (dropStatus === 'succeeded') assert.equal(exists, false, `delete of chaos.t${k} succeeded but the table is there`);
      if (dropStatus === 'failed') assert.equal(exists, true, `delete of chaos.t${k} failed (${status.drop!.info}) but the table is gone`);

      count('update_node', (await api(c.mgr.url, 'GET', `/v1/jobs/${ids.update}`)).body.status as string);

      // Nobody asked anything of these two: same servers throughout.
      assert.equal((await api(c.mgr.url, 'GET', `/v1/nodes/${tables!.port}`)).body.pid, keep.tables);
      assert.equal((await api(c.mgr.url, 'GET', `/v1/nodes/${bystander!.port}`)).body.pid, keep.bystander);
    }

    const all = (await api(c.mgr.url, 'GET', '/v1/jobs?limit=1000')).body as Array<{ id: string; status: string }>;
    const mine = all.filter((j) => j.id.startsWith(tag));
    assert.equal(mine.length, ROUNDS * 3);
    for (const j of mine) assert.ok(FINISHED.has(j.status), `job ${j.id} is ${j.status}`);
  });
});

// The health probe's connections end the way a well-behaved client's do (COM_QUIT for MariaDB, a
// Terminate message for PostgreSQL): a DBA's error log stays free of "Aborted connection" noise
// and MariaDB's Aborted_clients does not grow, however many probes run. The probes themselves run
// on one monitoring session per node (test/integration/health-session.test.ts), so they log in
// once, not once per probe.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { createNode, killProcessGroups, startNodeMgrProcess, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { ADMIN, mysqlConn } from '../support/backup-data.ts';

async function globalStatus(port: number): Promise<Record<string, number>> {
  const c = await mysqlConn(port);
  try {
    const [rows] = await c.query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Aborted_clients', 'Connections')");
    return Object.fromEntries((rows as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name, Number(r.Value)]));
  } finally {
    await c.end();
  }
}

describe('health probe connections', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  const port = { mysql: 0, postgres: 0 };
  const pids: number[] = [];
  const PROBE_MS = 200;

  before(async () => {
    root = path.dirname(await tempNodeDir());
    port.mysql = await freePort();
    port.postgres = await freePort();
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      policy: { probe: { intervalMs: PROBE_MS, timeoutMs: 5000, startTimeoutMs: 60_000 } },
      nodes: [
        { kind: 'mysql', role: 'storage', port: port.mysql, dir: path.join(root, 'storage'), cluster: 'c1', shard: 's1', ...ADMIN },
        { kind: 'postgres', role: 'computer', port: port.postgres, dir: path.join(root, 'computer'), cluster: 'c1', ...ADMIN },
      ],
    });
    for (const p of [port.mysql, port.postgres]) {
      pids.push(await createNode(mgr.url, p));
    }
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('MariaDB: many probes leave Aborted_clients as it was and no "Aborted connection" in the error log', async () => {
    const before = await globalStatus(port.mysql);
    await sleep(15 * PROBE_MS);
    const after = await globalStatus(port.mysql);
    // 15 probes ran on the node's one monitoring session: no login of their own (the one counted is the reader's).
    assert.ok(after.Connections! - before.Connections! <= 2, `${after.Connections! - before.Connections!} logins in ${15 * PROBE_MS} ms`);
    assert.equal(after.Aborted_clients, before.Aborted_clients, 'probe connections were dropped without COM_QUIT');
    const errorLog = await readFile(path.join(root, 'storage/log/error.log'), 'utf8');
    const aborted = errorLog.split('\n').filter((l) => /Aborted connection/.test(l));
    assert.deepEqual(aborted.slice(0, 3), [], `${aborted.length} "Aborted connection" lines`);
  });

  it('PostgreSQL: many probes leave no "unexpected EOF" or "connection reset" in the server log', async () => {
    const logFile = path.join(root, 'computer/log/server.log');
    const at = (await readFile(logFile, 'utf8')).length;
    await sleep(15 * PROBE_MS);
    const log = await readFile(logFile, 'utf8');
    const noisy = log.split('\n').filter((l) => /unexpected EOF on client connection|could not receive data from client|Connection reset by peer/i.test(l));
    assert.deepEqual(noisy.slice(0, 3), [], `${noisy.length} lines of dropped client connections in ${logFile}`);
    assert.ok(log.length >= at);
  });
});

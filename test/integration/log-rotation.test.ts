// Every log a server writes is rotated by size, not only the captured output: MariaDB's own
// error.log (renamed, then FLUSH ERROR LOGS makes the server reopen it) and PostgreSQL's log (it
// writes to stderr, i.e. server.log; copy-truncate). Rotation never follows a link the servers'
// account put in a log's place. Real servers, one housekeeping pass with a small size limit.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, lstatSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import mysql from 'mysql2/promise';
import type { NodeSpec } from '../../src/engines/node-spec.ts';
import { engineFor } from '../../src/engines/index.ts';
import { mysqlPaths } from '../../src/engines/mysql/paths.ts';
import { isAlive, sendSignal } from '../../src/host/process-info.ts';
import { serverLogFile } from '../../src/engines/node-layout.ts';
import { houseKeep } from '../../src/supervisor/housekeeping.ts';
import { spawnServer } from '../../src/supervisor/spawn.ts';
import type { StateStore } from '../../src/state/store.ts';
import { makeSpec, removeTempDirs, TEST_RUN_AS } from '../support/nodes.ts';

const started: number[] = [];
after(async () => {
  for (const pid of started) if (await isAlive(pid)) sendSignal(pid, 'SIGKILL');
  await removeTempDirs();
});

async function running(kind: 'mysql' | 'postgres'): Promise<NodeSpec> {
  const spec = await makeSpec(kind, { user: 'admin', password: 'admin_pwd' });
  const engine = engineFor(kind);
  await engine.initDataDir(spec);
  await engine.writeServerConfig(spec);
  const server = await spawnServer(spec, engine.launchPlan(spec));
  started.push(server.pid);
  await engine.waitReady(spec, server.pid, AbortSignal.timeout(60_000));
  return spec;
}

/** One housekeeping pass with a 1 KiB limit, keeping 2 old copies. */
const pass = (spec: NodeSpec) =>
  houseKeep({
    store: { pruneTransitions: () => 0 } as unknown as StateStore,
    log: pino({ level: 'silent' }),
    specs: () => [spec],
    trashDir: '/nonexistent/node-mgr-trash',
    trashGraceMs: 1,
    serverLog: { maxBytes: 1024, keep: 2 },
  });

const digest = (file: string) => {
  const st = lstatSync(file);
  return `${st.uid} ${(st.mode & 0o7777).toString(8)} ${createHash('sha256').update(readFileSync(file)).digest('hex')}`;
};

describe('log rotation', () => {
  it("rotates MariaDB's error.log by rename + FLUSH ERROR LOGS: the server writes into a new error.log", async () => {
    const spec = await running('mysql');
    const { errorLog } = mysqlPaths(spec);
    // Make the error log large the way a server does: by writing to it (a warning per bad login).
    appendFileSync(errorLog, `${'x'.repeat(2000)}\n`);
    const sizeBefore = statSync(errorLog).size;
    assert.ok(sizeBefore > 1024);
    await pass(spec);
    assert.ok(existsSync(`${errorLog}.1`), 'error.log.1 exists');
    assert.ok(statSync(`${errorLog}.1`).size >= sizeBefore, 'the old content moved to error.log.1');
    // The server reopened: error.log is a new file that the server (the account) owns.
    assert.ok(existsSync(errorLog), 'the server made a new error.log');
    assert.ok(statSync(errorLog).size < sizeBefore);
    assert.equal(statSync(errorLog).uid, spec.runAs.uid);
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: spec.port, user: 'admin', password: 'admin_pwd' });
    await conn.query('SELECT 1');
    await conn.end();
  });

  it('does not rotate through a link the account put in place of error.log', async () => {
    const spec = await running('mysql');
    const { errorLog } = mysqlPaths(spec);
    const secret = path.join(path.dirname(spec.dir), 'root-secret');
    writeFileSync(secret, `${'s'.repeat(4096)}\n`, { mode: 0o600 });
    const before = digest(secret);
    execFileSync('runuser', ['-u', TEST_RUN_AS, '--', 'ln', '-sf', secret, errorLog]);
    await pass(spec);
    assert.equal(digest(secret), before);
    assert.ok(!existsSync(`${errorLog}.1`));
  });

  it("rotates PostgreSQL's log (its stderr, server.log) by copy-truncate", async () => {
    const spec = await running('postgres');
    const log = serverLogFile(spec);
    appendFileSync(log, `${'y'.repeat(2000)}\n`);
    await pass(spec);
    assert.match(readFileSync(`${log}.1`, 'utf8'), /database system is ready to accept connections/);
    assert.ok(statSync(log).size < 1024);
    assert.equal(engineFor('postgres').rotateOwnLogs, undefined, 'PostgreSQL writes no log of its own beside server.log');
  });
});

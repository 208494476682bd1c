// The database account against root: anyone with a database login can run programs as the
// servers' OS account (PostgreSQL `COPY … TO PROGRAM` as a superuser, MariaDB `SELECT … INTO
// OUTFILE`), and that account owns the node dirs. Each test plants what an attacker would plant
// (a link to a root-only file where node-mgr writes, reads or chowns), then triggers what used to
// follow it (a crash and the automatic restart, a restart request, a CREATE), and checks that no
// file outside the node's directory changed owner, mode or content and that nothing secret was
// served. Each failed before node-mgr handled node dirs without following links (docs/security.md).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { api, waitForNode } from '../support/node-mgr-process.ts';
import { TEST_RUN_AS } from '../support/nodes.ts';
import { ADMIN, startChaosCluster, type ChaosCluster } from './support/cluster.ts';

/** Owner, mode and content hash of a file (of the link itself never: the target is what must not change). */
function fingerprint(file: string): string {
  const st = lstatSync(file);
  const content = st.isDirectory() ? readdirSync(file).sort().join('\n') : readFileSync(file, 'utf8');
  return `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)} ${createHash('sha256').update(content).digest('hex')}`;
}

/** Runs a command as the servers' account, the way a database login can. */
const asAccount = (...argv: string[]) => execFileSync('runuser', ['-u', TEST_RUN_AS, '--', ...argv]);

describe('the database account cannot steer node-mgr (root) through the node dirs', () => {
  let c: ChaosCluster;
  let secretDir: string;
  const secrets: Record<string, { file: string; content: string; before: string }> = {};

  /** A root-owned 0600 file, like /etc/shadow, with a content that must never be served. */
  const secret = (name: string) => {
    const file = path.join(secretDir, name);
    const content = `TOP-SECRET-${name}-${randomBytes(8).toString('hex')}\n`;
    writeFileSync(file, content, { mode: 0o600 });
    chmodSync(file, 0o600);
    secrets[name] = { file, content, before: fingerprint(file) };
    return file;
  };
  const assertUntouched = () => {
    for (const [name, s] of Object.entries(secrets)) assert.equal(fingerprint(s.file), s.before, `${name} (${s.file}) changed`);
  };

  before(async () => {
    c = await startChaosCluster([
      { name: 'storage', kind: 'mysql' },
      { name: 'computer', kind: 'postgres' },
    ]);
    secretDir = path.join(c.root, 'root-only');
    mkdirSync(secretDir, { mode: 0o755 });
  });

  after(async () => {
    await c?.teardown();
  });

  it('COPY … TO PROGRAM links server.log and spawned.pid to root files, then the server is killed: the restart neither chowns, writes nor serves them', async () => {
    const node = c.nodes.computer!;
    const logTarget = secret('server-log-target');
    const pidTarget = secret('spawned-pid-target');
    const client = new pg.Client({ host: '127.0.0.1', port: node.port, database: 'postgres', ...ADMIN });
    await client.connect();
    try {
      // The attacker's whole toolbox: a superuser login. The program runs as the servers' account.
      await client.query(
        `COPY (SELECT 1) TO PROGRAM 'ln -sf ${logTarget} ${node.dir}/log/server.log && ln -sf ${pidTarget} ${node.dir}/run/spawned.pid'`,
      );
    } finally {
      await client.end();
    }
    assert.ok(lstatSync(path.join(node.dir, 'log/server.log')).isSymbolicLink(), 'the planted link is in place');
    const before = await api(c.mgr.url, 'GET', `/v1/nodes/${node.port}`);
    process.kill(before.body.pid, 'SIGKILL');
    const after = await waitForNode(c.mgr.url, node.port, (n) => n.state === 'running' && n.pid !== before.body.pid && n.restarts > before.body.restarts, 90_000);
    assertUntouched();
    const served = JSON.stringify(after) + (await api(c.mgr.url, 'GET', '/v1/nodes')).text + (await api(c.mgr.url, 'POST', '/', { ver: '0.1', job_type: 'get_node' })).text;
    for (const s of Object.values(secrets)) assert.ok(!served.includes(s.content.trim()), 'a root file was served');
    // node-mgr replaced the links with files of its own.
    assert.ok(lstatSync(path.join(node.dir, 'log/server.log')).isFile());
    assert.ok(lstatSync(path.join(node.dir, 'run/spawned.pid')).isFile());
  });

  it('a my.cnf linked to a root file by the account is replaced, not written through, by the next restart', async () => {
    const node = c.nodes.storage!;
    const target = secret('my-cnf-target');
    asAccount('ln', '-sf', target, path.join(node.dir, 'my.cnf'));
    const before = await api(c.mgr.url, 'GET', `/v1/nodes/${node.port}`);
    const r = await api(c.mgr.url, 'POST', `/v1/nodes/${node.port}/restart`);
    assert.equal(r.status, 200, r.text);
    await waitForNode(c.mgr.url, node.port, (n) => n.state === 'running' && n.pid !== before.body.pid, 90_000);
    assertUntouched();
    assert.ok(lstatSync(path.join(node.dir, 'my.cnf')).isFile());
    assert.match(readFileSync(path.join(node.dir, 'my.cnf'), 'utf8'), /Generated by node-mgr/);
  });
});

// The command line against a real node-mgr with a real MariaDB node, reads closed
// (security.openReads false): every command finds the address and the token in the config file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { execa } from 'execa';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { api, BIN, killProcessGroups, startNodeMgrProcess, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { ADMIN } from '../support/backup-data.ts';
import { buildProgram } from '../../src/cli/program.ts';

const TOKEN = 'cli-test-token';
const auth = { authorization: `Bearer ${TOKEN}` };

describe('the node-mgr command line', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let file: string;
  let port: number;
  const pids: number[] = [];

  const cli = (args: string[], env: Record<string, string> = {}) => execa(process.execPath, [BIN, ...args], { reject: false, env: { NO_COLOR: '', FORCE_COLOR: '', ...env } });

  before(async () => {
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    const config = {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      security: { token: TOKEN, openReads: false },
      policy: { restart: { initialDelayMs: 200, jitter: 0 }, probe: { intervalMs: 1000, startTimeoutMs: 60_000 } },
      backup: { store: 'local', localDir: path.join(root, 'backups') },
      nodes: [{ kind: 'mysql', role: 'storage', port, dir: path.join(root, 'storage'), cluster: 'clust1', shard: 'shard1', ...ADMIN }],
    };
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), config);
    file = path.join(root, 'mgr', 'node-mgr.json');
    const created = await api(mgr.url, 'POST', `/v1/nodes/${port}/create`, undefined, auth);
    assert.equal(created.status, 200, created.text);
    pids.push(created.body.pid);
  });

  after(async () => {
    const live = mgr ? await api(mgr.url, 'GET', '/v1/nodes', undefined, auth).then((r) => (r.body as { pid: number | null }[]).map((n) => n.pid ?? 0)).catch(() => []) : [];
    await mgr?.stop('SIGKILL');
    await killProcessGroups([...pids, ...live]);
    await removeTempDirs();
  });

  it('has help for every command, and --version', async () => {
    for (const cmd of buildProgram().commands) {
      assert.ok(cmd.description().length > 10, `${cmd.name()} has a description`);
      assert.match(cmd.helpInformation(), new RegExp(`Usage: node-mgr ${cmd.name()}`));
    }
    const help = await cli(['start', '--help']);
    assert.equal(help.exitCode, 0, help.stderr);
    assert.match(help.stdout, /--config <file>/);
    const version = await cli(['--version']);
    assert.equal(version.stdout.trim(), '0.1.0');
  });

  it('nodes --config shows the node with uptime, CPU, memory and cluster/shard, using the file\'s token', async () => {
    const table = await cli(['nodes', '--config', file]);
    assert.equal(table.exitCode, 0, table.stderr);
    const [header, row] = table.stdout.split('\n');
    assert.match(header!, /NODE\s+ROLE\s+PORT\s+STATE\s+WANTED\s+PID\s+UPTIME\s+CPU\s+MEM\s+CLUSTER\/SHARD\s+RESTARTS/);
    assert.match(row!, new RegExp(`mysql-${port}\\s+storage\\s+${port}\\s+running\\s+running\\s+\\d+\\s+\\d+s\\s+\\S+\\s+\\S+.*clust1/shard1\\s+0`));
    assert.doesNotMatch(table.stdout, /\x1b\[/, 'no colour when stdout is not a terminal');
    const coloured = await cli(['status', '--config', file], { FORCE_COLOR: '1' });
    assert.match(coloured.stdout, /\x1b\[32mrunning/, 'running in green on a terminal');
    const json = await cli(['nodes', '--config', file, '--json']);
    const nodes = JSON.parse(json.stdout) as Array<{ port: number; cluster: string; state: string }>;
    assert.deepEqual(nodes.map((n) => [n.port, n.cluster, n.state]), [[port, 'clust1', 'running']]);
  });

  it('says what to do when the credential is missing, and a read is not called a change', async () => {
    const bare = await cli(['nodes', '--url', mgr.url]);
    assert.equal(bare.exitCode, 1);
    assert.match(bare.stderr, /pass --config with the file that has security\.token, --token, or NODE_MGR_TOKEN/);
    assert.doesNotMatch(bare.stderr, /changes state/);
    const wrong = await cli(['nodes', '--url', mgr.url, '--token', 'nope']);
    assert.match(wrong.stderr, /refused the token/);
    const down = await cli(['nodes', '--url', `http://127.0.0.1:${await freePort()}`]);
    assert.match(down.stderr, /is not answering: nothing listens there/);
    const unknown = await cli(['stop', 'mysql-1', '--config', file]);
    assert.match(unknown.stderr, new RegExp(`no node mysql-1; the nodes are: mysql-${port} \\(${port}\\)`));
  });

  it('stop, start and restart a node by port or id', async () => {
    const stopped = await cli(['stop', String(port), '--config', file]);
    assert.equal(stopped.exitCode, 0, stopped.stderr);
    assert.match(stopped.stdout, new RegExp(`mysql-${port}: stopped`));
    const started = await cli(['start', `mysql-${port}`, '--config', file]);
    assert.equal(started.exitCode, 0, started.stderr);
    assert.match(started.stdout, /running \(pid \d+\)/);
    const restarted = await cli(['restart', String(port), '--config', file, '--json']);
    assert.equal(restarted.exitCode, 0, restarted.stderr);
    const view = JSON.parse(restarted.stdout) as { state: string; pid: number };
    assert.equal(view.state, 'running');
    pids.push(view.pid);
  });

  it('logs prints the server log and -f follows it across a restart', async () => {
    const tail = await cli(['logs', String(port), '--config', file, '-n', '5']);
    assert.equal(tail.exitCode, 0, tail.stderr);
    const lines = tail.stdout.trimEnd().split('\n');
    assert.ok(lines.length >= 1 && lines.length <= 5, tail.stdout);
    const follow = spawn(process.execPath, [BIN, 'logs', String(port), '--config', file, '-f', '-n', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    follow.stdout!.on('data', (c) => (out += c));
    try {
      // The restart must come after the follower has read its starting point (its first line).
      for (let i = 0; i < 600 && out.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      const before_ = out.length;
      const restarted = await api(mgr.url, 'POST', `/v1/nodes/${port}/restart`, undefined, auth);
      pids.push(restarted.body.pid);
      const deadline = Date.now() + 30_000;
      while (!/ready for connections/.test(out.slice(before_)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      assert.match(out.slice(before_), /ready for connections/, out.slice(-2000));
    } finally {
      follow.kill('SIGTERM');
    }
  });

  it('backup follows the job to the end; backups lists it; jobs shows it; restore puts it back', async () => {
    const backup = await cli(['backup', String(port), '--config', file]);
    assert.equal(backup.exitCode, 0, backup.stdout + backup.stderr);
    assert.match(backup.stdout, /coldbackup succeeded/);
    const listing = await cli(['backups', '--config', file, '--json']);
    const [entry] = JSON.parse(listing.stdout) as Array<{ node: string; backups: Array<{ path: string }> }>;
    assert.equal(entry!.backups.length, 1, listing.stdout);
    const table = await cli(['backups', '--config', file]);
    assert.match(table.stdout, new RegExp(`mysql-${port}\\s+\\S+\\s+[\\d.]+ [KMG]?i?B`));
    const jobs = await cli(['jobs', '--config', file]);
    assert.match(jobs.stdout, new RegExp(`coldbackup\\s+mysql-${port}\\s+succeeded`));
    const refused = await cli(['restore', String(port), entry!.backups[0]!.path, '--config', file]);
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, /add --yes to confirm/);
    const restored = await cli(['restore', String(port), entry!.backups[0]!.path, '--config', file, '--yes']);
    assert.equal(restored.exitCode, 0, restored.stdout + restored.stderr);
    assert.match(restored.stdout, /coldrestore succeeded/);
    const after_ = await api(mgr.url, 'GET', `/v1/nodes/${port}`, undefined, auth);
    assert.equal(after_.body.state, 'running');
    pids.push(after_.body.pid);
  });

  it('wait-ready returns once node-mgr is ready', async () => {
    const ready = await cli(['wait-ready', '--config', file, '--timeout', '20']);
    assert.equal(ready.exitCode, 0, ready.stderr);
  });
});

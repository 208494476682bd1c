// node-mgr's own log: readable lines on a terminal, JSON lines into a pipe (journald, shippers),
// and --log-level. A node-mgr with no node is enough.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, removeTempDirs, tempNodeDir } from '../support/nodes.ts';
import { BIN } from '../support/node-mgr-process.ts';
import { stateDirHolder } from '../../src/state/lock.ts';

/**
 * Runs `serve` until its output matches `until` (or it has served for a while), then SIGTERM to its
 * process group and to the node-mgr holding the state dir, and returns once that node-mgr has let go
 * of it. Under `script` the node-mgr runs in the pseudo-terminal's own session, so `script` can exit
 * before it does; the next serve on the same state dir would then be refused as a second node-mgr.
 */
async function serveOutput(stateDir: string, argv: string[], until: RegExp | (() => Promise<boolean>), viaTerminal = false): Promise<string> {
  const [cmd, args] = viaTerminal
    ? // `script` gives node-mgr a pseudo-terminal as stdout, as an operator's shell would.
      ['script', ['-qfec', [process.execPath, BIN, ...argv].map((a) => `'${a}'`).join(' '), '/dev/null']]
    : [process.execPath, [BIN, ...argv]];
  const child = spawn(cmd, args as string[], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  const exited = new Promise((r) => child.once('exit', r));
  const deadline = Date.now() + 60_000;
  const done = async () => (until instanceof RegExp ? until.test(out) : until());
  while (!(await done()) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
  // Under `script` node-mgr is in another session: the signal to script's group may never reach it
  // (script passes SIGTERM to the shell it started, and the pty's hangup is SIGHUP, which node-mgr
  // takes as "reload the config"). So node-mgr is also sent SIGTERM by the pid that holds the state dir.
  const holder = await stateDirHolder(stateDir);
  for (const pid of [-child.pid!, ...(holder === null ? [] : [holder])]) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  await exited;
  const released = Date.now() + 60_000;
  for (let holder = await stateDirHolder(stateDir); holder !== null; holder = await stateDirHolder(stateDir)) {
    if (Date.now() > released) {
      process.kill(holder, 'SIGKILL');
      throw new Error(`node-mgr (pid ${holder}) still held ${stateDir} 60 s after SIGTERM`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return out;
}

describe("node-mgr's own log", () => {
  let file: string;
  let port: number;
  let stateDir: string;

  before(async () => {
    const root = path.dirname(await tempNodeDir());
    port = await freePort();
    file = path.join(root, 'node-mgr.json');
    stateDir = path.join(root, 'state');
    writeFileSync(file, JSON.stringify({ listen: { host: '127.0.0.1', port }, stateDir }));
  });

  after(removeTempDirs);

  it('is JSON lines when stdout is a pipe', async () => {
    const out = await serveOutput(stateDir, ['serve', '--config', file], /node-mgr is serving/);
    const serving = out.split('\n').find((l) => l.includes('node-mgr is serving'))!;
    assert.equal((JSON.parse(serving) as { level: number }).level, 30);
  });

  it('is readable lines with level names on a terminal', async () => {
    const out = await serveOutput(stateDir, ['serve', '--config', file], /node-mgr is serving/, true);
    const serving = out.split('\n').find((l) => l.includes('node-mgr is serving'));
    assert.ok(serving, out);
    assert.match(serving, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: node-mgr is serving/);
    assert.throws(() => JSON.parse(serving));
  });

  it('--log-format pretty into a pipe, and --log-level warn drops the info lines', async () => {
    const pretty = await serveOutput(stateDir, ['serve', '--config', file, '--log-format', 'pretty'], /node-mgr is serving/);
    assert.match(pretty, /INFO: node-mgr is serving/);
    const healthy = () => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
    const quiet = await serveOutput(stateDir, ['serve', '--config', file, '--log-level', 'warn'], healthy);
    assert.doesNotMatch(quiet, /node-mgr is serving/);
    const refused = await serveOutput(stateDir, ['serve', '--config', file, '--log-level', 'loud'], healthy);
    assert.match(refused, /argument 'loud' is invalid\. Allowed choices are fatal, error, warn, info, debug, trace, silent/);
  });
});

// packaging/node-mgr.service passes `systemd-analyze verify` (Debian's systemd package; PID 1 need
// not be systemd) and keeps the settings the README's "Install as a service" promises.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const UNIT = readFileSync(path.join(ROOT, 'packaging/node-mgr.service'), 'utf8');

/** systemd-analyze verify of a unit text; its warnings (a misspelt value, a missing program) exit 0, so they count too. */
async function verify(text: string): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'unit-'));
  try {
    const file = path.join(dir, 'node-mgr.service');
    writeFileSync(file, text);
    const r = await execa('systemd-analyze', ['verify', file], { reject: false, env: { SYSTEMD_LOG_COLOR: '0' } });
    return `${r.exitCode === 0 ? '' : `exit ${r.exitCode}\n`}${r.stdout}${r.stderr}`.trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The unit names the installed program; verify needs it to exist, so it is pointed at this checkout's bin. */
const asInstalledHere = (text: string) => text.replaceAll('/usr/bin/node-mgr', path.join(ROOT, 'bin/node-mgr.js'));

function setting(name: string): string[] {
  return [...UNIT.matchAll(new RegExp(`^${name}=(.*)$`, 'gm'))].map((m) => m[1]!);
}

describe('the systemd unit', () => {
  it('passes systemd-analyze verify without a warning', async () => {
    assert.equal(await verify(asInstalledHere(UNIT)), '');
  });

  it('is checked for real: a misspelt value is reported', async () => {
    assert.match(await verify(asInstalledHere(UNIT).replace('KillMode=process', 'KillMode=proces')), /Failed to parse kill mode/);
  });

  it('runs node-mgr unprivileged, leaves the databases running on stop, reloads by SIGHUP, restarts on failure, waits for readiness', () => {
    assert.deepEqual(setting('User'), ['nodemgr']);
    assert.deepEqual(setting('KillMode'), ['process']);
    assert.deepEqual(setting('ExecReload'), ['/bin/kill -HUP $MAINPID']);
    assert.deepEqual(setting('Restart'), ['on-failure']);
    assert.deepEqual(setting('StateDirectory'), ['node-mgr']);
    assert.match(setting('ExecStart')[0]!, /^\/usr\/bin\/node-mgr serve --config \/etc\/node-mgr\/node-mgr.json/);
    assert.match(setting('ExecStartPost')[0]!, /^\/usr\/bin\/node-mgr wait-ready --config \/etc\/node-mgr\/node-mgr.json/);
  });
});

// The published package: `npm pack` builds dist/ and ships only what runs; the tarball installs in
// an empty directory, and its `node-mgr` bin (the compiled code, no tsx) answers --help and runs the
// demo until SIGTERM.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { freePort, tempNodeDir, removeTempDirs } from '../support/nodes.ts';
import { api, killProcessGroups } from '../support/node-mgr-process.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('the npm package', () => {
  let work = '';
  let tarball = '';
  let files: string[] = [];
  let bin = '';
  const pids: number[] = [];

  before(async () => {
    work = path.dirname(await tempNodeDir('package'));
    // Pack a copy of the checkout, so the test's build never replaces the checkout's own dist/.
    const src = path.join(work, 'src');
    mkdirSync(src);
    for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'bin', 'src', 'machines', 'scripts', 'packaging']) {
      if (existsSync(path.join(ROOT, entry))) cpSync(path.join(ROOT, entry), path.join(src, entry), { recursive: true });
    }
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'));
    const out = path.join(work, 'out');
    mkdirSync(out);
    const packed = await execa('npm', ['pack', '--json', '--pack-destination', out], { cwd: src, stderr: 'pipe' });
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = path.join(out, info!.filename);
    files = info!.files.map((f) => f.path);

    const app = path.join(work, 'app');
    mkdirSync(app);
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'node-mgr-install-check', private: true }));
    // --ignore-scripts, then the checkout's compiled better-sqlite3 (the very version the
    // shrinkwrap pins): compiling SQLite again would cost minutes of a 2-core machine.
    await execa('npm', ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', tarball], { cwd: app });
    const version = (dir: string) => (JSON.parse(readFileSync(path.join(dir, 'node_modules/better-sqlite3/package.json'), 'utf8')) as { version: string }).version;
    assert.equal(version(app), version(ROOT), 'the shrinkwrap pins the tested better-sqlite3');
    cpSync(path.join(ROOT, 'node_modules/better-sqlite3/build'), path.join(app, 'node_modules/better-sqlite3/build'), { recursive: true });
    bin = path.join(app, 'node_modules/.bin/node-mgr');
  });

  after(async () => {
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('ships the compiled code, the inspector page and the lockfile, and no sources, tests or benches', () => {
    assert.ok(files.includes('dist/src/main.js'), files.join('\n'));
    assert.ok(files.includes('dist/src/http/inspector/page/index.html'));
    assert.ok(files.includes('npm-shrinkwrap.json'));
    const stray = files.filter((f) => /^(src|test|bench|fixtures|machines|scripts|\.ci|docs)\//.test(f) || f.endsWith('.ts'));
    assert.deepEqual(stray, []);
    assert.ok(readdirSync(path.join(work, 'app/node_modules')).every((name) => name !== 'tsx' && name !== 'typescript'), 'tsx and typescript are development-only');
  });

  it('node-mgr --help prints the commands and --version the package version', async () => {
    const { stdout, exitCode } = await execa(bin, ['--help'], { cwd: path.join(work, 'app') });
    assert.equal(exitCode, 0);
    assert.match(stdout, /demo/);
    assert.match(stdout, /start/);
    const version = await execa(bin, ['--version'], { cwd: path.join(work, 'app') });
    assert.equal(version.stdout.trim(), (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('node-mgr demo serves two real nodes from the installed package and stops on SIGTERM', async () => {
    const dir = path.join(work, 'demo');
    const port = await freePort();
    const child = spawn(bin, ['demo', '--dir', dir, '--port', String(port)], { cwd: path.join(work, 'app'), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (c) => (output += c));
    child.stderr!.on('data', (c) => (output += c));
    const exited = new Promise<string>((r) => child.once('exit', (code, signal) => r(`code ${code} signal ${signal}`)));
    const deadline = Date.now() + 240_000;
    while (!output.includes('node-mgr demo is serving')) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `demo did not serve:\n${output.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const nodes = await api(`http://127.0.0.1:${port}`, 'GET', '/v1/nodes');
    pids.push(...(nodes.body as Array<{ pid: number | null }>).map((n) => n.pid ?? 0));
    assert.deepEqual((nodes.body as Array<{ kind: string }>).map((n) => n.kind).sort(), ['mysql', 'postgres']);
    const page = await api(`http://127.0.0.1:${port}`, 'GET', '/inspect');
    assert.equal(page.status, 200, 'the inspector page is served from the package');
    // The bundle (scripts/build.mjs) keeps the OpenAPI document and the docs UI, whose files are
    // read from @fastify/swagger-ui's own directory.
    const doc = await api(`http://127.0.0.1:${port}`, 'GET', '/docs/json');
    assert.equal(doc.status, 200);
    assert.ok(Object.keys((doc.body as { paths: object }).paths).length > 10);
    const ui = await fetch(`http://127.0.0.1:${port}/docs/ui/static/swagger-ui-bundle.js`);
    assert.equal(ui.status, 200);
    assert.ok((await ui.arrayBuffer()).byteLength > 100_000, 'the swagger-ui bundle is served whole');
    child.kill('SIGTERM');
    assert.equal(await exited, 'code 0 signal null', output.slice(-2000));
  });
});

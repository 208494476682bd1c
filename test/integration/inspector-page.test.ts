// The inspector page in a real browser (Debian's chromium, headless) against a real node-mgr
// supervising a real MariaDB: kill -9 the server and watch the page follow it through the crash,
// the backoff and back to running, without a reload.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { freePort, tempNodeDir, removeTempDirs, TEST_RUN_AS } from '../support/nodes.ts';
import { api, killProcessGroups, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';

const ARTIFACTS = path.resolve(import.meta.dirname, '../../test-artifacts');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('the inspector page', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let browser: Browser;
  let page: Page;
  let port: number;
  const pids: number[] = [];
  const pageErrors: string[] = [];
  /** Every state the chart highlighted, in order, with the backoff countdown text when in backoff. */
  const shown: Array<{ wire: string; backoff: string | null; at: number }> = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      policy: {
        // Long enough a backoff for a person (and this test) to see it on the page.
        restart: { initialDelayMs: 1500, maxDelayMs: 10_000, jitter: 0, stableAfterMs: 60_000, maxRestarts: 5, windowMs: 60_000 },
        probe: { intervalMs: 500, timeoutMs: 2000, failureThreshold: 3, startTimeoutMs: 60_000 },
        stop: { gracefulTimeoutMs: 10_000, forcefulTimeoutMs: 5_000 },
      },
      nodes: [{ kind: 'mysql', role: 'storage', port, dir: path.join(root, 'storage'), cluster: 'c1', shard: 's1', user: 'admin', password: 'admin_pwd' }],
    });
    const created = await api(mgr.url, 'POST', `/v1/nodes/${port}/create`);
    assert.equal(created.status, 200, created.text);
    pids.push(created.body.pid);
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
    await page.exposeFunction('reportShown', (wire: string, backoff: string | null) => shown.push({ wire, backoff, at: Date.now() }));
  });

  after(async () => {
    await browser?.close();
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('lists the node, draws its statechart from the machine and highlights the live state', async () => {
    await page.goto(`${mgr.url}/inspect`);
    const row = page.locator(`tr.node-row[data-port="${port}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), new RegExp(`mysql-${port}\\s+storage\\s+${port}\\s+running`));
    await row.click();
    await page.locator('#chart svg g.state.active[data-wire="running"]').waitFor();
    // Generated from the definition: every state of the chart is there, with the compound `up` around `running`.
    for (const wire of ['adopting', 'stopped', 'preflight', 'starting', 'crashed', 'backoff', 'failed', 'dropped']) {
      assert.equal(await page.locator(`#chart g.state[data-wire="${wire}"]`).count(), 1, wire);
    }
    assert.equal(await page.locator('#chart g.state.compound.active-ancestor[data-path="up"]').count(), 1);
    assert.match(await page.locator('#context [data-field="pid"]').innerText(), new RegExp(String(pids[0])));
    // The journal from SQLite: the create brought it through initializing/preflight/starting. The
    // page draws the node first and fetches its journal after: wait for that answer to be drawn.
    await page.locator('#transitions tbody td', { hasText: 'initializing' }).first().waitFor();
    const journal = await page.locator('#transitions tbody').innerText();
    for (const s of ['initializing', 'preflight', 'starting', 'running']) assert.match(journal, new RegExp(s));
  });

  it('follows a kill -9 of mariadbd through crashed and backoff back to running, live, without a reload', async () => {
    // A string, not a function: tsx would wrap a function's inner closures in its __name helper,
    // which does not exist in the page.
    await page.evaluate(`(() => {
      window.__pageToken = 'no-reload';
      const svg = document.querySelector('#chart svg');
      const report = () => window.reportShown(svg.dataset.active, document.getElementById('backoff-remaining')?.textContent ?? null);
      new MutationObserver(report).observe(svg, { attributes: true, attributeFilter: ['data-active'] });
      // The countdown ticks inside backoff without a state change: report it too.
      setInterval(() => svg.dataset.active === 'backoff' && report(), 250);
    })()`);
    const before = await waitForNode(mgr.url, port, (n) => n.state === 'running');
    process.kill(before.pid, 'SIGKILL');

    let shot = false;
    const deadline = Date.now() + 90_000;
    for (;;) {
      const wires = shown.map((s) => s.wire);
      const backoffAt = wires.indexOf('backoff');
      if (backoffAt >= 0 && !shot) {
        await page.screenshot({ path: path.join(ARTIFACTS, 'inspector-backoff.png') });
        shot = true;
      }
      if (backoffAt >= 0 && wires.indexOf('running', backoffAt) > backoffAt) break;
      assert.ok(Date.now() < deadline, `the page did not come back to running; it showed ${wires.join(' → ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const wires = shown.map((s) => s.wire).filter((w, i, a) => w !== a[i - 1]);
    // Crashed can last only milliseconds (the log is read at once); the page draws at most every
    // 100 ms, so it shows at least the backoff, and the journal table has every step.
    assert.deepEqual(wires.slice(wires.indexOf('backoff')), ['backoff', 'preflight', 'starting', 'running'].filter((w) => wires.includes(w)));
    assert.equal(wires.at(-1), 'running');
    const countdowns = shown.filter((s) => s.wire === 'backoff' && s.backoff).map((s) => s.backoff!);
    assert.ok(countdowns.some((c) => /\d\.\d s left of 1\.5 s/.test(c)), `countdown texts: ${countdowns.join(' | ')}`);
    const backoffFor = shown.filter((s) => s.wire === 'backoff');
    assert.ok(backoffFor.at(-1)!.at - backoffFor[0]!.at >= 500, 'the backoff stayed on screen long enough to be seen');

    assert.equal(await page.evaluate('window.__pageToken'), 'no-reload');
    const after = await waitForNode(mgr.url, port, (n) => n.state === 'running' && n.pid !== before.pid);
    pids.push(after.pid);
    await page.locator(`#context [data-field="pid"]:has-text("${after.pid}")`).waitFor({ timeout: 10_000 });
    assert.equal((await page.locator('#context [data-field="restarts"]').innerText()).trim(), '1');
    assert.match(await page.locator('#context [data-field="last exit"]').innerText(), /SIGKILL/);
    await page.locator('#transitions tbody', { hasText: 'crashed → backoff' }).waitFor({ timeout: 10_000 });
    const journal = await page.locator('#transitions tbody').innerText();
    assert.match(journal, /running → crashed[\s\S]*PROCESS_EXITED/);
    assert.match(journal, /crashed → backoff/);
    assert.match(await page.locator(`tr.node-row[data-port="${port}"]`).innerText(), /running/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'inspector-page.png') });
    assert.deepEqual(pageErrors, []);
  });

  it('shows the history from the journal after a node-mgr restart', async () => {
    await mgr.stop('SIGKILL');
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), JSON.parse((await import('node:fs')).readFileSync(path.join(root, 'mgr', 'node-mgr.json'), 'utf8')));
    const fresh = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    await fresh.goto(`${mgr.url}/inspect#node=${port}`);
    await fresh.locator('#chart svg g.state.active[data-wire="running"]').waitFor();
    // The journal arrives in its own request after the chart: wait for it rather than race it.
    await fresh.locator('#transitions tbody', { hasText: 'crashed → backoff' }).waitFor({ timeout: 15_000 }).catch(() => {});
    const journal = await fresh.locator('#transitions tbody').innerText();
    assert.match(journal, /crashed → backoff/, 'history from before the restart');
    assert.match(journal, /adopting → running/, 'the new node-mgr adopted the server');
    await fresh.close();
  });
});

// The inspector page at laptop sizes and its node controls, in Debian's chromium (headless) against a
// real node-mgr (with a token configured) supervising a real MariaDB: the whole statechart inside
// its panel at 1280×800, no table column clipped at 1280 and 1400 px, stop/start through the
// buttons (with the confirmation) really stopping and starting the server, the API's refusal
// sentence for a 401 without the token, and a backup's progress row with its rate and ETA.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { freePort, tempNodeDir, removeTempDirs, TEST_RUN_AS } from '../support/nodes.ts';
import { api, isRunning, killProcessGroups, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { ADMIN, loadMysqlData } from '../support/backup-data.ts';

const ARTIFACTS = path.resolve(import.meta.dirname, '../../test-artifacts');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TOKEN = 'inspector-test-token';

interface Rect {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

describe('the inspector page: layout at 1280 and 1400 px, node controls, job progress', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let browser: Browser;
  let page: Page;
  let port: number;
  const pids: number[] = [];
  const pageErrors: string[] = [];

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      security: { token: TOKEN },
      backup: { store: 'local', localDir: path.join(root, 'backups') },
      policy: { probe: { intervalMs: 500, startTimeoutMs: 60_000 }, stop: { gracefulTimeoutMs: 20_000, forcefulTimeoutMs: 5_000 } },
      nodes: [{ kind: 'mysql', role: 'storage', port, dir: path.join(root, 'storage'), cluster: 'c1', shard: 's1', ...ADMIN }],
    });
    const created = await api(mgr.url, 'POST', `/v1/nodes/${port}/create`, undefined, { authorization: `Bearer ${TOKEN}` });
    assert.equal(created.status, 200, created.text);
    pids.push(created.body.pid);
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      // The 401 and 409 the test provokes are logged by chromium as failed resources: expected.
      if (msg.type() === 'error' && !/status of (401|409)/.test(msg.text())) pageErrors.push(msg.text());
    });
    await page.goto(`${mgr.url}/inspect#node=${port}`);
    await page.locator('#chart svg g.state.active[data-wire="running"]').waitFor();
  });

  after(async () => {
    await browser?.close();
    const live = mgr ? await api(mgr.url, 'GET', '/v1/nodes').then((r) => (r.body as { pid: number | null }[]).map((n) => n.pid)).catch(() => []) : [];
    await mgr?.stop('SIGKILL');
    await killProcessGroups([...pids, ...live]);
    await removeTempDirs();
  });

  /** Every state of the chart with its box, and the chart's box and its panel's. */
  const chartBoxes = async (p: Page) =>
    (await p.evaluate(`(() => {
      const r = (e) => { const b = e.getBoundingClientRect(); return { left: b.left, top: b.top, right: b.right, bottom: b.bottom }; };
      return {
        panel: r(document.querySelector('.chart-panel')),
        chart: r(document.querySelector('#chart')),
        states: [...document.querySelectorAll('#chart g.state')].map((g) => ({ id: g.dataset.id, box: r(g) })),
        nameHeight: document.querySelector('#chart g.state[data-wire="running"] .state-name').getBoundingClientRect().height,
      };
    })()`)) as { panel: Rect; chart: Rect; states: Array<{ id: string; box: Rect }>; nameHeight: number };

  const inside = (b: Rect, c: Rect) => b.left >= c.left - 0.5 && b.top >= c.top - 0.5 && b.right <= c.right + 0.5 && b.bottom <= c.bottom + 0.5;

  /** Cells (and table containers) whose content is wider than they are. */
  const clipped = async (p: Page) =>
    (await p.evaluate(`(() => {
      const out = [];
      for (const id of ['nodes', 'jobs', 'transitions']) {
        const table = document.getElementById(id);
        const box = table.closest('.scroll');
        if (box.scrollWidth > box.clientWidth) out.push(id + ' container: ' + box.scrollWidth + ' > ' + box.clientWidth);
        if (table.getBoundingClientRect().right > box.getBoundingClientRect().right + 0.5) out.push(id + ' table wider than its container');
        for (const cell of table.querySelectorAll('th, td, .badge')) {
          if (cell.scrollWidth > cell.clientWidth) out.push(id + ' cell "' + cell.textContent.slice(0, 40) + '": ' + cell.scrollWidth + ' > ' + cell.clientWidth);
        }
      }
      return out;
    })()`)) as string[];

  it('draws the whole statechart inside its panel at 1280×800', async () => {
    const { panel, chart, states, nameHeight } = await chartBoxes(page);
    assert.ok(states.length >= 20, `${states.length} states drawn`);
    const outside = states.filter((s) => !inside(s.box, chart) || !inside(s.box, panel)).map((s) => `${s.id} ${JSON.stringify(s.box)}`);
    assert.deepEqual(outside, [], `chart ${JSON.stringify(chart)}, panel ${JSON.stringify(panel)}`);
    // Scaled down to fit, but still legible: a state's name at least 8 px high.
    assert.ok(nameHeight >= 8, `state names are ${nameHeight.toFixed(1)} px high`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'inspector-chart-1280x800.png') });
  });

  it('shows the API refusal sentence when a token is configured and none was entered (401)', async () => {
    assert.equal(await page.locator('#token').inputValue(), '');
    await page.locator('.controls button[data-action="stop"]').click();
    await page.locator('#confirm[open]').waitFor();
    await page.locator('#confirm-ok').click();
    const msg = page.locator('#action-msg.error');
    await msg.waitFor({ timeout: 10_000 });
    assert.match(await msg.innerText(), /stop refused \(401\): this request changes state and needs "Authorization: Bearer <token>"/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'inspector-refused-401.png') });
    const n = await waitForNode(mgr.url, port, () => true);
    assert.equal(n.state, 'running');
    assert.equal(n.pid, pids[0]);
  });

  it('stops the real node after a confirmation (cancel does nothing) and starts it again', async () => {
    await page.locator('#token').fill(TOKEN);
    assert.equal(await page.evaluate(`sessionStorage.getItem('node-mgr-token')`), TOKEN);

    await page.locator('.controls button[data-action="stop"]').click();
    await page.locator('#confirm[open]').waitFor();
    assert.match(await page.locator('#confirm-text').innerText(), new RegExp(`Stop mysql-${port}\\?`));
    await page.locator('#confirm button[value="cancel"]').click();
    assert.match(await page.locator('#action-msg').innerText(), /stop cancelled/);
    assert.equal((await waitForNode(mgr.url, port, () => true)).state, 'running');

    const pid = (await waitForNode(mgr.url, port, () => true)).pid as number;
    await page.locator('.controls button[data-action="stop"]').click();
    await page.locator('#confirm-ok').click();
    await page.locator('#action-msg.ok, #action-msg.error').waitFor({ timeout: 60_000 });
    assert.match(await page.locator('#action-msg').innerText(), /now stopped/);
    const stopped = await waitForNode(mgr.url, port, () => true);
    assert.equal(stopped.state, 'stopped');
    assert.equal(await isRunning(pid), false, `mariadbd ${pid} is gone`);
    await page.locator('#chart svg g.state.active[data-wire="stopped"]').waitFor({ timeout: 10_000 });
    assert.match(await page.locator(`tr.node-row[data-port="${port}"]`).innerText(), /stopped/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'inspector-stopped.png') });

    // Start needs no confirmation.
    await page.locator('.controls button[data-action="start"]').click();
    await page.locator('#action-msg.ok, #action-msg.error').waitFor({ timeout: 90_000 });
    assert.match(await page.locator('#action-msg').innerText(), /now running/);
    const started = await waitForNode(mgr.url, port, () => true);
    assert.equal(started.state, 'running');
    assert.notEqual(started.pid, pid);
    pids.push(started.pid);
    assert.equal(await isRunning(started.pid), true);
    await page.locator('#chart svg g.state.active[data-wire="running"]').waitFor({ timeout: 10_000 });
  });

  it('starts a backup from the page and shows its progress with rate and ETA', async () => {
    // Incompressible data, so the upload takes long enough for a rate (the runner waits a second).
    await loadMysqlData(port, 96);
    // What the API says about the job, read from the same event stream the page draws from.
    await page.evaluate(`(() => {
      window.__apiProgress = [];
      window.__shownProgress = [];
      const es = new EventSource('/v1/events');
      es.addEventListener('job', (ev) => { const j = JSON.parse(ev.data); if (j.type === 'coldbackup') window.__apiProgress.push({ status: j.status, progress: j.progress }); });
      new MutationObserver(() => {
        for (const td of document.querySelectorAll('#jobs td.progress')) window.__shownProgress.push(td.innerText);
      }).observe(document.querySelector('#jobs tbody'), { childList: true, subtree: true, characterData: true });
    })()`);
    await page.locator('.controls button[data-action="backup"]').click();
    const accepted = page.locator('#action-msg.ok, #action-msg.error');
    await accepted.waitFor({ timeout: 10_000 });
    assert.match(await accepted.innerText(), /backup job \S+ accepted/);
    const jobId = /backup job (\S+) accepted/.exec(await accepted.innerText())?.[1];
    assert.ok(jobId, await accepted.innerText());

    // While the backup holds the node, a stop is refused and the page says why (409).
    await page.locator('.controls button[data-action="stop"]').click();
    await page.locator('#confirm-ok').click();
    await page.locator('#action-msg.error, #action-msg.ok').waitFor({ timeout: 30_000 });
    const refusal = await page.locator('#action-msg').innerText();
    assert.match(refusal, new RegExp(`stop refused \\(409\\): .*${jobId}`));
    await page.screenshot({ path: path.join(ARTIFACTS, 'inspector-refused-409.png') });

    let shot = false;
    const deadline = Date.now() + 180_000;
    for (;;) {
      if (!shot && (await page.locator(`#jobs tr[data-job="${jobId}"] .rate`).count()) > 0) {
        await page.screenshot({ path: path.join(ARTIFACTS, 'inspector-backup-progress.png') });
        shot = true;
      }
      const job = await api(mgr.url, 'GET', `/v1/jobs/${jobId}`);
      if (job.body.status !== 'running' && job.body.status !== 'queued') {
        assert.equal(job.body.status, 'succeeded', job.text);
        break;
      }
      assert.ok(Date.now() < deadline, 'the backup did not finish in 3 minutes');
      await new Promise((r) => setTimeout(r, 100));
    }
    const apiProgress = (await page.evaluate('window.__apiProgress')) as Array<{ status: string; progress?: { rate_bps?: number; eta_s?: number } }>;
    const shown = (await page.evaluate('window.__shownProgress')) as string[];
    assert.ok(apiProgress.some((p) => p.status === 'running' && p.progress?.rate_bps !== undefined), `the API gave no rate: ${JSON.stringify(apiProgress.slice(-5))}`);
    assert.ok(shown.some((t) => /\d(\.\d)? (B|KiB|MiB|GiB)\/s/.test(t)), `no rate shown; shown: ${shown.slice(-8).join(' | ')}`);
    if (apiProgress.some((p) => p.status === 'running' && p.progress?.eta_s !== undefined)) {
      assert.ok(shown.some((t) => /ETA \d+ (s|min)/.test(t)), `no ETA shown; shown: ${shown.slice(-8).join(' | ')}`);
    }
    assert.ok(shot, 'a screenshot with the rate on screen');
    // Once done, the row says so, with no rate or ETA left over.
    await page.locator(`#jobs tr[data-job="${jobId}"] .badge.st-succeeded`).waitFor({ timeout: 10_000 });
    const final = await page.locator(`#jobs tr[data-job="${jobId}"] td.progress`).innerText();
    assert.match(final, /^done/);
    assert.doesNotMatch(final, /\/s|ETA/);
  });

  for (const [width, height] of [
    [1280, 800],
    [1400, 900],
  ] as const) {
    it(`clips no table column and keeps the chart inside its panel at ${width}×${height}`, async () => {
      await page.setViewportSize({ width, height });
      // The journal and the jobs table now have rows: a stop, a start, a backup.
      await page.locator('#transitions tbody td', { hasText: 'stopping' }).first().waitFor({ timeout: 10_000 });
      await page.locator('#jobs tbody tr[data-job]').first().waitFor();
      await page.waitForTimeout(300);
      assert.deepEqual(await clipped(page), []);
      const { chart, states } = await chartBoxes(page);
      assert.deepEqual(states.filter((s) => !inside(s.box, chart)).map((s) => s.id), []);
      await page.screenshot({ path: path.join(ARTIFACTS, `inspector-${width}x${height}.png`) });
    });
  }

  it('logged no page errors', () => {
    assert.deepEqual(pageErrors, []);
  });
});

// The inspector shows a MariaDB node's binlog archive (state, newest archived file, lag) and follows
// it without a reload, in a real browser against a real node-mgr archiving to the local store.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { chromium, type Browser, type Page } from 'playwright-core';
import { freePort, tempNodeDir, removeTempDirs, TEST_RUN_AS } from '../support/nodes.ts';
import { createNode, killProcessGroups, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { ADMIN } from '../support/backup-data.ts';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('the inspector shows the binlog archive', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let browser: Browser;
  let page: Page;
  let port: number;
  const pids: number[] = [];
  const pageErrors: string[] = [];

  before(async () => {
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      policy: { probe: { startTimeoutMs: 60_000 } },
      backup: { store: 'local', localDir: path.join(root, 'backups') },
      binlogArchive: { enabled: true, delaySeconds: 0.5, rotateEverySeconds: 0 },
      nodes: [{ kind: 'mysql', role: 'storage', port, dir: path.join(root, 'storage'), cluster: 'c1', shard: 's1', ...ADMIN }],
    });
    pids.push(await createNode(mgr.url, port));
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });

  after(async () => {
    await browser?.close();
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('names the newest archived file and the lag, and follows a rotation without a reload', async () => {
    const conn = await mysql.createConnection({ host: '127.0.0.1', port, ...ADMIN });
    try {
      await conn.query('FLUSH BINARY LOGS');
      const first = await waitForNode(mgr.url, port, (n) => n.binlog_archive?.last_archived !== null && n.binlog_archive?.state === 'ok');
      await page.goto(`${mgr.url}/inspect#node=${port}`);
      await page.locator(`tr.node-row[data-port="${port}"]`).click();
      const field = page.locator('#context [data-field="binlog archive"]');
      await field.filter({ hasText: first.binlog_archive.last_archived.file }).waitFor();
      assert.match(await field.innerText(), /^ok · binlog\.\d{6} · lag 0 s \/ 0 B$/);

      await conn.query('CREATE DATABASE d');
      await conn.query('FLUSH BINARY LOGS');
      const next = await waitForNode(mgr.url, port, (n) => n.binlog_archive?.last_archived?.file !== first.binlog_archive.last_archived.file);
      // The page reads the archive again on its own (every 5 s).
      await field.filter({ hasText: next.binlog_archive.last_archived.file }).waitFor({ timeout: 15_000 });
      assert.deepEqual(pageErrors, []);
    } finally {
      await conn.end();
    }
  });
});

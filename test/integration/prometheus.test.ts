// Prometheus' own tools on node-mgr: `promtool check metrics` accepts a real /metrics, the example
// alert rules (packaging/prometheus) pass `promtool check rules` and their unit tests, and the
// NodeMgrNodeFailed alert fires on the series a real node-mgr exposes for a node that crashed too
// often. A light fake cluster_mgr process stands in for a database (test/support/fake-cluster-mgr.mjs).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { createNode, killProcessGroups, startNodeMgrProcess, waitForNode, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { fakeClusterMgrEntry } from '../support/fake-cluster-mgr-nodes.ts';
import { parseExposition, type Sample } from '../support/prometheus.ts';

const RULES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../packaging/prometheus');

describe('node-mgr and Prometheus', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let port: number;
  const pids: number[] = [];

  const scrape = async () => (await fetch(`${mgr.url}/metrics`)).text();

  before(async () => {
    root = path.dirname(await tempNodeDir());
    port = await freePort();
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port: await freePort() },
      stateDir: path.join(root, 'state'),
      runAs: TEST_RUN_AS,
      // One automatic restart allowed: the second crash leaves the node `failed`.
      policy: { restart: { initialDelayMs: 100, maxDelayMs: 100, jitter: 0, stableAfterMs: 600_000, maxRestarts: 1, windowMs: 600_000 }, probe: { intervalMs: 500, startTimeoutMs: 15_000 } },
      nodes: [fakeClusterMgrEntry(root, port)],
    });
    pids.push(await createNode(mgr.url, port));
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('promtool check metrics accepts /metrics with no problem', async () => {
    const r = await execa('promtool', ['check', 'metrics'], { input: await scrape(), reject: false });
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'promtool reports no problem');
    assert.equal(r.exitCode, 0);
  });

  it('the example rules pass promtool check rules and their unit tests', async () => {
    const check = await execa('promtool', ['check', 'rules', path.join(RULES_DIR, 'node-mgr-alerts.yml')], { reject: false });
    assert.equal(check.exitCode, 0, check.stdout + check.stderr);
    const unit = await execa('promtool', ['test', 'rules', 'node-mgr-alerts.test.yml'], { cwd: RULES_DIR, reject: false });
    assert.equal(unit.exitCode, 0, unit.stdout + unit.stderr);
  });

  it('NodeMgrNodeFailed fires on the series of a node that crashed too often', async () => {
    let killed = 0;
    for (let crash = 0; crash < 2; crash++) {
      const n = await waitForNode(mgr.url, port, (v) => v.state === 'running' && v.pid && v.pid !== killed);
      process.kill(n.pid, 'SIGKILL');
      killed = n.pid;
    }
    await waitForNode(mgr.url, port, (v) => v.state === 'failed', 30_000);
    const samples = parseExposition(await scrape());
    const failed = samples.find((s) => s.name === 'nodemgr_node_in_state' && s.labels.state === 'failed')!;
    assert.equal(failed.value, 1);
    assert.ok(samples.some((s) => s.name === 'nodemgr_node_restarts_total' && s.value === 1), 'one automatic restart counted');

    // The scraped series, as Prometheus would store them (with the target's labels), held for 5 minutes.
    const target = { instance: 'db1:9998', job: 'node-mgr' };
    const series = (s: Sample) => `${s.name}{${Object.entries({ ...s.labels, ...target }).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}}`;
    const inputs = samples.filter((s) => s.name === 'nodemgr_node_in_state').map((s) => ({ series: series(s), values: `${s.value}x5` }));
    const test = {
      rule_files: [path.join(RULES_DIR, 'node-mgr-alerts.yml')],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: inputs,
          alert_rule_test: [
            {
              eval_time: '3m',
              alertname: 'NodeMgrNodeFailed',
              exp_alerts: [
                {
                  // An empty label is no label in Prometheus (this cluster_mgr node has no cluster or shard).
                  exp_labels: { severity: 'critical', ...target, ...Object.fromEntries(Object.entries(failed.labels).filter(([, v]) => v !== '')) },
                  exp_annotations: {
                    summary: `${failed.labels.node} (${failed.labels.cluster}/${failed.labels.shard}) on db1:9998 crashed too often and is not restarted any more`,
                    description: `\`node-mgr nodes\` shows its last error; \`node-mgr logs ${failed.labels.node}\` its log; \`node-mgr start ${failed.labels.node}\` tries again.`,
                  },
                },
              ],
            },
          ],
        },
      ],
    };
    const file = path.join(root, 'fired.test.yml');
    writeFileSync(file, JSON.stringify(test)); // YAML is a superset of JSON
    const r = await execa('promtool', ['test', 'rules', file], { reject: false });
    assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  });
});

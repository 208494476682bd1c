// The seed get_status reply fits the original clients' single read (PROTOCOL §1) whatever the job
// found: whole when it fits, else summarized with `detail` naming the REST record.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { toLegacyStatus } from '../../src/http/legacy-status.ts';
import { SEED_BODY_MAX } from '../../src/http/seed-read.ts';
import type { JobRecord } from '../../src/state/store.ts';

const T0 = Date.parse('2026-12-01T00:00:00.000Z');

function record(over: Partial<JobRecord>): JobRecord {
  return { id: 'job-1', type: 'rebuild_node', nodeId: 'mysql-6004', params: {}, paramsHash: 'h', status: 'succeeded', phase: null, progress: null, result: null, info: null, createdAt: T0, updatedAt: T0, finishedAt: T0, ...over };
}

const tables = (n: number) => Array.from({ length: n }, (_, i) => ({ table: `shop.orders_archive_${i}`, primary: '1234567890', replica: '1234567890', match: true }));
const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v));

describe('the seed get_status reply', () => {
  it('carries a result that fits whole, without a detail pointer', () => {
    const result = { node: 'mysql-6004', tables: tables(3), replication: { io_running: 'Yes' } };
    const s = toLegacyStatus(record({ result }));
    assert.deepEqual(s.output, result);
    assert.equal(s.detail, undefined);
  });

  it('summarizes a result that lists many tables: lists become counts, scalars stay, detail names the REST record', () => {
    const result = { node: 'mysql-6004', primary: '127.0.0.1:6001', tables: tables(60), skipped_tables: ['shop.huge'], replication: { io_running: 'Yes', sql_running: 'Yes' }, restore: { duration_s: 3.2, phases: [{ phase: 'downloading' }] } };
    assert.ok(bytes(result) > 2047);
    const s = toLegacyStatus(record({ result }));
    assert.ok(bytes(s) <= SEED_BODY_MAX, `${bytes(s)} bytes`);
    assert.equal(s.result, 'succeed');
    assert.deepEqual(s.output, { node: 'mysql-6004', primary: '127.0.0.1:6001', tables: 60, skipped_tables: 1, replication: { io_running: 'Yes', sql_running: 'Yes' }, restore: { duration_s: 3.2, phases: 1 } });
    assert.equal(s.detail, '/v1/jobs/job-1');
  });

  it('cuts an error text that lists what the job found, saying where the whole text is', () => {
    const info = `rebuild of mysql-6004 from 127.0.0.1:6001: CHECKSUM TABLE differs at GTID 0-1-99 for ${tables(80).map((t) => `${t.table} (primary 1, replica 2)`).join(', ')}; replication is running`;
    const s = toLegacyStatus(record({ status: 'failed', info }));
    assert.ok(bytes(s) <= SEED_BODY_MAX, `${bytes(s)} bytes`);
    assert.equal(s.result, 'error');
    assert.ok(s.info.startsWith('rebuild of mysql-6004 from 127.0.0.1:6001: CHECKSUM TABLE differs'), s.info);
    assert.ok(s.info.endsWith('… (whole text: /v1/jobs/job-1)'), s.info);
    assert.ok(s.job_status.endsWith('… (whole text: /v1/jobs/job-1)'), s.job_status);
  });

  it('fits with texts of escaped and multi-byte characters', () => {
    const s = toLegacyStatus(record({ status: 'failed', info: '"\u00e9\\\n'.repeat(2000), result: { files: tables(100) } }));
    assert.ok(bytes(s) <= SEED_BODY_MAX, `${bytes(s)} bytes`);
  });
});

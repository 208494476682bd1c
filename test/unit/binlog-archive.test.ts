// The binlog archive's pieces that need no server: reading event headers as bytes stream by, the
// INDEX with its retention lines, and retention against a local store.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BINLOG_MAGIC, BinlogFormatError, BinlogScanner, EVENT, scanBinlog } from '../../src/backup/binlog-file.ts';
import { binlogIndexPath, readBinlogArchive, type ArchivedBinlog } from '../../src/backup/binlog-archive.ts';
import { retireArchivedBinlogs } from '../../src/backup/binlog-retention.ts';
import { LocalDirStore } from '../../src/backup/local-dir.ts';
import { BinlogArchiving } from '../../src/jobs/binlog-archiving.ts';
import { parseConfig } from '../../src/config/load.ts';
import pino from 'pino';
import { freePort, makeSpec, removeTempDirs } from '../support/nodes.ts';

/** One event: the 19-byte header, the body, and a 4-byte checksum placeholder. */
function event(type: number, time: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const size = 19 + body.length + 4;
  const h = Buffer.alloc(19);
  h.writeUInt32LE(time, 0);
  h[4] = type;
  h.writeUInt32LE(7, 5);
  h.writeUInt32LE(size, 9);
  h.writeUInt16LE(0, 17);
  return Buffer.concat([h, body, Buffer.from([1, 2, 3, 4])]);
}

function gtidListBody(gtids: Array<[number, number, bigint]>): Buffer {
  const b = Buffer.alloc(4 + gtids.length * 16);
  b.writeUInt32LE(gtids.length, 0);
  gtids.forEach(([d, s, n], i) => {
    b.writeUInt32LE(d, 4 + i * 16);
    b.writeUInt32LE(s, 8 + i * 16);
    b.writeBigUInt64LE(n, 12 + i * 16);
  });
  return b;
}

/** A GTID event's body: seq_no u64, domain_id u32, flags u8 (the server id is the header's: 7). */
function gtidEventBody(seq: bigint, domain: number): Buffer {
  const b = Buffer.alloc(13);
  b.writeBigUInt64LE(seq, 0);
  b.writeUInt32LE(domain, 8);
  return b;
}

const QUERY = 2;
const file = Buffer.concat([
  BINLOG_MAGIC,
  event(EVENT.FORMAT_DESCRIPTION, 1000, Buffer.alloc(80)),
  event(EVENT.GTID_LIST, 1000, gtidListBody([[0, 5, 3n], [1, 6, 2n ** 40n]])),
  event(EVENT.BINLOG_CHECKPOINT, 1000, Buffer.from('binlog.000001')),
  event(EVENT.GTID, 1005, gtidEventBody(4n, 0)),
  event(QUERY, 1006, Buffer.alloc(300)),
  event(EVENT.ROTATE, 1010, Buffer.from('binlog.000002')),
]);

/** The same bytes cut into pieces of `n`. */
function* pieces(b: Buffer, n: number): Generator<Buffer> {
  for (let i = 0; i < b.length; i += n) yield b.subarray(i, i + n);
}

describe('BinlogScanner', () => {
  it('reads the first and last event times, the GTID list and the first transaction, however the bytes are cut', async () => {
    for (const n of [1, 3, 19, 23, 4096]) {
      const s = await scanBinlog(pieces(file, n), 'binlog.000001');
      assert.equal(s.firstEventTime, 1000, `pieces of ${n}`);
      assert.equal(s.lastEventTime, 1010);
      assert.equal(s.gtidList, '0-5-3,1-6-1099511627776');
      assert.equal(s.gtidEnd, '0-5-3,1-6-1099511627776,0-7-4', 'the list at the end adds the file\'s own GTID');
      assert.equal(s.events, 6);
      assert.equal(s.contentEvents, 2);
      assert.equal(s.firstContentTime, 1005);
      assert.equal(s.lastEventType, EVENT.ROTATE);
      assert.equal(s.end, file.length);
    }
  });

  it('refuses bytes that are not a binlog, or a file cut inside an event', async () => {
    await assert.rejects(scanBinlog([Buffer.from('GIF89a')], 'x'), (e: Error) => e instanceof BinlogFormatError && /does not start with the binlog magic/.test(e.message));
    await assert.rejects(scanBinlog([file.subarray(0, file.length - 5)], 'x'), /ends inside an event/);
    // A file still being written: only whole events count.
    const partial = await scanBinlog([file.subarray(0, file.length - 5)], 'x', { partialOk: true });
    assert.equal(partial.events, 5);
    assert.equal(partial.lastEventTime, 1006);
  });

  it('refuses an event whose size is smaller than its header, and an encrypted binlog', () => {
    const bad = Buffer.concat([BINLOG_MAGIC, event(EVENT.FORMAT_DESCRIPTION, 1, Buffer.alloc(10))]);
    bad.writeUInt32LE(5, 4 + 9);
    assert.throws(() => new BinlogScanner('x').push(bad), /claims a size of 5 bytes/);
    const enc = Buffer.concat([BINLOG_MAGIC, event(EVENT.FORMAT_DESCRIPTION, 1), event(EVENT.START_ENCRYPTION, 1)]);
    assert.throws(() => new BinlogScanner('x').push(enc), /is encrypted/);
  });

  it('sees no transaction in a file of bookkeeping events only', async () => {
    const empty = Buffer.concat([BINLOG_MAGIC, event(EVENT.FORMAT_DESCRIPTION, 1), event(EVENT.GTID_LIST, 1, gtidListBody([])), event(EVENT.BINLOG_CHECKPOINT, 2)]);
    const s = await scanBinlog([empty]);
    assert.equal(s.contentEvents, 0);
    assert.equal(s.firstContentTime, null);
    assert.equal(s.gtidList, '');
  });
});

const entry = (seq: number, last: string): ArchivedBinlog => ({
  file: `binlog.${String(seq).padStart(6, '0')}`,
  seq,
  size: 100,
  sha256: 'a'.repeat(64),
  first_event_time: last,
  last_event_time: last,
  archived_at: last,
});

describe('binlog archive index and retention', () => {
  it('drops retired files from the index, remembers how far retention went, and skips torn lines', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'nm-binlog-'));
    try {
      const store = new LocalDirStore(root);
      const dir = '/coldbackup/c/s/binlogs/h_1';
      for (const e of [entry(1, '2026-01-01T00:00:00Z'), entry(2, '2026-01-02T00:00:00Z')]) await store.appendLine(binlogIndexPath(dir), JSON.stringify(e));
      await store.appendLine(binlogIndexPath(dir), JSON.stringify({ file: 'binlog.000001', seq: 1, retired_at: 'x', reason: 'test' }));
      await store.appendLine(binlogIndexPath(dir), '{"file":"binlog.000003","se');
      const idx = await readBinlogArchive(store, dir);
      assert.deepEqual(idx.entries.map((e) => e.file), ['binlog.000002']);
      assert.equal(idx.retiredThrough, 1);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('retires, per source and in order, the files whose last event is before the oldest kept backup', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'nm-binlog-'));
    try {
      const store = new LocalDirStore(root);
      const backupDir = '/coldbackup/c/s';
      const dir = `${backupDir}/binlogs/h_1`;
      const entries = [entry(4, '2026-01-01T00:00:00Z'), entry(5, '2026-01-03T00:00:00Z'), entry(6, '2026-01-02T00:00:00Z')];
      for (const e of entries) {
        await store.write(`${dir}/${e.file}`, [Buffer.from('x')]);
        await store.appendLine(binlogIndexPath(dir), JSON.stringify(e));
      }
      // Left by a retirement cut before its delete.
      await store.write(`${dir}/binlog.000002`, [Buffer.from('x')]);
      await store.appendLine(binlogIndexPath(dir), JSON.stringify({ file: 'binlog.000002', seq: 2, retired_at: 'x', reason: 'test' }));

      const keepFrom = new Date('2026-01-02T12:00:00Z');
      const dry = await retireArchivedBinlogs(store, backupDir, keepFrom, { dryRun: true });
      assert.deepEqual(dry.map((r) => path.posix.basename(r.path)).sort(), ['binlog.000002', 'binlog.000004']);
      assert.ok(await store.stat(`${dir}/binlog.000004`), 'a dry run deletes nothing');

      const done = await retireArchivedBinlogs(store, backupDir, keepFrom);
      assert.match(done.find((r) => r.path.endsWith('000004'))!.reason, /older than the oldest kept backup/);
      // 000006 is older than keepFrom too, but follows 000005, which is kept: only a prefix goes.
      assert.deepEqual((await readBinlogArchive(store, dir)).entries.map((e) => e.seq), [5, 6]);
      assert.equal((await readBinlogArchive(store, dir)).retiredThrough, 4);
      assert.equal(await store.stat(`${dir}/binlog.000004`), null);
      assert.equal(await store.stat(`${dir}/binlog.000002`), null);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('BinlogArchiving', () => {
  it('counts the lag from the last pass that could look when a pass cannot reach the server or the store', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'nm-binlog-'));
    try {
      // Nothing listens on the node's port: every pass fails before it can look.
      const spec = await makeSpec('mysql', { cluster: 'c', shard: 's', port: await freePort() });
      const config = parseConfig({ binlogArchive: { enabled: true }, backup: { store: 'local', localDir: path.join(root, 'store') } });
      const archiving = new BinlogArchiving({ config, nodes: () => [], log: pino({ level: 'silent' }) });
      const node = { spec, state: 'running', serving: true };
      const v = await archiving.runNow(spec);
      assert.equal(v.state, 'error');
      assert.match(v.detail!, /cannot connect to mysql-\d+/);
      const at = Date.parse(v.last_pass_at!);
      assert.ok(archiving.view(node, at + 90_000).lag_seconds >= 89, 'the lag grows while nothing can be checked');
      assert.equal(archiving.view({ ...node, state: 'stopped', serving: false }).state, 'waiting');
      const off = new BinlogArchiving({ config: parseConfig({}), nodes: () => [], log: pino({ level: 'silent' }) });
      assert.deepEqual([off.view(node).state, off.view(node).enabled], ['off', false]);
      await archiving.close();
    } finally {
      await rm(root, { recursive: true, force: true });
      await removeTempDirs();
    }
  });
});

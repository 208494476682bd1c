// Restore to a time, without servers: reading restore_time, choosing the backup and the archived
// binlogs (and refusing), and following mariadb-binlog's output for the last transaction applied.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalDirStore } from '../../src/backup/local-dir.ts';
import { binlogIndexPath } from '../../src/backup/binlog-archive.ts';
import { parseRestoreTime, planPointInTime, RestoreTimeRefused } from '../../src/backup/point-in-time.ts';
import { BinlogOutputScanner, mergeGtidPositions } from '../../src/engines/mysql/binlog-events.ts';
import { progressText } from '../../src/cli/format.ts';

const node = { id: 'mysql-6004', role: 'storage' as const, port: 6004, cluster: 'c1', shard: 's1' };
const DIR = '/coldbackup/c1/s1';
const ARCHIVE = `${DIR}/binlogs/db1_6004`;

describe('restore_time', () => {
  it('reads ISO 8601 with a zone as that instant, and a time without one as local to the server', () => {
    assert.equal(parseRestoreTime('2026-12-04T10:15:00Z').instant?.toISOString(), '2026-12-04T10:15:00.000Z');
    assert.equal(parseRestoreTime('2026-12-04T11:15:00+01:00').instant?.toISOString(), '2026-12-04T10:15:00.000Z');
    assert.equal(parseRestoreTime('2026-12-04T11:15:00.250+0100').instant?.toISOString(), '2026-12-04T10:15:00.250Z');
    assert.deepEqual(parseRestoreTime('2026-12-04 10:15:00'), { instant: null, local: '2026-12-04 10:15:00' });
    assert.deepEqual(parseRestoreTime('2026-12-04T10:15:00'), { instant: null, local: '2026-12-04 10:15:00' });
  });

  it('refuses what is not a time, in one sentence', () => {
    assert.throws(() => parseRestoreTime('yesterday'), RestoreTimeRefused);
    assert.throws(() => parseRestoreTime('2026-02-30 10:00:00'), /not a valid date and time/);
  });
});

describe('planning a restore to a time', () => {
  let root: string;
  let store: LocalDirStore;
  const backup = async (name: string, created: string, file: string, position: number, result: 'ok' | 'failed' = 'ok') => {
    await store.write(`${DIR}/${name}`, [Buffer.from('x')]);
    const record = { result, at: created, by: 'db1', how: 'commit', created, engine: { kind: 'mysql', flavour: 'mariadb', tool: 'mariabackup', server_version: '10.11' }, source: { host: 'db1', node: 'mysql-6004', role: 'storage', port: 6004 }, position: { kind: 'binlog', file, position, gtid: '0-1-10' } };
    await store.write(`${DIR}/${name}.verify.json`, [Buffer.from(JSON.stringify(record))]);
  };
  const archived = async (seq: number, first: string, last: string) => {
    const file = `binlog.${String(seq).padStart(6, '0')}`;
    await store.appendLine(binlogIndexPath(ARCHIVE), JSON.stringify({ file, seq, size: 1000, sha256: 'a'.repeat(64), first_event_time: first, last_event_time: last, archived_at: last }));
  };
  const at = (s: string) => new Date(s);
  const now = at('2026-12-04T12:00:00Z');

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'pitr-plan-'));
    store = new LocalDirStore(root);
    await backup('coldback_20261204_080000.tgz', '2026-12-04T08:00:30Z', 'binlog.000002', 400);
    await backup('coldback_20261204_100000.tgz', '2026-12-04T10:00:30Z', 'binlog.000004', 500);
    await backup('coldback_20261204_110000.tgz', '2026-12-04T11:00:30Z', 'binlog.000006', 600, 'failed');
    await archived(2, '2026-12-04T07:00:00Z', '2026-12-04T09:00:00Z');
    await archived(3, '2026-12-04T09:00:00Z', '2026-12-04T09:59:00Z');
    await archived(4, '2026-12-04T09:59:00Z', '2026-12-04T10:30:00Z');
    await archived(5, '2026-12-04T10:30:00Z', '2026-12-04T10:45:00Z');
    // binlog.000006 is missing: a gap
    await archived(7, '2026-12-04T11:10:00Z', '2026-12-04T11:30:00Z');
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('takes the newest backup completed before the time and the binlogs from its position to the first that reaches the time', async () => {
    const plan = await planPointInTime(store, node, at('2026-12-04T10:40:00Z'), { now });
    assert.equal(plan.backup.name, 'coldback_20261204_100000.tgz');
    assert.deepEqual(plan.start, { kind: 'binlog', file: 'binlog.000004', position: 500, gtid: '0-1-10' });
    assert.equal(plan.archiveDir, ARCHIVE);
    assert.deepEqual(plan.files.map((f) => f.file), ['binlog.000004', 'binlog.000005']);
  });

  it('skips a backup whose last check failed', async () => {
    await assert.rejects(planPointInTime(store, node, at('2026-12-04T11:20:00Z'), { now }), (err: Error) => {
      // The failed 11:00 backup is not used: the 10:00 one is, and the archive has a gap after it.
      assert.match(err.message, /has a gap: binlog\.000006 is missing between binlog\.000005 \(last event 2026-12-04T10:45:00Z\) and binlog\.000007 \(first event 2026-12-04T11:10:00Z\)/);
      return true;
    });
  });

  it('refuses a time in the future, before the oldest backup, or past the end of the archive', async () => {
    await assert.rejects(planPointInTime(store, node, at('2026-12-04T13:00:00Z'), { now }), /is in the future/);
    await assert.rejects(planPointInTime(store, node, at('2026-12-04T08:00:00Z'), { now }), /before the oldest usable backup of \/coldbackup\/c1\/s1 \(coldback_20261204_080000\.tgz, completed at 2026-12-04T08:00:30Z\)/);
    const other = { ...node, shard: 's2' };
    await assert.rejects(planPointInTime(store, other, at('2026-12-04T10:00:00Z'), { now }), /holds no MariaDB backup/);
  });

  it('starts from the backup the caller names, when it was completed before the time', async () => {
    const plan = await planPointInTime(store, node, at('2026-12-04T10:40:00Z'), { now, file: `${DIR}/coldback_20261204_080000.tgz` });
    assert.deepEqual(plan.files.map((f) => f.file), ['binlog.000002', 'binlog.000003', 'binlog.000004', 'binlog.000005']);
    await assert.rejects(planPointInTime(store, node, at('2026-12-04T09:00:00Z'), { now, file: `${DIR}/coldback_20261204_100000.tgz` }), /completed at 2026-12-04T10:00:30Z, after restore_time/);
  });
});

describe('following mariadb-binlog output', () => {
  const out = [
    'DELIMITER /*!*/;',
    '# at 4',
    '#261204  0:19:49 server id 7  end_log_pos 256 CRC32 0xc7393083 \tStart: binlog v 4, server v 10.11.19-MariaDB-0+deb12u1-log created 261204  0:19:49',
    "BINLOG '",
    'AAAAAAAAAAAEEwQADQgICAoKCgHB73ue',
    "'/*!*/;",
    '# at 379',
    '#261204  0:19:49 server id 7  end_log_pos 421 CRC32 0x8f7c82c0 \tGTID 0-7-6 trans',
    'START TRANSACTION',
    '/*!*/;',
    '# at 578',
    '#261204  0:19:49 server id 7  end_log_pos 609 CRC32 0x2cc90d20 \tXid = 7',
    'COMMIT/*!*/;',
    '# at 1305',
    '#261204  0:19:50 server id 7  end_log_pos 1349 CRC32 0x424fabe2 \tRotate to binlog.000003  pos: 4',
    '# at 4',
    '#261204  0:19:50 server id 7  end_log_pos 256 CRC32 0xc7393083 \tStart: binlog v 4, server v 10.11.19',
    '# at 1006',
    '#261204  9:20:01 server id 7  end_log_pos 1048 CRC32 0x41e75ebf \tGTID 1-7-8 ddl',
    '# at 1048',
    '#261204  9:20:01 server id 7  end_log_pos 1164 CRC32 0xd31f792e \tQuery\tthread_id=4\texec_time=0\terror_code=0\txid=12',
    'SET TIMESTAMP=1796343589/*!*/;',
    'create table s.x (id int)',
    '/*!*/;',
    '# at 1164',
    '#261204  9:20:02 server id 7  end_log_pos 1206 CRC32 0xd6162e13 \tGTID 0-7-9',
    'START TRANSACTION',
    '/*!*/;',
    '# at 1236',
    '#261204  9:20:02 server id 7  end_log_pos 1305 CRC32 0x472350f5 \tQuery\tthread_id=4\texec_time=0\terror_code=0\txid=0',
    'SET TIMESTAMP=1796343589/*!*/;',
    'COMMIT',
    '/*!*/;',
    '# at 1305',
    '#261204  9:20:03 server id 7  end_log_pos 1347 CRC32 0x2011b46c \tGTID 0-7-10 trans',
    'START TRANSACTION',
    '/*!*/;',
    'DELIMITER ;',
    '# End of log file',
    'ROLLBACK /* added by mysqlbinlog */;',
    '',
  ].join('\n');

  it('names the last complete transaction (file, end position, GTID, time), not one cut off by the stop time', () => {
    const scanner = new BinlogOutputScanner(['binlog.000002', 'binlog.000003']);
    // Byte by byte: lines split across chunks are read whole.
    const bytes = Buffer.from(out);
    for (let i = 0; i < bytes.length; i += 7) scanner.push(bytes.subarray(i, i + 7));
    scanner.end();
    assert.deepEqual(scanner.state.last, { file: 'binlog.000003', position: 1305, gtid: '0-7-9', time: '2026-12-04T09:20:02.000Z' });
    assert.equal(scanner.state.fileIndex, 1);
    assert.equal(scanner.state.events, 10);
    assert.deepEqual([...scanner.state.lastByDomain], [['0', '0-7-9'], ['1', '1-7-8']]);
    assert.equal(mergeGtidPositions('0-7-5,2-3-4', scanner.state.lastByDomain), '0-7-9,1-7-8,2-3-4');
  });

  it('notices a file from another history: its Gtid list is behind what was already applied', () => {
    const lines = (list: string) => [
      '# at 4',
      '#261204  0:19:49 server id 7  end_log_pos 256 CRC32 0xc7393083 \tStart: binlog v 4, server v 10.11.19',
      '# at 379',
      '#261204  0:19:49 server id 7  end_log_pos 421 CRC32 0x8f7c82c0 \tGTID 0-7-20 trans',
      'START TRANSACTION',
      '#261204  0:19:49 server id 7  end_log_pos 609 CRC32 0x2cc90d20 \tXid = 7',
      '# at 4',
      '#261204  0:20:49 server id 7  end_log_pos 256 CRC32 0xc7393083 \tStart: binlog v 4, server v 10.11.19',
      '# at 256',
      `#261204  0:20:49 server id 7  end_log_pos 299 CRC32 0x683bdba8 \tGtid list [${list}]`,
      '',
    ].join('\n');
    const same = new BinlogOutputScanner(['binlog.000004', 'binlog.000009']);
    same.push(Buffer.from(lines('0-7-20')));
    assert.equal(same.state.fork, null);
    const forked = new BinlogOutputScanner(['binlog.000004', 'binlog.000009']);
    forked.push(Buffer.from(lines('0-7-11')));
    assert.match(forked.state.fork ?? '', /^binlog\.000009 does not continue the binlogs before it: it begins at GTID list \[0-7-11\], but 0-7-20 was already applied from binlog\.000004/);
  });
});

describe('progress of a restore to a time on the command line', () => {
  it('shows binlog files and events beside the bytes', () => {
    const text = progressText({ status: 'running', phase: 'replaying', progress: { phase: 'replaying', bytes_done: 1024, bytes_total: 4096, pct: 25, files_done: 1, files_total: 3, events: 120 } });
    assert.match(text, /replaying .* 25% .*1\/3 files {2}120 events/);
  });
});

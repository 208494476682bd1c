// How far a rebuilt replica is behind the position it catches up to: in transactions (the GTID
// distance per replication domain) and in bytes of the primary's binlog (across its files).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { binlogDistance, gtidDistance } from '../../src/engines/mysql/replication.ts';

describe('replica lag', () => {
  it('counts the transactions between two GTID positions per domain, whatever server wrote them', () => {
    assert.equal(gtidDistance('0-1-100', '0-1-140'), 40);
    assert.equal(gtidDistance('0-1-100', '0-2-140'), 40, 'a domain numbers its transactions across servers');
    assert.equal(gtidDistance('0-1-100,1-5-7', '0-1-100,1-5-10'), 3);
    assert.equal(gtidDistance('0-1-150', '0-1-140'), 0, 'ahead is not behind');
    assert.equal(gtidDistance('', '0-1-12'), 12, 'a domain the replica has not seen counts from 0');
    assert.equal(gtidDistance('0-1-5', ''), 0);
  });

  it('measures binlog bytes between two coordinates across files, and does not guess for a file it does not know', () => {
    const files = [
      { name: 'binlog.000001', size: 1000 },
      { name: 'binlog.000002', size: 500 },
      { name: 'binlog.000003', size: 300 },
    ];
    assert.equal(binlogDistance(files, { file: 'binlog.000002', position: 100 }, { file: 'binlog.000002', position: 450 }), 350);
    assert.equal(binlogDistance(files, { file: 'binlog.000001', position: 900 }, { file: 'binlog.000003', position: 200 }), 100 + 500 + 200);
    assert.equal(binlogDistance(files, { file: 'binlog.000003', position: 250 }, { file: 'binlog.000003', position: 200 }), 0);
    assert.equal(binlogDistance(files, { file: 'binlog.000000', position: 4 }, { file: 'binlog.000003', position: 200 }), null);
  });
});

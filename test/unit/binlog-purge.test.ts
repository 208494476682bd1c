import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { planPurge, type BinlogFile } from '../../src/jobs/binlog-purge.ts';

const files = (n: number, mtime = (i: number) => 1000 * i): BinlogFile[] =>
  Array.from({ length: n }, (_, i) => ({ name: `binlog.${String(i + 1).padStart(6, '0')}`, size: 100 + i, mtimeMs: mtime(i + 1) }));

const actions = (plan: ReturnType<typeof planPurge>) => plan.map((v) => `${v.file.slice(-1)}:${v.action}`).join(' ');

describe('planPurge', () => {
  it('purges everything before the current binlog when nothing else needs it', () => {
    const plan = planPurge(files(4), { current: 'binlog.000004', replicas: [], backup: null });
    assert.equal(actions(plan), '1:purge 2:purge 3:purge 4:keep');
    assert.match(plan[3]!.reason, /the current binlog/);
    assert.match(plan[0]!.reason, /no replica is connected/);
  });

  it('never purges the current binlog, even with "to" beyond it', () => {
    const plan = planPurge(files(2), { current: 'binlog.000002', replicas: [], backup: null, to: 'binlog.000002' });
    assert.equal(actions(plan), '1:purge 2:keep');
  });

  it('keeps what a lagging replica still needs, and says which replica', () => {
    const plan = planPurge(files(5), {
      current: 'binlog.000005',
      replicas: [{ replica: '127.0.0.1:6002', needs: 'binlog.000002', detail: 'test' }],
      backup: null,
    });
    assert.equal(actions(plan), '1:purge 2:keep 3:keep 4:keep 5:keep');
    assert.match(plan[1]!.reason, /replica 127\.0\.0\.1:6002 still needs it \(it is at binlog\.000002\)/);
  });

  it('keeps everything when a connected replica cannot be asked where it is', () => {
    const plan = planPurge(files(3), { current: 'binlog.000003', replicas: [{ replica: 'r', needs: null, detail: 'access denied' }], backup: null });
    assert.equal(actions(plan), '1:keep 2:keep 3:keep');
    assert.match(plan[0]!.reason, /unknown \(access denied\)/);
  });

  it('keeps the binlogs from the newest verified backup on', () => {
    const plan = planPurge(files(4), { current: 'binlog.000004', replicas: [], backup: 'binlog.000003' });
    assert.equal(actions(plan), '1:purge 2:purge 3:keep 4:keep');
    assert.match(plan[2]!.reason, /newest verified cold backup/);
  });

  it('with "to" purges only the files before it', () => {
    const plan = planPurge(files(4), { current: 'binlog.000004', replicas: [], backup: null, to: 'binlog.000002' });
    assert.equal(actions(plan), '1:purge 2:keep 3:keep 4:keep');
  });

  it('with "before" purges only files last written before that time, stopping at the first newer one', () => {
    const plan = planPurge(files(4), { current: 'binlog.000004', replicas: [], backup: null, before: new Date(2500) });
    assert.equal(actions(plan), '1:purge 2:purge 3:keep 4:keep');
  });

  it('places a replica position that is no longer in the index by its sequence number', () => {
    const have = files(5).slice(2); // 3, 4, 5
    const plan = planPurge(have, { current: 'binlog.000005', replicas: [{ replica: 'r', needs: 'binlog.000001', detail: 't' }], backup: null });
    assert.equal(actions(plan), '3:keep 4:keep 5:keep');
  });

  it('the strictest rule wins and every rule that keeps a file is named', () => {
    const plan = planPurge(files(5), {
      current: 'binlog.000005',
      replicas: [{ replica: 'r', needs: 'binlog.000004', detail: 't' }],
      backup: 'binlog.000003',
    });
    assert.equal(actions(plan), '1:purge 2:purge 3:keep 4:keep 5:keep');
    assert.match(plan[3]!.reason, /replica r still needs it.*newest verified cold backup/);
  });
  it('with binlog archiving on, keeps a file not archived yet and every one after it, and says why', () => {
    const archive = { where: 'local:/coldbackup/c/s/binlogs/h_1', files: new Set(['binlog.000002', 'binlog.000004']), retiredThrough: 1 };
    const plan = planPurge(files(5), { current: 'binlog.000005', replicas: [], backup: null, archive });
    assert.equal(actions(plan), '1:purge 2:purge 3:keep 4:keep 5:keep');
    assert.match(plan[2]!.reason, /^not archived yet \(binlog archiving is on for this node: local:\/coldbackup/);
    assert.match(plan[3]!.reason, /binlog\.000003, older than it, is not archived yet/);
    assert.match(plan[0]!.reason, /archived \(local:/);
  });

  it('with binlog archiving on and nothing archived, purges nothing', () => {
    const plan = planPurge(files(3), { current: 'binlog.000003', replicas: [], backup: null, archive: { where: 'x', files: new Set(), retiredThrough: null } });
    assert.equal(actions(plan), '1:keep 2:keep 3:keep');
  });
});

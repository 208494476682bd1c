// update_node's decision, without servers: which discovered nodes are added, kept, updated or
// dropped from supervision, and which nodes are never touched.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeEntry } from '../../src/config/schema.ts';
import type { DiscoveredNode } from '../../src/cluster/discovery.ts';
import { discoveredNodeToEntry, entryMapperFor, reconcile, type CurrentNode } from '../../src/cluster/reconcile.ts';

const BASE = '/srv/kunlun';
const toEntry = entryMapperFor({ source: 'cluster_mgr', baseDir: BASE });

const meta6001: DiscoveredNode = { role: 'meta', ip: '127.0.0.1', port: 6001, user: 'pgx', password: 'pgx_pwd' };
const storage6004: DiscoveredNode = { role: 'storage', ip: '127.0.0.1', port: 6004, user: 'pgx', password: 'pgx_pwd', cluster: 'clust1', shard: 'shard1' };
const storage6007: DiscoveredNode = { role: 'storage', ip: '192.0.2.2', port: 6007, user: 'pgx', password: 'pgx_pwd', cluster: 'clust1', shard: 'shard2' };
const comp5401: DiscoveredNode = { role: 'computer', ip: '127.0.0.1', port: 5401, user: 'abc', password: 'abc', cluster: 'clust1' };

function discoveredAs(d: DiscoveredNode): CurrentNode {
  const entry = toEntry(d);
  return { id: `${entry.kind}-${entry.port}`, port: entry.port, source: 'discovered', role: entry.role, entry };
}

describe('reconcile', () => {
  it('adds every newly discovered node as an entry: mysql for meta and storage, postgres for computer, dir <baseDir>/<port>', () => {
    const r = reconcile([], [meta6001, storage6004, comp5401], toEntry);
    assert.deepEqual(r.add, [
      { kind: 'mysql', role: 'meta', port: 6001, ip: '127.0.0.1', dir: '/srv/kunlun/6001', user: 'pgx', password: 'pgx_pwd', serverOptions: {} },
      {
        kind: 'mysql',
        role: 'storage',
        port: 6004,
        ip: '127.0.0.1',
        dir: '/srv/kunlun/6004',
        user: 'pgx',
        password: 'pgx_pwd',
        serverOptions: {},
        cluster: 'clust1',
        shard: 'shard1',
      },
      { kind: 'postgres', role: 'computer', port: 5401, ip: '127.0.0.1', dir: '/srv/kunlun/5401', user: 'abc', password: 'abc', serverOptions: {}, cluster: 'clust1' },
    ]);
    assert.deepEqual(r.remove, []);
    assert.deepEqual(r.keep, []);
  });

  it('keeps nodes that are still discovered and does not add them again', () => {
    const current = [discoveredAs(meta6001), discoveredAs(storage6004)];
    const r = reconcile(current, [meta6001, storage6004, storage6007], toEntry);
    assert.deepEqual(r.add.map((e) => e.port), [6007]);
    assert.deepEqual(r.keep, ['mysql-6001', 'mysql-6004']);
    assert.deepEqual(r.remove, []);
    assert.deepEqual(r.update, []);
  });

  it('stops supervising discovered nodes that vanished from the source', () => {
    const current = [discoveredAs(meta6001), discoveredAs(storage6004), discoveredAs(comp5401)];
    const r = reconcile(current, [meta6001], toEntry);
    assert.deepEqual(r.remove, ['mysql-6004', 'postgres-5401']);
    assert.deepEqual(r.keep, ['mysql-6001']);
    assert.deepEqual(r.add, []);
  });

  it('never removes static or created nodes, even when the source reports nothing', () => {
    const current: CurrentNode[] = [
      { id: 'mysql-6001', port: 6001, source: 'static' },
      { id: 'postgres-5401', port: 5401, source: 'created' },
      { id: 'cluster_mgr-57000', port: 57000, source: 'static' },
      { id: 'mysql-6004', port: 6004, source: 'discovered' },
    ];
    const r = reconcile(current, [], toEntry);
    assert.deepEqual(r.remove, ['mysql-6004']);
    assert.deepEqual(r.keep, ['mysql-6001', 'postgres-5401', 'cluster_mgr-57000']);
  });

  it('does not add a discovered node on a port a static or created node holds', () => {
    const current: CurrentNode[] = [
      { id: 'mysql-6001', port: 6001, source: 'static', role: 'meta' },
      { id: 'mysql-6004', port: 6004, source: 'created', role: 'storage' },
    ];
    const r = reconcile(current, [meta6001, storage6004], toEntry);
    assert.deepEqual(r.add, []);
    assert.deepEqual(r.keep, ['mysql-6001', 'mysql-6004']);
    assert.deepEqual(r.conflicts, []);
  });

  it('reports a conflict when the source puts another kind of node on a static node\'s port, and keeps the static one', () => {
    const current: CurrentNode[] = [{ id: 'mysql-5401', port: 5401, source: 'static', role: 'storage' }];
    const r = reconcile(current, [comp5401], toEntry);
    assert.deepEqual(r.add, []);
    assert.deepEqual(r.keep, ['mysql-5401']);
    assert.equal(r.conflicts.length, 1);
    assert.match(r.conflicts[0]!.reason, /computer node 127\.0\.0\.1:5401 .* belongs to static node mysql-5401/);
  });

  it('uses the first of two discovered nodes on one port and reports the second, without its password', () => {
    const twin: DiscoveredNode = { ...storage6004, ip: '192.0.2.2', password: 'secret-twin' };
    const r = reconcile([], [storage6004, twin], toEntry);
    assert.deepEqual(r.add.map((e) => e.ip), ['127.0.0.1']);
    assert.equal(r.conflicts.length, 1);
    assert.equal(r.conflicts[0]!.port, 6004);
    assert.doesNotMatch(r.conflicts[0]!.reason, /secret-twin|pgx_pwd/);
  });

  it('updates a kept discovered node whose password or shard changed, keeping its dir', () => {
    const before = discoveredAs(storage6004);
    const entry: NodeEntry = { ...before.entry!, dir: '/data/elsewhere/6004' };
    const r = reconcile([{ ...before, entry }], [{ ...storage6004, password: 'rotated', shard: 'shard9' }], toEntry);
    assert.deepEqual(r.keep, ['mysql-6004']);
    assert.equal(r.update.length, 1);
    assert.equal(r.update[0]!.password, 'rotated');
    assert.equal(r.update[0]!.shard, 'shard9');
    assert.equal(r.update[0]!.dir, '/data/elsewhere/6004');
  });

  it('replaces a discovered node whose port now holds another kind of server', () => {
    const current = [discoveredAs({ ...storage6004, port: 5401 })];
    const r = reconcile(current, [comp5401], toEntry);
    assert.deepEqual(r.remove, ['mysql-5401']);
    assert.deepEqual(r.add.map((e) => `${e.kind}-${e.port}`), ['postgres-5401']);
  });

  it('with node types given, removes only vanished nodes of those types', () => {
    const current = [discoveredAs(meta6001), discoveredAs(storage6004), discoveredAs(comp5401)];
    const r = reconcile(current, [], toEntry, { roles: ['storage'] });
    assert.deepEqual(r.remove, ['mysql-6004']);
    assert.deepEqual(r.keep, ['mysql-6001', 'postgres-5401']);
  });

  it('with node types given, never removes a node whose role it does not know', () => {
    const r = reconcile([{ id: 'mysql-6004', port: 6004, source: 'discovered' }], [], toEntry, { roles: ['storage'] });
    assert.deepEqual(r.remove, []);
  });
});

describe('entries of discovered nodes', () => {
  it('refuses to map discovered nodes when discovery.baseDir is missing', () => {
    assert.throws(() => entryMapperFor({ source: 'metadata_db' }), /discovery\.baseDir is not set.*metadata_db/);
  });

  it('resolves a relative baseDir to an absolute node dir', () => {
    const entry = discoveredNodeToEntry(meta6001, 'var/kunlun');
    assert.equal(entry.dir, `${process.cwd()}/var/kunlun/6001`);
  });
});

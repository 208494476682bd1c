// *_cmd parsing: the seed's commands become node events; nothing else gets through.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommand, splitWords, CommandError } from '../../src/jobs/command.ts';

describe('command recognition', () => {
  it('splits words like a shell without expanding anything', () => {
    assert.deepEqual(splitWords(`python2 "a b" 'c $d' e\\ f`), ['python2', 'a b', 'c $d', 'e f']);
    assert.equal(splitWords('python2 "unclosed'), null);
  });

  it('recognises the seed\'s mysql commands', () => {
    assert.deepEqual(parseCommand('mysql_cmd', './startmysql.sh 6001'), { action: 'START', port: 6001 });
    assert.deepEqual(parseCommand('mysql_cmd', './stopmysql.sh 6007'), { action: 'STOP', port: 6007 });
    assert.deepEqual(parseCommand('mysql_cmd', './restartmysql.sh 6001'), { action: 'RESTART', port: 6001 });
    assert.deepEqual(parseCommand('mysql_cmd', 'python2 install-mysql.py --config=./mysql_shard1.json --target_node_index=1 --cluster_id=1'), {
      action: 'CREATE',
      configFile: './mysql_shard1.json',
      select: { index: 1 },
    });
  });

  it('recognises the seed\'s pgsql and cluster_mgr commands', () => {
    assert.deepEqual(parseCommand('pgsql_cmd', 'python2 start_pg.py port=5401'), { action: 'START', port: 5401 });
    assert.deepEqual(parseCommand('pgsql_cmd', 'python2 stop_pg.py --port=5401'), { action: 'STOP', port: 5401 });
    assert.deepEqual(parseCommand('pgsql_cmd', 'python2 install_pg.py --config=./postgresql_comp.json --install_ids=1,2'), {
      action: 'CREATE',
      configFile: './postgresql_comp.json',
      select: { ids: [1, 2] },
    });
    assert.deepEqual(parseCommand('cluster_cmd', 'bash -x bin/cluster_mgr_safe --debug --pidfile=run.pid cluster_mgr.cnf'), { action: 'CLUSTER_MGR', verb: 'START' });
    assert.deepEqual(parseCommand('cluster_cmd', 'bash -x bin/cluster_mgr_safe --debug --pidfile=run.pid --stop cluster_mgr.cnf'), { action: 'CLUSTER_MGR', verb: 'STOP' });
  });

  for (const cmd of [
    './stopmysql.sh 6007; rm -rf /',
    './stopmysql.sh 6007 && touch /tmp/x',
    './stopmysql.sh $(id)',
    './stopmysql.sh `id`',
    './stopmysql.sh 6007 | sh',
    'rm -rf /',
    './stopmysql.sh 6007 6008',
    'sh -c "./stopmysql.sh 6007"',
  ]) {
    it(`refuses ${JSON.stringify(cmd)}`, () => {
      assert.throws(() => parseCommand('mysql_cmd', cmd), CommandError);
    });
  }

  it('refuses a command of another kind on the wrong job type', () => {
    assert.throws(() => parseCommand('pgsql_cmd', './startmysql.sh 6001'), /not a recognised pgsql_cmd command/);
  });

  it('refuses a port out of range', () => {
    assert.throws(() => parseCommand('mysql_cmd', './startmysql.sh 70000'), /valid port/);
  });

  it('runs an allow-listed program only, as an argument array', () => {
    assert.deepEqual(parseCommand('mysql_cmd', '/usr/local/bin/tool --flag "a b"', ['/usr/local/bin/tool']), {
      action: 'ALLOWED',
      program: '/usr/local/bin/tool',
      args: ['--flag', 'a b'],
    });
    assert.throws(() => parseCommand('mysql_cmd', '/usr/local/bin/other', ['/usr/local/bin/tool']), CommandError);
  });
});

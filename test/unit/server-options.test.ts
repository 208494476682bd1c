// The allow-list for server options from the network (src/engines/server-options.ts): every
// spelling under which mysqld or postgres would read a refused option is refused, naming it; the
// listed tuning options pass under their canonical names with checked values.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkApiServerOptions, ServerOptionError, type OptionValue } from '../../src/engines/server-options.ts';
import { mysqlEntries } from '../../src/jobs/install-configs.ts';

function refusal(kind: 'mysql' | 'postgres' | 'cluster_mgr', name: string, value: OptionValue): ServerOptionError {
  try {
    checkApiServerOptions(kind, { [name]: value });
  } catch (err) {
    assert.ok(err instanceof ServerOptionError, String(err));
    return err;
  }
  assert.fail(`${kind} option ${JSON.stringify(name)}=${JSON.stringify(value)} was accepted`);
}

describe('server options from the network', () => {
  it('refuses every spelling mysqld would read as a code-loading, file-naming or opening option, naming it', () => {
    const attacks: Array<[string, OptionValue]> = [
      ['loose-init-file', '/tmp/x.sql'],
      ['loose_init_file', '/tmp/x.sql'],
      ['--init-file', '/tmp/x.sql'],
      ['INIT_FILE', '/tmp/x.sql'],
      ['Init-File', '/tmp/x.sql'],
      ['init-fil', '/tmp/x.sql'], // mysqld's unique-prefix abbreviation
      ['maximum-init-file', '/tmp/x.sql'],
      ['loose-maximum-max_connections', 10],
      ['loose-plugin-load-add', 'ha_connect.so'],
      ['plugin_load', 'x.so'],
      ['plugin-dir', '/tmp'],
      ['skip-grant-tables', true],
      ['loose-skip-grant-tables', true],
      ['secure-file-priv', ''],
      ['secure_file_priv', '/'],
      ['init_connect', 'DO 1'],
      ['init-slave', 'DO 1'],
      ['local_infile', 1],
      ['tmpdir', '/tmp'],
      ['log-bin', '/etc/x'],
      ['general_log_file', '/etc/passwd'],
      ['datadir', '/etc'],
      ['innodb.buffer_pool_size', '64M'],
      ['max_connections\n[client]', 1],
      ['', 1],
    ];
    for (const [name, value] of attacks) {
      const err = refusal('mysql', name, value);
      assert.equal(err.option, name);
      assert.ok(err.message.includes(JSON.stringify(name)), err.message);
    }
  });

  it('refuses values that would carry a new line, section, quote or path into my.cnf', () => {
    for (const [name, value] of [
      ['max_connections', '10\ninit-file=/tmp/x.sql'],
      ['innodb_buffer_pool_size', '64M\n[mysqld]\ninit-file=/tmp/x'],
      ['innodb_buffer_pool_size', '64M init-file=/tmp/x'],
      ['character_set_server', 'utf8mb4\n[client]'],
      ['character_set_server', '../../etc'],
      ['character_set_server', '"utf8"'],
      ['sql_mode', "STRICT_TRANS_TABLES'"],
      ['binlog_format', 'ROW\n'],
      ['skip_name_resolve', 'maybe'],
      ['skip-slow-query-log', false],
      ['max_connections', 0],
      ['max_connections', 1.5],
      ['innodb_buffer_pool_size', '64Q'],
    ] as Array<[string, OptionValue]>) {
      refusal('mysql', name, value);
    }
  });

  it('takes listed MariaDB options under any spelling mysqld reads, written canonically', () => {
    assert.deepEqual(
      checkApiServerOptions('mysql', {
        '--max-connections': 77,
        'loose-innodb-buffer-pool-size': '64m',
        Binlog_Format: 'row',
        'skip-slow-query-log': true,
        'enable-innodb_file_per_table': 'ON',
        sql_mode: 'strict_trans_tables,no_engine_substitution',
        long_query_time: '0.5',
      }),
      {
        max_connections: 77,
        innodb_buffer_pool_size: '64M',
        binlog_format: 'ROW',
        slow_query_log: false,
        innodb_file_per_table: true,
        sql_mode: 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION',
        long_query_time: 0.5,
      },
    );
  });

  it('refuses one option given twice under two spellings', () => {
    assert.throws(() => checkApiServerOptions('mysql', { max_connections: 10, 'max-connections': 20 }), /"max-connections" sets max_connections, which "max_connections" sets too/);
  });

  it('refuses PostgreSQL settings that run commands, load libraries, include files or move files, in any case', () => {
    for (const name of [
      'archive_command', 'ARCHIVE_COMMAND', 'Archive-Command', '--archive-command', 'restore_command', 'archive_cleanup_command',
      'recovery_end_command', 'ssl_passphrase_command', 'archive_library', 'shared_preload_libraries', 'local_preload_libraries',
      'session_preload_libraries', 'dynamic_library_path', 'include', 'include_dir', 'include_if_exists', 'data_directory',
      'config_file', 'hba_file', 'ident_file', 'external_pid_file', 'ssl_cert_file', 'ssl_key_file', 'ssl_ca_file',
      'log_directory', 'log_filename', 'unix_socket_directories', 'unix_socket_permissions', 'port', 'listen_addresses',
      'jit_provider', 'auto_explain.log_min_duration', 'wal_sync_method',
    ]) {
      const err = refusal('postgres', name, 'x');
      assert.equal(err.option, name);
    }
    for (const [name, value] of [
      ['work_mem', "64MB'\ninclude '/etc/x"],
      ['work_mem', '64mb'],
      ['timezone', '../../../etc/passwd'],
      ['synchronous_commit', 'sometimes'],
    ] as Array<[string, OptionValue]>) {
      refusal('postgres', name, value);
    }
  });

  it('takes listed PostgreSQL settings in any case', () => {
    assert.deepEqual(checkApiServerOptions('postgres', { WORK_MEM: '8MB', 'max-connections': 50, fsync: 'off', checkpoint_completion_target: 0.8, TimeZone: 'Europe/Berlin' }), {
      work_mem: '8MB',
      max_connections: 50,
      fsync: false,
      checkpoint_completion_target: 0.8,
      timezone: 'Europe/Berlin',
    });
  });

  it('gives a cluster_mgr node no server options', () => {
    refusal('cluster_mgr', 'max_connections', 10);
  });

  it('checks an uploaded install config\'s innodb_buffer_pool_size the same way', () => {
    const shard = (size: string) =>
      JSON.stringify({ cluster_name: 'c', shard_name: 's', nodes: [{ ip: '127.0.0.1', port: 6001, data_dir_path: '/x', innodb_buffer_pool_size: size }] });
    const defaults = { nodesDir: '/n', user: 'u', password: 'p', localAddresses: ['127.0.0.1'] };
    assert.deepEqual(mysqlEntries(shard('64MB'), 'm.json', { index: 0 }, defaults)[0]!.serverOptions, { innodb_buffer_pool_size: '64M' });
    for (const bad of ['64MB\ninit-file=/tmp/x.sql', '64M\n[mysqld]\nplugin-load-add=x.so', '1G init_file=/tmp/x']) {
      assert.throws(() => mysqlEntries(shard(bad), 'm.json', { index: 0 }, defaults), /innodb_buffer_pool_size/);
    }
  });
});

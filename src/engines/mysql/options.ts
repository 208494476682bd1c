// The MariaDB / MySQL options a node entry from the network may set (server-options.ts), and how
// mysqld reads an option name: `--` may lead, `-` and `_` are one, case does not matter, `loose-`
// only makes an unknown option a warning, `maximum-` sets a session variable's upper limit, and
// `skip-`/`disable-`/`enable-` switch a boolean. mysqld also takes any unique prefix of a name
// (`init-fil` is init_file, in my.cnf too: getopt-prefix-matching is on); node-mgr takes only full
// names, so an abbreviation is refused rather than guessed at.
import { notAllowed, type ApiOptionPolicy, type OptionRule, type Resolved } from '../option-rules.ts';

const K = 1024;
const SIZE = { K, M: K ** 2, G: K ** 3, T: K ** 4 } as const;
const size = (min: number, max: number): OptionRule => ({ type: 'int', min, max, units: SIZE, caseInsensitiveUnits: true });
const int = (min: number, max: number): OptionRule => ({ type: 'int', min, max });
const bool: OptionRule = { type: 'bool' };
const oneOf = (...values: string[]): OptionRule => ({ type: 'enum', values });

/**
 * Tuning options: memory, connections, timeouts, InnoDB and binlog behaviour. Deliberately absent:
 * anything that names a file or directory (init_file, plugin_dir, tmpdir, log_bin, secure_file_priv,
 * *_file, *_dir…), loads code (plugin_load(_add), *_plugin), runs SQL (init_connect, init_slave),
 * or opens the server (skip_grant_tables, local_infile); also what node-mgr derives itself (datadir,
 * port, bind_address, socket, pid_file, log_error).
 */
const MYSQL_OPTIONS: Readonly<Record<string, OptionRule>> = {
  max_connections: int(1, 100_000),
  max_user_connections: int(0, 100_000),
  max_connect_errors: int(1, 2 ** 32 - 1),
  max_allowed_packet: size(1024, SIZE.G),
  max_prepared_stmt_count: int(0, 1_048_576),
  thread_cache_size: int(0, 16_384),
  thread_handling: oneOf('one-thread-per-connection', 'pool-of-threads'),
  thread_pool_size: int(1, 1000),
  table_open_cache: int(1, 1_048_576),
  table_definition_cache: int(400, 2_097_152),
  open_files_limit: int(0, 1_048_576),
  tmp_table_size: size(1024, SIZE.T),
  max_heap_table_size: size(16 * K, SIZE.T),
  sort_buffer_size: size(1024, SIZE.G * 4),
  join_buffer_size: size(128, SIZE.G * 4),
  read_buffer_size: size(8 * K, 2 * SIZE.G),
  read_rnd_buffer_size: size(1, 2 * SIZE.G),
  key_buffer_size: size(0, SIZE.T),
  wait_timeout: int(1, 31_536_000),
  interactive_timeout: int(1, 31_536_000),
  connect_timeout: int(2, 31_536_000),
  net_read_timeout: int(1, 31_536_000),
  net_write_timeout: int(1, 31_536_000),
  lock_wait_timeout: int(0, 31_536_000),
  long_query_time: { type: 'real', min: 0, max: 31_536_000 },
  slow_query_log: bool,
  general_log: bool,
  performance_schema: bool,
  skip_name_resolve: bool,
  read_only: bool,
  explicit_defaults_for_timestamp: bool,
  event_scheduler: oneOf('ON', 'OFF', 'DISABLED'),
  lower_case_table_names: int(0, 2),
  character_set_server: { type: 'name' },
  collation_server: { type: 'name' },
  sql_mode: { type: 'words' },
  transaction_isolation: oneOf('READ-UNCOMMITTED', 'READ-COMMITTED', 'REPEATABLE-READ', 'SERIALIZABLE'),
  default_storage_engine: oneOf('InnoDB', 'Aria', 'MyISAM', 'MEMORY'),
  server_id: int(1, 2 ** 32 - 1),
  sync_binlog: int(0, 2 ** 32 - 1),
  binlog_format: oneOf('ROW', 'STATEMENT', 'MIXED'),
  binlog_row_image: oneOf('FULL', 'MINIMAL', 'NOBLOB'),
  binlog_cache_size: size(4096, SIZE.G * 4),
  max_binlog_size: size(4096, SIZE.G),
  expire_logs_days: { type: 'real', min: 0, max: 99 },
  binlog_expire_logs_seconds: int(0, 8_553_600),
  log_slave_updates: bool,
  gtid_strict_mode: bool,
  innodb_buffer_pool_size: size(2 * SIZE.M, SIZE.T * 64),
  innodb_log_file_size: size(SIZE.M, SIZE.T / 2),
  innodb_log_buffer_size: size(256 * K, SIZE.G * 4),
  innodb_flush_log_at_trx_commit: int(0, 3),
  innodb_flush_method: oneOf('fsync', 'O_DSYNC', 'littlesync', 'nosync', 'O_DIRECT', 'O_DIRECT_NO_FSYNC'),
  innodb_file_per_table: bool,
  innodb_io_capacity: int(100, 2 ** 32 - 1),
  innodb_io_capacity_max: int(100, 2 ** 32 - 1),
  innodb_read_io_threads: int(1, 64),
  innodb_write_io_threads: int(1, 64),
  innodb_lock_wait_timeout: int(0, 100_000_000),
  innodb_open_files: int(10, 2 ** 31 - 1),
  innodb_stats_on_metadata: bool,
  innodb_strict_mode: bool,
  innodb_autoinc_lock_mode: int(0, 2),
  innodb_doublewrite: bool,
  innodb_adaptive_hash_index: bool,
  innodb_print_all_deadlocks: bool,
  innodb_default_row_format: oneOf('redundant', 'compact', 'dynamic'),
};

/** Prefixes that turn a boolean option off or on, as mysqld reads them. */
const SWITCHES: ReadonlyArray<[string, boolean]> = [
  ['skip_', false],
  ['disable_', false],
  ['enable_', true],
];

function resolve(given: string): Resolved {
  let name = given.startsWith('--') ? given.slice(2) : given;
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(name)) return { ok: false, reason: 'is not a plain option name (letters, digits, - and _ only)' };
  name = name.toLowerCase().replace(/-/g, '_');
  // `loose-` only makes mysqld ignore an option it does not know; every listed option is known.
  if (name.startsWith('loose_')) name = name.slice('loose_'.length);
  if (name.startsWith('maximum_')) {
    return { ok: false, reason: `(MariaDB's maximum- prefix, the upper limit of ${name.slice('maximum_'.length)}) is not accepted over the network; only node-mgr's own config file can set it` };
  }
  const rule = MYSQL_OPTIONS[name];
  if (rule) return { ok: true, canonical: name, rule };
  for (const [prefix, value] of SWITCHES) {
    if (!name.startsWith(prefix)) continue;
    const base = name.slice(prefix.length);
    const baseRule = MYSQL_OPTIONS[base];
    if (baseRule?.type === 'bool') return { ok: true, canonical: base, rule: baseRule, implied: value };
  }
  return notAllowed('MariaDB option', name);
}

export const mysqlApiOptions: ApiOptionPolicy = {
  resolve,
};

/** The names on the list, for docs and tests. */
export const MYSQL_API_OPTION_NAMES: readonly string[] = Object.keys(MYSQL_OPTIONS);

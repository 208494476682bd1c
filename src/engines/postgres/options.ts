// The PostgreSQL settings a node entry from the network may set (server-options.ts). PostgreSQL
// reads setting names without regard to case; node-mgr also takes `-` for `_` and a leading `--`
// (as `postgres --work-mem=…` does) so that no spelling of a refused setting gets through.
import { notAllowed, type ApiOptionPolicy, type OptionRule, type Resolved } from '../option-rules.ts';

const MAX_INT = 2 ** 31 - 1;
// PostgreSQL's own unit spellings (case-sensitive, as the server wants them). The range of the
// number is the server's to check (it depends on each setting's base unit); node-mgr checks shape.
const MEMORY = { B: 1, kB: 1, MB: 1, GB: 1, TB: 1 } as const;
const TIME = { us: 1, ms: 1, s: 1, min: 1, h: 1, d: 1 } as const;
// -1 is "off" for some of them; the server refuses it where it means nothing.
const memory = (): OptionRule => ({ type: 'int', min: -1, max: MAX_INT, units: MEMORY });
const time = (): OptionRule => ({ type: 'int', min: -1, max: MAX_INT, units: TIME });
const int = (min: number, max: number): OptionRule => ({ type: 'int', min, max });
const real = (min: number, max: number): OptionRule => ({ type: 'real', min, max });
const bool: OptionRule = { type: 'bool' };
const oneOf = (...values: string[]): OptionRule => ({ type: 'enum', values });

/**
 * Tuning settings: memory, planner costs, parallelism, checkpoints and WAL sizing, timeouts,
 * autovacuum, logging switches. Deliberately absent: every *_command, *_library and *preload*
 * setting, dynamic_library_path, include*, data_directory, config_file, hba_file, ident_file,
 * external_pid_file, the ssl_* files, log_directory/log_filename, unix_socket_*, and what node-mgr
 * derives itself (port, listen_addresses).
 */
const POSTGRES_SETTINGS: Readonly<Record<string, OptionRule>> = {
  max_connections: int(1, 262_143),
  superuser_reserved_connections: int(0, 262_143),
  shared_buffers: memory(),
  work_mem: memory(),
  maintenance_work_mem: memory(),
  autovacuum_work_mem: memory(),
  temp_buffers: memory(),
  effective_cache_size: memory(),
  wal_buffers: memory(),
  max_wal_size: memory(),
  min_wal_size: memory(),
  wal_keep_size: memory(),
  checkpoint_timeout: time(),
  checkpoint_completion_target: real(0, 1),
  random_page_cost: real(0, 1.79e308),
  seq_page_cost: real(0, 1.79e308),
  cpu_tuple_cost: real(0, 1.79e308),
  effective_io_concurrency: int(0, 1000),
  max_worker_processes: int(0, 262_143),
  max_parallel_workers: int(0, 1024),
  max_parallel_workers_per_gather: int(0, 1024),
  max_parallel_maintenance_workers: int(0, 1024),
  default_statistics_target: int(1, 10_000),
  statement_timeout: time(),
  lock_timeout: time(),
  idle_in_transaction_session_timeout: time(),
  idle_session_timeout: time(),
  deadlock_timeout: time(),
  tcp_keepalives_idle: time(),
  tcp_keepalives_interval: time(),
  tcp_keepalives_count: int(0, MAX_INT),
  synchronous_commit: oneOf('on', 'off', 'local', 'remote_write', 'remote_apply'),
  fsync: bool,
  full_page_writes: bool,
  wal_compression: oneOf('on', 'off', 'pglz', 'lz4', 'zstd'),
  wal_level: oneOf('minimal', 'replica', 'logical'),
  max_wal_senders: int(0, 262_143),
  max_replication_slots: int(0, 262_143),
  hot_standby: bool,
  autovacuum: bool,
  autovacuum_max_workers: int(1, 262_143),
  autovacuum_naptime: time(),
  autovacuum_vacuum_scale_factor: real(0, 100),
  autovacuum_analyze_scale_factor: real(0, 100),
  autovacuum_vacuum_cost_limit: int(-1, 10_000),
  autovacuum_vacuum_cost_delay: time(),
  log_min_duration_statement: time(),
  log_autovacuum_min_duration: time(),
  log_statement: oneOf('none', 'ddl', 'mod', 'all'),
  log_checkpoints: bool,
  log_connections: bool,
  log_disconnections: bool,
  log_lock_waits: bool,
  log_temp_files: memory(),
  default_transaction_isolation: oneOf('serializable', 'repeatable read', 'read committed', 'read uncommitted'),
  password_encryption: oneOf('scram-sha-256', 'md5'),
  jit: bool,
  huge_pages: oneOf('on', 'off', 'try'),
  timezone: { type: 'name' },
  log_timezone: { type: 'name' },
};

function resolve(given: string): Resolved {
  let name = given.startsWith('--') ? given.slice(2) : given;
  // A dot makes a custom (extension) setting: never on the list.
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(name)) return { ok: false, reason: 'is not a plain setting name (letters, digits, - and _ only)' };
  name = name.toLowerCase().replace(/-/g, '_');
  const rule = POSTGRES_SETTINGS[name];
  return rule ? { ok: true, canonical: name, rule } : notAllowed('PostgreSQL setting', name);
}

export const postgresApiOptions: ApiOptionPolicy = {
  resolve,
};

/** The names on the list, for docs and tests. */
export const POSTGRES_API_SETTING_NAMES: readonly string[] = Object.keys(POSTGRES_SETTINGS);

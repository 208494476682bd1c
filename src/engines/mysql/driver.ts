// mysql2 is loaded at the first MySQL connection, not at start: loading it was a good part of a
// start's CPU and memory, which a node-mgr with no MySQL node (or before its first probe) never needs.
import type mysql from 'mysql2/promise';
import type { ConnectionOptions } from 'mysql2/promise';

export type MysqlDriver = typeof mysql;

let loading: Promise<MysqlDriver> | undefined;

/** mysql2/promise, loaded once. */
export function mysqlDriver(): Promise<MysqlDriver> {
  loading ??= import('mysql2/promise').then((m) => m.default);
  return loading;
}

/**
 * A connection of node-mgr's own. mysql2 sizes each connection's prepared-statement cache by
 * maxPreparedStatements (16,000 by default: four arrays of that length, 0.5 MB, filled at connect);
 * node-mgr never prepares a statement, and a readiness wait opens a connection every 10 ms: the
 * default cost 2.5 ms of CPU per connection and most of node-mgr's garbage collection during a
 * restart.
 */
export async function connectMysql(options: ConnectionOptions): Promise<mysql.Connection> {
  return (await mysqlDriver()).createConnection({ maxPreparedStatements: 1, ...options });
}

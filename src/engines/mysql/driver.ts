// mysql2 is loaded at the first MySQL connection, not at start: loading it was a good part of a
// start's CPU and memory, which a node-mgr with no MySQL node (or before its first probe) never needs.
import type mysql from 'mysql2/promise';

export type MysqlDriver = typeof mysql;

let loading: Promise<MysqlDriver> | undefined;

/** mysql2/promise, loaded once. */
export function mysqlDriver(): Promise<MysqlDriver> {
  loading ??= import('mysql2/promise').then((m) => m.default);
  return loading;
}

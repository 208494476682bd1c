// pg is loaded at the first PostgreSQL connection, not at start: loading it was a good part of a
// start's CPU and memory, which a node-mgr with no PostgreSQL node (or before its first probe) never needs.
import type pg from 'pg';

export type PgDriver = typeof pg;

let loading: Promise<PgDriver> | undefined;

/** pg, loaded once. */
export function pgDriver(): Promise<PgDriver> {
  loading ??= import('pg').then((m) => m.default);
  return loading;
}

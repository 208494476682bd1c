// SQL sessions the table jobs open on a storage node, with the caller's credentials, and the
// errors they raise turned into sentences that name the node.
import type mysql from 'mysql2/promise';
import { connectMysql } from '../engines/mysql/driver.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { clientHost, isLoopback, localAddresses } from '../host/address.ts';
import { endConnection } from '../engines/sql-close.ts';

export interface Credentials {
  user: string;
  password: string;
}

export type Session = mysql.Connection;

/** Where a session goes: a supervised node, or a server found elsewhere (a replica). */
export interface SqlTarget {
  /** How messages name it: the node id, or host:port. */
  id: string;
  host: string;
  port: number;
}

export function nodeTarget(spec: NodeSpec): SqlTarget {
  return { id: spec.id, host: clientHost(spec), port: spec.port };
}

/** Server error numbers the table jobs react to. */
export const ER = {
  BAD_DB: 1049,
  BAD_TABLE: 1051,
  NO_SUCH_TABLE: 1146,
  TABLESPACE_DISCARDED: 1814,
} as const;

export function errno(err: unknown): number | undefined {
  return (err as { errno?: number }).errno;
}

/**
 * One connection to the node at its client address. utf8mb4 so that any identifier survives the
 * round trip; an empty sql_mode so that SHOW CREATE TABLE is quoted with backticks (no
 * ANSI_QUOTES) and re-creating a table from it is not refused by a strict mode the source lacked.
 */
export async function openSession(node: NodeSpec | SqlTarget, creds: Credentials, what: string): Promise<Session> {
  const target = 'runAs' in node ? nodeTarget(node) : node;
  let conn: Session;
  try {
    conn = await connectMysql({
      host: target.host,
      port: target.port,
      user: creds.user,
      password: creds.password,
      charset: 'utf8mb4',
      connectTimeout: 10_000,
      // Big tables: CHECKSUM and COUNT results can exceed 2^53 only in theory, but never lose digits.
      supportBigNumbers: true,
      bigNumberStrings: true,
    });
  } catch (err) {
    throw new Error(`cannot connect to ${target.id} (${target.host}:${target.port}) as ${creds.user} for ${what}: ${(err as Error).message}`);
  }
  try {
    await conn.query("SET SESSION sql_mode = '', SESSION sql_quote_show_create = 1");
  } catch (err) {
    await closeSession(conn);
    throw err;
  }
  return conn;
}

/**
 * Closes quietly with COM_QUIT (no "Aborted connection" in the server's log), or destroys a
 * connection that cannot: the session is being given up, an error here changes nothing.
 */
export async function closeSession(conn: Session | undefined): Promise<void> {
  if (conn) await endConnection(conn);
}

/** Rows of a query as plain objects. */
export async function rows<T>(conn: Session, sql: string, values?: unknown[]): Promise<T[]> {
  const [result] = await conn.query(sql, values);
  return result as T[];
}

/** True for an address of this host: the loopback range, or one of its interfaces' addresses. */
export function isLocalAddress(ip: string): boolean {
  const bare = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return isLoopback(bare) || localAddresses().includes(bare);
}

/**
 * The server's own on-disk form of a name (its `filename` character set), to check ours against
 * before trusting a computed path; null when the server cannot say (MySQL builds without it).
 */
export async function serverFilename(conn: Session, name: string): Promise<string | null> {
  try {
    const [row] = await rows<{ f: Buffer | string }>(conn, 'SELECT CAST(CONVERT(? USING filename) AS BINARY) AS f', [name]);
    return row ? Buffer.from(row.f).toString('latin1') : null;
  } catch {
    return null;
  }
}

/**
 * Row count and CHECKSUM TABLE of a table, each on its own session so that the two scans run side
 * by side: the source's summary, taken while it holds its lock (beside the copy).
 */
export async function countAndChecksum(countOn: Session, sumOn: Session, name: string): Promise<{ rows: string; checksum: string }> {
  const [[count], [sum]] = await Promise.all([
    rows<{ n: string | number }>(countOn, `SELECT COUNT(*) AS n FROM ${name}`),
    rows<{ Checksum: string | number | null }>(sumOn, `CHECKSUM TABLE ${name}`),
  ]);
  return { rows: String(count!.n), checksum: String(sum!.Checksum) };
}

/**
 * Checks an imported table against the source's summary with one scan: CHECKSUM TABLE alone. The
 * destination's pages are cold (the import wrote them past the buffer pool), so a COUNT(*) beside it
 * was a second full read of the table from disk that proved nothing the equal checksum does not
 * (docs/decisions.md, "One scan verifies an imported table"). The rows are counted only when the
 * checksums differ, to say how. Returns the summary (the source's rows, proved by the checksum);
 * throws a sentence on a difference.
 */
export async function verifyAgainst(conn: Session, name: string, expected: { rows: string; checksum: string }): Promise<{ rows: string; checksum: string }> {
  const [sum] = await rows<{ Checksum: string | number | null }>(conn, `CHECKSUM TABLE ${name}`);
  const checksum = String(sum!.Checksum);
  if (checksum === expected.checksum) return { rows: expected.rows, checksum };
  const [count] = await rows<{ n: string | number }>(conn, `SELECT COUNT(*) AS n FROM ${name}`);
  throw new Error(`the imported table has ${String(count!.n)} rows with checksum ${checksum}; the source had ${expected.rows} rows with checksum ${expected.checksum}`);
}

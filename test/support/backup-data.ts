// Test data for the cold backup tests: MariaDB tables of incompressible rows (so the archive is
// as big as the data) and PostgreSQL rows, and the fingerprints a restore must bring back.
import mysql from 'mysql2/promise';
import pg from 'pg';
import { api, waitForJob } from './node-mgr-process.ts';

export const ADMIN = { user: 'pgx', password: 'pgx_pwd' };

export async function mysqlConn(port: number): Promise<mysql.Connection> {
  return mysql.createConnection({ host: '127.0.0.1', port, ...ADMIN, multipleStatements: true });
}

/**
 * Creates database `shop` with tables of `mb` megabytes of random rows in all (1000-byte rows:
 * InnoDB stores them as they are, gzip cannot shrink them) plus a small text table.
 */
export async function loadMysqlData(port: number, mb: number, prefix = 'big'): Promise<void> {
  const c = await mysqlConn(port);
  try {
    await c.query('CREATE DATABASE IF NOT EXISTS shop');
    await c.query('USE shop');
    const rows = Math.round((mb * 1024 * 1024) / 1100);
    const tables = Math.max(1, Math.round(mb / 25));
    for (let t = 0; t < tables; t++) {
      const name = `${prefix}_${t}`;
      await c.query(`CREATE TABLE ${name} (id INT PRIMARY KEY, payload VARBINARY(1000)) ENGINE=InnoDB`);
      const per = Math.ceil(rows / tables);
      // seq_1_to_N is MariaDB's Sequence engine; in chunks, so no statement is huge.
      for (let from = 1; from <= per; from += 20_000) {
        const to = Math.min(per, from + 19_999);
        await c.query(`INSERT INTO ${name} SELECT seq, RANDOM_BYTES(1000) FROM seq_${from}_to_${to}`);
      }
    }
    await c.query('CREATE TABLE IF NOT EXISTS notes (id INT AUTO_INCREMENT PRIMARY KEY, note TEXT) ENGINE=InnoDB');
    await c.query("INSERT INTO notes (note) SELECT CONCAT('note ', seq) FROM seq_1_to_1000");
  } finally {
    await c.end();
  }
}

/** CHECKSUM TABLE of every table of `shop`, by name. */
export async function mysqlChecksums(port: number): Promise<Record<string, string>> {
  const c = await mysqlConn(port);
  try {
    const [tables] = await c.query("SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'shop' ORDER BY 1");
    const out: Record<string, string> = {};
    for (const { t } of tables as { t: string }[]) {
      const [[row]] = (await c.query(`CHECKSUM TABLE shop.\`${t}\``)) as unknown as [{ Checksum: string | number }[]];
      out[t] = String(row!.Checksum);
    }
    return out;
  } finally {
    await c.end();
  }
}

/** Changes the data every way a restore must undo: deleted and updated rows, a dropped and a new table. */
export async function changeMysqlData(port: number): Promise<void> {
  const c = await mysqlConn(port);
  try {
    await c.query('DELETE FROM shop.big_0 WHERE id % 3 = 0');
    await c.query("UPDATE shop.notes SET note = 'changed' WHERE id < 100");
    await c.query('DROP TABLE shop.big_1');
    await c.query('CREATE TABLE shop.after_backup (id INT PRIMARY KEY) ENGINE=InnoDB');
  } finally {
    await c.end();
  }
}

export async function pgQuery<T extends pg.QueryResultRow>(port: number, sql: string): Promise<T[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, ...ADMIN, database: 'postgres' });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

/** Count and md5 of the PostgreSQL test table's contents. */
export async function pgFingerprint(port: number): Promise<string> {
  const [row] = await pgQuery<{ n: string; h: string }>(port, "SELECT count(*) AS n, md5(string_agg(id || ':' || v, ',' ORDER BY id)) AS h FROM items");
  return `${row!.n}:${row!.h}`;
}

/** Submits a legacy job and waits for its end; returns the final get_status reply. */
export async function runLegacyJob(url: string, body: Record<string, unknown>, timeoutMs = 180_000): Promise<any> {
  const r = await api(url, 'POST', '/', body);
  if (r.status !== 200) throw new Error(`${String(body.job_type)} refused: HTTP ${r.status} ${r.text}`);
  return waitForJob(url, r.body.job_id, timeoutMs);
}

/** Submits a REST job (202 + job_id) and waits for its end. */
export async function runRestJob(url: string, route: string, body: unknown, timeoutMs = 180_000): Promise<any> {
  const r = await api(url, 'POST', route, body);
  if (r.status !== 202) throw new Error(`POST ${route} refused: HTTP ${r.status} ${r.text}`);
  return waitForJob(url, r.body.job_id, timeoutMs);
}

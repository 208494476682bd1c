// Test data for point-in-time restore: a history of timestamped rows across several binlog files
// with a backup in the middle and a DROP TABLE "by mistake", and waiting for node-mgr's archiver to
// have copied them into the store.
import { setTimeout as sleep } from 'node:timers/promises';
import { readBinlogIndex, type ArchivedBinlog } from '../../src/backup/binlog-archive.ts';
import type { BackupStore } from '../../src/backup/store.ts';
import { mysqlConn, runLegacyJob, ADMIN } from './backup-data.ts';

/** Waits (up to two minutes) until node-mgr's archiver has every closed binlog of the node in the archive; returns its index. */
export async function waitUntilArchived(store: BackupStore, dir: string, port: number): Promise<ArchivedBinlog[]> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const c = await mysqlConn(port);
    let closed: string[];
    try {
      const names = ((await c.query('SHOW BINARY LOGS')) as unknown as [{ Log_name: string }[]])[0].map((r) => r.Log_name);
      const current = ((await c.query('SHOW MASTER STATUS')) as unknown as [{ File: string }[]])[0][0]!.File;
      closed = names.filter((n) => n !== current);
    } finally {
      await c.end();
    }
    const index = await readBinlogIndex(store, dir);
    const have = new Set(index.map((e) => e.file));
    if (closed.every((n) => have.has(n))) return index;
    if (Date.now() > deadline) throw new Error(`the archiver has not archived ${closed.filter((n) => !have.has(n)).join(', ')} within two minutes`);
    await sleep(200);
  }
}

/** PURGE BINARY LOGS of everything closed on the node (all of it is archived by then). */
export async function purgeArchivedBinlogs(port: number): Promise<void> {
  const c = await mysqlConn(port);
  try {
    const current = ((await c.query('SHOW MASTER STATUS')) as unknown as [{ File: string }[]])[0][0]!.File;
    await c.query('PURGE BINARY LOGS TO ?', [current]);
  } finally {
    await c.end();
  }
}

export interface PitrHistory {
  /** The backup taken in the middle. */
  backup: string;
  /** When the table was dropped by mistake. */
  droppedAt: Date;
  /** Fingerprints of both tables just before the drop. */
  beforeDrop: PitrFingerprint;
  /** And at the end of the history (the "old data" a refused restore must leave in place). */
  atEnd: PitrFingerprint;
}

export interface PitrFingerprint {
  events: string;
  victim: string | null;
  /** Count and md5 over every row of `events` (id, time, phase, payload). */
  rows: string;
  afterDrop: number;
}

export async function pitrFingerprint(port: number): Promise<PitrFingerprint> {
  const c = await mysqlConn(port);
  try {
    const one = async <T>(sql: string) => ((await c.query(sql)) as unknown as [T[]])[0][0]!;
    await c.query('SET SESSION group_concat_max_len = 1073741824');
    const events = String((await one<{ Checksum: string }>('CHECKSUM TABLE pitr.events')).Checksum);
    const [[exists]] = (await c.query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'pitr' AND table_name = 'victim'")) as unknown as [{ n: number }[]];
    const victim = Number(exists!.n) ? String((await one<{ Checksum: string }>('CHECKSUM TABLE pitr.victim')).Checksum) : null;
    const rows = await one<{ n: number; h: string }>(
      "SELECT COUNT(*) AS n, MD5(GROUP_CONCAT(CONCAT_WS(':', id, at, phase, HEX(payload)) ORDER BY id SEPARATOR ',')) AS h FROM pitr.events",
    );
    const after = await one<{ n: number }>("SELECT COUNT(*) AS n FROM pitr.events WHERE phase = 'after'");
    return { events, victim, rows: `${rows.n}:${rows.h}`, afterDrop: Number(after.n) };
  } finally {
    await c.end();
  }
}

/**
 * Writes the history: rows in several binlog files, a backup (legacy coldbackup through node-mgr)
 * in the middle, more rows and updates over three more files, a pause of two seconds, DROP TABLE
 * pitr.victim at `droppedAt`, more rows, and a rotation so that every binlog up to here is closed.
 */
export async function writePitrHistory(mgrUrl: string, port: number, rowsPerStep = 300): Promise<PitrHistory> {
  const c = await mysqlConn(port);
  try {
    await c.query('CREATE DATABASE IF NOT EXISTS pitr');
    await c.query('USE pitr'); // seq_1_to_N lives in the current database
    await c.query('CREATE TABLE pitr.events (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL, phase VARCHAR(16) NOT NULL, payload VARBINARY(200)) ENGINE=InnoDB');
    await c.query('CREATE TABLE pitr.victim (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB');
    const write = (phase: string, n = rowsPerStep) => c.query(`INSERT INTO pitr.events (at, phase, payload) SELECT NOW(6), ?, RANDOM_BYTES(150) FROM seq_1_to_${n}`, [phase]);
    await write('a');
    await c.query("INSERT INTO pitr.victim SELECT seq, CONCAT('victim ', seq) FROM seq_1_to_500");
    await c.query('FLUSH BINARY LOGS');
    await write('b');
    await c.query('FLUSH BINARY LOGS');
    const done = await runLegacyJob(mgrUrl, { ver: '0.1', job_type: 'coldbackup', s_ip: '127.0.0.1', s_port: port, s_user: ADMIN.user, s_pwd: ADMIN.password });
    if (done.result !== 'succeed') throw new Error(`the backup failed: ${JSON.stringify(done)}`);
    await write('c');
    await c.query('FLUSH BINARY LOGS');
    await c.query("UPDATE pitr.events SET phase = 'c-updated' WHERE id % 10 = 0");
    await c.query("DELETE FROM pitr.victim WHERE id % 7 = 0");
    await write('d');
    await c.query('FLUSH BINARY LOGS');
    await write('e');
    // Nothing is written in the last two seconds before the mistake: "before T" is then unambiguous
    // at the binlog's one-second resolution for a restore to T - 1 s.
    await sleep(2100);
    const beforeDrop = await pitrFingerprint(port);
    const droppedAt = new Date();
    await c.query('DROP TABLE pitr.victim');
    await sleep(1100);
    await write('after', 100);
    await c.query('FLUSH BINARY LOGS');
    const atEnd = await pitrFingerprint(port);
    return { backup: done.output.file, droppedAt, beforeDrop, atEnd };
  } finally {
    await c.end();
  }
}

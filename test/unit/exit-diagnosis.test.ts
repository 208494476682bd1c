// Exit diagnosis over log lines captured from real MariaDB 10.11 and PostgreSQL 15 failures.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { classifyExit, currentRun, diagnoseFromLogs, readLogTail, stripLogPrefix } from '../../src/engines/exit-diagnosis.ts';

const clean = { code: 1, signal: null };

const MARIADB_START = '2026-11-28  8:53:57 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1-log source revision 5843d84 as process 7761';
const MARIADB_SHUTDOWN = '2026-11-28  8:53:56 0 [Note] /usr/sbin/mariadbd: Shutdown complete';

describe('classifyExit', () => {
  it('names the unknown MariaDB variable as bad_config_option', () => {
    const d = classifyExit(
      [
        MARIADB_START,
        "2026-11-28  8:53:57 0 [ERROR] /usr/sbin/mariadbd: unknown variable 'bogus-two=3'",
        '2026-11-28  8:53:57 0 [ERROR] Aborting',
      ],
      { code: 7, signal: null },
    );
    assert.equal(d.cause, 'bad_config_option');
    assert.match(d.detail, /unknown variable 'bogus-two=3'/);
  });

  it("names an unknown MariaDB command-line option ('--bogus') as bad_config_option", () => {
    const d = classifyExit(["2026-11-28  8:53:57 0 [ERROR] mariadbd: unknown option '--bogus'"], clean);
    assert.equal(d.cause, 'bad_config_option');
    assert.match(d.detail, /'--bogus'/);
  });

  it('names the unrecognized PostgreSQL parameter, from the command line or from a config file', () => {
    const fromArgv = classifyExit(['2026-11-28 08:54:04.780 GMT [8557] FATAL:  unrecognized configuration parameter "bogus_two"'], clean);
    assert.equal(fromArgv.cause, 'bad_config_option');
    assert.match(fromArgv.detail, /"bogus_two"/);
    const fromFile = classifyExit(
      [
        '2026-11-28 08:54:04.766 GMT [8555] LOG:  unrecognized configuration parameter "bogus_param" in file "/n/data/node-mgr.conf" line 1',
        '2026-11-28 08:54:04.766 GMT [8555] FATAL:  configuration file "/n/data/node-mgr.conf" contains errors',
      ],
      clean,
    );
    assert.equal(fromFile.cause, 'bad_config_option');
    assert.match(fromFile.detail, /"bogus_param"/);
  });

  it('recognises a port held by another process (MariaDB and PostgreSQL)', () => {
    const maria = classifyExit(
      [
        "2026-11-28  9:02:49 0 [ERROR] Can't start server: Bind on TCP/IP port. Got error: 98: Address already in use",
        '2026-11-28  9:02:49 0 [ERROR] Do you already have another server running on port: 16001 ?',
      ],
      clean,
    );
    assert.equal(maria.cause, 'port_in_use');
    assert.match(maria.detail, /Bind on TCP\/IP port/);
    const pg = classifyExit(['2026-11-28 09:03:26.659 UTC [19682] LOG:  could not bind IPv4 address "127.0.0.1": Address already in use'], clean);
    assert.equal(pg.cause, 'port_in_use');
  });

  it('recognises a data dir locked by another server (MariaDB Aria / InnoDB, PostgreSQL postmaster.pid)', () => {
    for (const line of [
      "2026-11-28  9:02:50 0 [ERROR] mariadbd: Can't lock aria control file '/n/data/aria_log_control' for exclusive use, error: 11. Will retry for 30 seconds",
      '2026-11-28  9:03:20 0 [ERROR] InnoDB: Unable to lock ./ibdata1 error: 11',
      '2026-11-28 09:03:25.381 UTC [19652] FATAL:  lock file "postmaster.pid" already exists',
    ]) {
      assert.equal(classifyExit([line], clean).cause, 'data_dir_locked', line);
    }
  });

  it('recognises a full disk and a permission problem', () => {
    assert.equal(
      classifyExit(['2026-11-28 09:00:00.000 UTC [1] PANIC:  could not write to file "pg_wal/xlogtemp.1": No space left on device'], clean).cause,
      'disk_full',
    );
    assert.equal(
      classifyExit(["2026-11-28  9:00:00 0 [ERROR] mariadbd: Can't create/write to file '/n/run/mysqld.pid' (Errcode: 13 \"Permission denied\")"], clean)
        .cause,
      'permission',
    );
  });

  it('blames the first error of the run, not its consequences', () => {
    const d = classifyExit(
      [
        "2026-11-28  9:02:50 0 [ERROR] mariadbd: Can't lock aria control file '/n/data/aria_log_control' for exclusive use, error: 11.",
        "2026-11-28  9:03:20 0 [ERROR] Could not open mysql.plugin table: \"Unknown storage engine 'Aria'\". Permission denied maybe",
      ],
      clean,
    );
    assert.equal(d.cause, 'data_dir_locked');
  });

  it('says killed_by_signal when the log holds no evidence and a signal ended the process', () => {
    const d = classifyExit(['2026-11-28  9:00:00 0 [Note] InnoDB: Buffer pool(s) load completed'], { code: null, signal: 'SIGKILL' });
    assert.equal(d.cause, 'killed_by_signal');
    assert.match(d.detail, /SIGKILL/);
  });

  it('prefers log evidence over the signal (an abort after a full disk is a full disk)', () => {
    const d = classifyExit(['[ERROR] InnoDB: Write to file ./ibdata1 failed: No space left on device'], { code: null, signal: 'SIGABRT' });
    assert.equal(d.cause, 'disk_full');
  });

  it('falls back to unknown, quoting the last error line without its timestamp', () => {
    const d = classifyExit(
      ['2026-11-28  9:00:00 0 [Note] something', '2026-11-28  9:00:01 0 [ERROR] Something odd happened', 'trailing note'],
      { code: 3, signal: null },
    );
    assert.equal(d.cause, 'unknown');
    assert.match(d.detail, /code 3.*"\[ERROR\] Something odd happened"/);
  });

  it('keeps at most the last 30 lines as the log tail', () => {
    const lines = Array.from({ length: 50 }, (_, i) => `line ${i}`);
    const d = classifyExit(lines, clean);
    assert.equal(d.logTail.length, 30);
    assert.equal(d.logTail.at(-1), 'line 49');
  });
});

describe('currentRun', () => {
  it("ignores an earlier run's error that a clean shutdown closed", () => {
    const lines = [
      MARIADB_START,
      "2026-11-28  8:00:00 0 [ERROR] /usr/sbin/mariadbd: unknown variable 'old=1'",
      MARIADB_SHUTDOWN,
      '2026-11-28  9:00:00 0 [Note] InnoDB: Buffer pool(s) load completed',
    ];
    assert.deepEqual(currentRun(lines), lines.slice(3));
    assert.equal(classifyExit(currentRun(lines), { code: null, signal: 'SIGKILL' }).cause, 'killed_by_signal');
  });

  it('starts at the last launch marker node-mgr wrote', () => {
    const lines = ['old FATAL:  something', '--- node-mgr 2026-11-28T09:00:00.000Z: launching postgres-6001 (/usr/lib/postgresql/15/bin/postgres) ---', 'new'];
    assert.deepEqual(currentRun(lines), lines.slice(1));
  });

  it("keeps a failed PostgreSQL start that ends with its own 'shut down' line", () => {
    const lines = [
      '2026-11-28 09:00:00.000 UTC [1] LOG:  database system is shut down',
      '2026-11-28 09:03:26.659 UTC [19682] LOG:  could not bind IPv4 address "127.0.0.1": Address already in use',
      '2026-11-28 09:03:26.659 UTC [19682] FATAL:  could not create any TCP/IP sockets',
      '2026-11-28 09:03:26.665 UTC [19682] LOG:  database system is shut down',
    ];
    assert.deepEqual(currentRun(lines), lines.slice(1));
    assert.equal(classifyExit(currentRun(lines), clean).cause, 'port_in_use');
  });
});

describe('diagnoseFromLogs', () => {
  it('reads every log through the given reader, error log first', async () => {
    const files: Record<string, string[]> = {
      '/n/log/error.log': [MARIADB_START, "[ERROR] mariadbd: unknown variable 'x=1'"],
      '/n/log/server.log': ['--- node-mgr 2026-11-28T09:00:00.000Z: launching mysql-6001 (/usr/sbin/mariadbd) ---'],
    };
    const read: string[] = [];
    const d = await diagnoseFromLogs(Object.keys(files), clean, async (file) => {
      read.push(file);
      return files[file] ?? [];
    });
    assert.deepEqual(read, ['/n/log/error.log', '/n/log/server.log']);
    assert.equal(d.cause, 'bad_config_option');
    assert.match(d.detail, /'x=1'/);
  });

  it('reads the logs together, not one after the other (a restart waits for the diagnosis)', async () => {
    let reading = 0;
    let most = 0;
    const d = await diagnoseFromLogs(['/n/log/error.log', '/n/log/server.log'], { code: null, signal: 'SIGKILL' }, async (file) => {
      most = Math.max(most, ++reading);
      await new Promise((r) => setImmediate(r));
      reading--;
      return file.endsWith('error.log') ? ["[ERROR] mariadbd: unknown variable 'x=1'"] : [];
    });
    assert.equal(most, 2);
    // Still used in the order given: the error log's evidence wins.
    assert.equal(d.cause, 'bad_config_option');
  });

  it('says unknown when no log exists', async () => {
    const d = await diagnoseFromLogs(['/nonexistent/error.log'], { code: 1, signal: null });
    assert.equal(d.cause, 'unknown');
    assert.deepEqual(d.logTail, []);
  });
});

describe('readLogTail', () => {
  let dir: string;
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('returns the last lines of a file larger than the window it reads, and [] for a missing file', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'nm-tail-'));
    const file = path.join(dir, 'big.log');
    await writeFile(file, Array.from({ length: 20_000 }, (_, i) => `line ${i}`).join('\n') + '\n');
    assert.deepEqual(await readLogTail(file, 3), ['line 19997', 'line 19998', 'line 19999']);
    assert.deepEqual(await readLogTail(path.join(dir, 'missing.log'), 3), []);
  });
});

describe('stripLogPrefix', () => {
  it('removes MariaDB and PostgreSQL timestamps', () => {
    assert.equal(stripLogPrefix('2026-11-28  9:02:49 0 [ERROR] Aborting'), '[ERROR] Aborting');
    assert.equal(stripLogPrefix('2026-11-28 09:03:25.381 UTC [19652] FATAL:  lock file'), 'FATAL:  lock file');
  });
});

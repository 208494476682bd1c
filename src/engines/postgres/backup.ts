// Physical backups of PostgreSQL computing nodes with pg_basebackup, streamed: `-D - -Ft` writes
// the base backup as one tar on stdout, which is re-packed entry by entry into the archive, so
// nothing is staged on local disk. `-X fetch` puts the WAL the backup needs into that same tar
// (`-X stream` cannot go to stdout); the WAL is kept on the server until the end by a temporary
// replication slot that node-mgr's own session holds, and that PostgreSQL drops by itself if the
// session ends (node-mgr killed), so no slot can be left behind to fill the disk with WAL.
// A pg_basebackup backup is consistent as it is (recovery from backup_label at the first start):
// there is no prepare step.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import type pg from 'pg';
import { pgDriver } from './driver.ts';
import { readTar } from '../../backup/archive.ts';
import type { BackupPosition } from '../../backup/manifest.ts';
import { clientHost } from '../../host/address.ts';
import { prepareNodeDirs } from '../node-layout.ts';
import { treeBytes, type BackupFile, type PhysicalBackup, type PhysicalBackupRun } from '../physical-backup.ts';
import { redact, runAsTool, serverEnv } from '../run-as-node.ts';
import { postgresPaths } from './paths.ts';

/** backup_label: `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)`, `START TIMELINE: 1`. */
export function parseBackupLabel(text: string): BackupPosition {
  const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/m.exec(text);
  const timeline = /^START TIMELINE: (\d+)$/m.exec(text);
  if (!start) return { kind: 'none', reason: 'backup_label has no START WAL LOCATION' };
  return { kind: 'wal', lsn: start[1]!, file: start[2]!, timeline: timeline ? Number(timeline[1]) : 1 };
}

async function* bufferedBody(chunks: Buffer[]): AsyncGenerator<Buffer> {
  yield* chunks;
}

export const postgresBackup: PhysicalBackup = {
  dataDirMode: 0o700,

  async take(spec, { creds, signal }): Promise<PhysicalBackupRun> {
    const session = new (await pgDriver()).Client({
      host: clientHost(spec),
      port: spec.port,
      user: creds.user,
      password: creds.password,
      database: 'postgres',
      connectionTimeoutMillis: 10_000,
    });
    session.on('error', () => undefined); // a broken session fails the backup through pg_basebackup
    await session.connect();
    let child: ReturnType<typeof execa> | undefined;
    const close = async () => {
      child?.kill('SIGTERM');
      await child?.catch(() => undefined);
      await session.end().catch(() => undefined);
    };
    try {
      const version = String((await session.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? 'unknown');
      const slot = `nodemgr_backup_${randomBytes(6).toString('hex')}`;
      // Temporary (dropped with this session) and reserving WAL from now on.
      await session.query('SELECT pg_create_physical_replication_slot($1, true, true)', [slot]).catch((err: Error) => {
        throw new Error(`${spec.id}: cannot create the temporary replication slot that keeps the backup's WAL on the server (max_replication_slots, wal_level): ${err.message}`);
      });
      const estimate = await treeBytes(spec.dataDir, (name) => name === 'pg_wal' || name === 'postmaster.pid');

      let position: BackupPosition = { kind: 'none', reason: 'the backup has no backup_label' };
      const run = execa(
        path.join(spec.binaries.postgresBinDir, 'pg_basebackup'),
        ['-h', clientHost(spec), '-p', String(spec.port), '-U', creds.user, '-w', '-D', '-', '-Ft', '-X', 'fetch', '-c', 'fast'],
        {
          uid: spec.runAs.uid,
          gid: spec.runAs.gid,
          env: serverEnv(spec, { PGPASSWORD: creds.password, PGAPPNAME: `node-mgr backup ${slot}` }),
          extendEnv: false,
          cwd: spec.dir,
          cancelSignal: signal,
          stdin: 'ignore',
          buffer: { stdout: false, stderr: true },
          reject: false,
        },
      );
      child = run;
      async function* files(): AsyncGenerator<BackupFile> {
        try {
          // The tar ends with zero blocks padded to a record: read past them, so that
          // pg_basebackup writes everything and exits by itself.
          for await (const entry of readTar(run.stdout!.iterator({ destroyOnReturn: false }))) {
            if (entry.path === '') continue; // the data dir itself
            if (entry.type === 'file' && entry.path === 'backup_label') {
              const chunks: Buffer[] = [];
              for await (const piece of entry.body) chunks.push(piece);
              position = parseBackupLabel(Buffer.concat(chunks).toString('utf8'));
              yield { ...entry, body: bufferedBody(chunks) };
              continue;
            }
            yield entry;
          }
          for await (const rest of run.stdout!) void rest;
          const result = await run;
          if (result.failed) {
            const stderr = redact(String(result.stderr ?? '') || (result.shortMessage ?? ''), creds.password).trim().split('\n').slice(-4).join(' | ');
            throw new Error(`${spec.id}: pg_basebackup ${result.isCanceled ? 'was cancelled' : `failed (exit ${result.exitCode ?? result.signal})`}: ${stderr}`);
          }
        } catch (err) {
          // A tar that breaks off usually means pg_basebackup failed: its own words say why.
          if (!(err instanceof Error && /pg_basebackup/.test(err.message))) {
            run.kill('SIGTERM');
            const result = await run;
            const stderr = redact(String(result.stderr ?? ''), creds.password).trim();
            if (stderr) throw new Error(`${spec.id}: pg_basebackup: ${stderr.split('\n').slice(-4).join(' | ')}`, { cause: err });
          }
          throw err;
        }
      }
      return {
        engine: { kind: 'postgres', flavour: 'postgres', tool: 'pg_basebackup', server_version: version },
        prepared: true,
        estimatedBytes: estimate,
        files,
        position: () => position,
        close,
      };
    } catch (err) {
      await close();
      throw err;
    }
  },

  async prepareNodeDirs(spec) {
    await prepareNodeDirs(spec, [spec.logDir, spec.runDir]);
  },

  async finishUnpacked(spec, dir, _manifest, signal) {
    // PostgreSQL's own check of a base backup: every file against backup_manifest, and the WAL
    // from the start to the end of the backup parsed (pg_waldump).
    if (!existsSync(path.join(dir, 'backup_manifest'))) return;
    await runAsTool(spec, postgresPaths(spec).bin('pg_verifybackup'), [dir], { cwd: spec.dir, signal });
  },
};

// What a node-mgr killed in the middle of a cold restore finds at its next start, for every point
// at which it can die: the data dir is the old one or the fully restored one, never a half one.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { NodeSpec } from '../../src/engines/node-spec.ts';
import { JOURNAL_NAME, readJournal, recoverRestore, writeJournal, type RestoreStep } from '../../src/backup/restore-journal.ts';

const log = pino({ level: 'silent' });
const notRunning = { findRunning: async () => null };

interface Layout {
  spec: NodeSpec;
  dirs: { dataDir: string; newDir: string; oldDir: string; failedDir: string };
}

/** A node dir with `data/` holding "old" and `data.restore-t/` holding "restored", and a journal at `step`. */
async function layout(step: RestoreStep, hadData = true): Promise<Layout> {
  const dir = await mkdtemp(path.join(tmpdir(), 'restore-journal-'));
  const dataDir = path.join(dir, 'data');
  const dirs = { dataDir, newDir: `${dataDir}.restore-t`, oldDir: `${dataDir}.old-t`, failedDir: `${dataDir}.failed-t` };
  if (hadData) {
    await mkdir(dataDir);
    await writeFile(path.join(dataDir, 'which'), 'old');
  }
  await mkdir(dirs.newDir);
  await writeFile(path.join(dirs.newDir, 'which'), 'restored');
  const spec = { id: 'mysql-6004', dir, dataDir } as NodeSpec;
  await writeJournal(spec, { job: 'j1', node: spec.id, file: '/coldbackup/c/s/coldback_20211122_234303.tgz', ...dirs, hadData, step });
  return { spec, dirs };
}

const which = (dataDir: string) => readFile(path.join(dataDir, 'which'), 'utf8');

/** The leftovers are removed in the background: wait until only `data` (and nothing else) remains. */
async function onlyDataLeft(dir: string, withData = true): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const names = (await readdir(dir)).sort();
    if (JSON.stringify(names) === JSON.stringify(withData ? ['data'] : [])) return;
    await sleep(20);
  }
  assert.deepEqual((await readdir(dir)).sort(), withData ? ['data'] : []);
}

describe('recovering an interrupted restore at start-up', () => {
  it('killed while replaying archived binlogs: the replay server working in the unpacked dir is killed, the old data stays, the fetched binlogs go', async () => {
    const { spec, dirs } = await layout('replaying');
    const scratch = path.join(spec.dir, '.pitr-binlogs-t');
    await mkdir(scratch);
    await writeFile(path.join(scratch, 'binlog.000004'), 'x');
    // A stand-in for the replay server: a process whose working dir is the unpacked data dir.
    const { spawn } = await import('node:child_process');
    const server = spawn('sleep', ['60'], { cwd: dirs.newDir, stdio: 'ignore' });
    const bystander = spawn('sleep', ['60'], { cwd: spec.dir, stdio: 'ignore' });
    try {
      const journal = (await readJournal(spec))!;
      await writeJournal(spec, { ...journal, scratchDirs: [scratch], replayPid: server.pid! });
      const exited = new Promise((resolve) => server.once('exit', (_c, sig) => resolve(sig)));
      const r = await recoverRestore(spec, notRunning, log);
      assert.equal(r?.outcome, 'old');
      assert.equal(await exited, 'SIGKILL');
      assert.equal(await which(spec.dataDir), 'old');
      await onlyDataLeft(spec.dir);
      // A recycled pid working elsewhere is left alone.
      await writeJournal(spec, { ...journal, replayPid: bystander.pid! });
      await mkdir(dirs.newDir);
      await recoverRestore(spec, notRunning, log);
      assert.equal(bystander.exitCode, null);
      assert.equal(bystander.signalCode, null);
    } finally {
      server.kill('SIGKILL');
      bystander.kill('SIGKILL');
      await rm(spec.dir, { recursive: true, force: true });
    }
  });

  it('killed after starting the replay server but before journaling its pid: the server working in the unpacked dir is found and killed', async () => {
    const { spec, dirs } = await layout('replaying');
    const { spawn } = await import('node:child_process');
    const server = spawn('sleep', ['60'], { cwd: dirs.newDir, stdio: 'ignore' });
    const bystander = spawn('sleep', ['60'], { cwd: spec.dir, stdio: 'ignore' });
    try {
      const journal = (await readJournal(spec))!;
      assert.equal(journal.replayPid, undefined);
      const exited = new Promise((resolve) => server.once('exit', (_c, sig) => resolve(sig)));
      const r = await recoverRestore(spec, notRunning, log);
      assert.equal(r?.outcome, 'old');
      assert.equal(await exited, 'SIGKILL');
      assert.equal(bystander.exitCode, null);
      assert.equal(bystander.signalCode, null);
      await onlyDataLeft(spec.dir);
    } finally {
      server.kill('SIGKILL');
      bystander.kill('SIGKILL');
      await rm(spec.dir, { recursive: true, force: true });
    }
  });

  it('killed while unpacking or stopping: the old data dir stays, the unpacked one goes', async () => {
    for (const step of ['unpacking', 'stopping'] as const) {
      const { spec } = await layout(step);
      const r = await recoverRestore(spec, notRunning, log);
      assert.equal(r?.outcome, 'old');
      assert.equal(await which(spec.dataDir), 'old');
      await onlyDataLeft(spec.dir);
      await rm(spec.dir, { recursive: true });
    }
  });

  it('killed between the two renames of the swap: the old data dir is put back', async () => {
    const { spec, dirs } = await layout('swapping');
    await rename(dirs.dataDir, dirs.oldDir); // first rename done, second not
    const r = await recoverRestore(spec, notRunning, log);
    assert.equal(r?.outcome, 'old');
    assert.equal(await which(spec.dataDir), 'old');
    await onlyDataLeft(spec.dir);
    await rm(spec.dir, { recursive: true });
  });

  it('killed after the swap (before, while or after starting): the restored data dir stays, the old one goes', async () => {
    for (const step of ['swapping', 'swapped', 'positioned'] as const) {
      const { spec, dirs } = await layout(step);
      await rename(dirs.dataDir, dirs.oldDir);
      await rename(dirs.newDir, dirs.dataDir);
      const r = await recoverRestore(spec, notRunning, log);
      assert.equal(r?.outcome, 'restored');
      assert.equal(await which(spec.dataDir), 'restored');
      await onlyDataLeft(spec.dir);
      await rm(spec.dir, { recursive: true });
    }
  });

  it('killed while putting the old data dir back after a failed start: the rollback is completed', async () => {
    // Both renames of the swap done, the restored data failed to start, rollback begun.
    const { spec, dirs } = await layout('rolling_back');
    await rename(dirs.dataDir, dirs.oldDir);
    await rename(dirs.newDir, dirs.dataDir);
    const r = await recoverRestore(spec, notRunning, log);
    assert.equal(r?.outcome, 'old');
    assert.equal(await which(spec.dataDir), 'old');
    await onlyDataLeft(spec.dir);
    await rm(spec.dir, { recursive: true });

    // Killed between the rollback's two renames.
    const second = await layout('rolling_back');
    await rename(second.dirs.dataDir, second.dirs.oldDir);
    await rename(second.dirs.newDir, second.dirs.failedDir);
    assert.equal((await recoverRestore(second.spec, notRunning, log))?.outcome, 'old');
    assert.equal(await which(second.spec.dataDir), 'old');
    await onlyDataLeft(second.spec.dir);
    await rm(second.spec.dir, { recursive: true });
  });

  it('a rebuild of a node that had no data: before the swap it is left without data, after it with the restored data', async () => {
    const before = await layout('stopping', false);
    assert.equal((await recoverRestore(before.spec, notRunning, log))?.outcome, 'none');
    assert.equal(existsSync(before.spec.dataDir), false);
    await onlyDataLeft(before.spec.dir, false);
    await rm(before.spec.dir, { recursive: true });

    const after = await layout('swapping', false);
    await rename(after.dirs.newDir, after.dirs.dataDir);
    assert.equal((await recoverRestore(after.spec, notRunning, log))?.outcome, 'restored');
    assert.equal(await which(after.spec.dataDir), 'restored');
    await rm(after.spec.dir, { recursive: true });
  });

  it('a server already running on the data dir keeps what it runs on', async () => {
    const { spec, dirs } = await layout('swapped');
    await rename(dirs.dataDir, dirs.oldDir);
    await rename(dirs.newDir, dirs.dataDir);
    const r = await recoverRestore(spec, { findRunning: async () => 4242 }, log);
    assert.equal(r?.outcome, 'restored');
    assert.equal(await which(spec.dataDir), 'restored');
    await onlyDataLeft(spec.dir);
    await rm(spec.dir, { recursive: true });
  });

  it('does nothing without a journal, and removes the journal once done', async () => {
    const { spec } = await layout('unpacking');
    assert.ok(existsSync(path.join(spec.dir, JOURNAL_NAME)));
    await recoverRestore(spec, notRunning, log);
    assert.equal(await readJournal(spec), null);
    assert.equal(await recoverRestore(spec, notRunning, log), null);
    await rm(spec.dir, { recursive: true });
  });

  it('refuses a journal written for another data dir', async () => {
    const { spec } = await layout('swapping');
    await assert.rejects(recoverRestore({ ...spec, dataDir: '/elsewhere/data' }, notRunning, log), /resolve it by hand/);
    await rm(spec.dir, { recursive: true });
  });
});

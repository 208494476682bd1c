// One node-mgr per state dir. A second one on the same state would supervise the same servers:
// two restarts for one crash, two runners for one job id. The pid file also tells `node-mgr
// reload` whom to send SIGHUP.
//
// The file's first line is the pid (what systemd's PIDFile= and `kill $(cat …)` read); the second
// is the holder's start tick (/proc/<pid>/stat field 22) and the boot id. After a crash or a power
// loss the pid may belong to another process, even another node program: the tick and boot id say
// it is not the node-mgr that wrote the file, so the service starts again instead of refusing.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { isExpectedProcess } from '../host/process-identity.ts';
import { startTime } from '../host/process-info.ts';

export const LOCK_FILE_NAME = 'node-mgr.pid';

export class StateDirBusyError extends Error {
  constructor(
    message: string,
    readonly pid: number,
  ) {
    super(message);
    this.name = 'StateDirBusyError';
  }
}

export interface StateDirLock {
  file: string;
  release(): void;
}

/** The pid in the state dir's pid file when that process still runs (a node process), else null. */
export async function stateDirHolder(stateDir: string): Promise<number | null> {
  let lines: string[];
  try {
    lines = readFileSync(path.join(stateDir, LOCK_FILE_NAME), 'utf8').split('\n');
  } catch {
    return null;
  }
  const pid = Number(lines[0]!.trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  // The start tick, not the file's mtime: a clock step after it was written must never make the
  // live holder look like a stranger, which would put two node-mgrs on one state dir. A file of an
  // earlier version has no second line; then argv is the only evidence.
  const proof = /^(\d+) ([0-9a-f-]+)$/.exec(lines[1]?.trim() ?? '');
  if (proof) {
    if (proof[2] !== bootId()) return null;
    const ticks = await startTime(pid);
    if (ticks === null || String(ticks) !== proof[1]) return null;
  }
  return (await isExpectedProcess(pid, { argv: isNodeMgr })) ? pid : null;
}

/** This boot's id: a start tick counts from boot, so it names a process only within one boot. */
function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** A recycled pid that is not node (or node-mgr) is not the node-mgr that wrote the file. */
function isNodeMgr(argv: string[]): boolean {
  return argv.some((a) => a.includes('node-mgr')) || path.basename(argv[0] ?? '').startsWith('node');
}

/** Claims the state dir for this process, or throws StateDirBusyError naming the node-mgr that has it. */
export async function lockStateDir(stateDir: string): Promise<StateDirLock> {
  const file = path.join(stateDir, LOCK_FILE_NAME);
  for (let attempt = 0; attempt < 3; attempt++) {
    const record = `${process.pid}\n${(await startTime(process.pid)) ?? 0} ${bootId()}\n`;
    try {
      const fd = openSync(file, 'wx', 0o600);
      try {
        writeSync(fd, record);
      } finally {
        closeSync(fd);
      }
      return {
        file,
        release() {
          try {
            if (readFileSync(file, 'utf8').split('\n')[0]!.trim() === String(process.pid)) unlinkSync(file);
          } catch {
            // Already gone: nothing to release.
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot write the pid file ${file}: ${(err as Error).message}`);
      const holder = await stateDirHolder(stateDir);
      if (holder !== null && holder !== process.pid) {
        throw new StateDirBusyError(`another node-mgr (pid ${holder}) is using the state dir ${stateDir}: stop it first, or give this one its own stateDir`, holder);
      }
      // Left by a node-mgr that was killed: it no longer runs.
      try {
        unlinkSync(file);
      } catch {
        // Another starting node-mgr removed it first; the next attempt decides.
      }
    }
  }
  throw new Error(`could not claim ${file}: other node-mgr processes keep taking it`);
}

// One node-mgr per state dir. A second one on the same state would supervise the same servers:
// two restarts for one crash, two runners for one job id. The pid file also tells `node-mgr
// reload` whom to send SIGHUP.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { isExpectedProcess } from '../host/process-identity.ts';

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
  let pid: number;
  try {
    pid = Number(readFileSync(path.join(stateDir, LOCK_FILE_NAME), 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0) return null;
  // No start-time evidence from the file's mtime: a clock step after it was written must never make
  // the live holder look like a stranger, which would put two node-mgrs on one state dir.
  return (await isExpectedProcess(pid, { argv: isNodeMgr })) ? pid : null;
}

/** A recycled pid that is not node (or node-mgr) is not the node-mgr that wrote the file. */
function isNodeMgr(argv: string[]): boolean {
  return argv.some((a) => a.includes('node-mgr')) || path.basename(argv[0] ?? '').startsWith('node');
}

/** Claims the state dir for this process, or throws StateDirBusyError naming the node-mgr that has it. */
export async function lockStateDir(stateDir: string): Promise<StateDirLock> {
  const file = path.join(stateDir, LOCK_FILE_NAME);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return {
        file,
        release() {
          try {
            if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
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

// Whether a pid is the process node-mgr expects there: the one identity proof every adoption of a
// running server (mysqld, the postmaster, cluster_mgr) and the state-dir lock go through, so that
// all of them trust a pid on the same evidence (Patroni keeps its postmaster check in one place too).
//
// A pid alone names a process only until the kernel hands it out again. The proof is: the process
// runs (a zombie has exited), its argv is the expected program's, it works in the expected dir,
// and, where a record names the pid (a pidfile), the process started when that record says it
// did. Records written by the servers carry no /proc start tick, so their evidence is a time:
// the file's mtime (the writer had started by then), or the start time the server wrote into it.
import { cmdline, isAlive, startedAtMs, workingDir } from './process-info.ts';

/**
 * How far apart two readings of one start may be. A /proc start time is boot time (whole seconds
 * in /proc/stat) plus 10 ms ticks, so it can be off by up to a second; mtimes have their own
 * granularity. Beyond this, the record was written for an earlier process that had the same pid.
 */
const START_SLACK_MS = 2000;

/** What a record naming the pid says about when its process started. */
export type StartRecord =
  /** The record was written by (or for) the process once it ran: its mtime. */
  | { writtenAtMs: number }
  /** The process wrote its own start time into the record, in whole seconds (postmaster.pid line 3). */
  | { startedAtSec: number };

export interface ExpectedProcess {
  /** Whether argv is the expected program's, with the arguments that tie it to its node. */
  argv(argv: string[]): boolean;
  /** The dir the process works in, for programs that chdir into a known one (mariadbd and postgres into their data dir). */
  cwd?: string;
  /** The record that names the pid, when there is one. */
  record?: StartRecord;
}

/** True when pid is a running process that matches `expected` on every piece of evidence given. */
export async function isExpectedProcess(pid: number, expected: ExpectedProcess): Promise<boolean> {
  if (!(await isAlive(pid))) return false;
  const argv = await cmdline(pid);
  if (!argv || !expected.argv(argv)) return false;
  if (expected.cwd !== undefined) {
    // Unreadable (another user's process, under hardening) is no evidence either way.
    const cwd = await workingDir(pid);
    if (cwd !== null && cwd !== expected.cwd) return false;
  }
  return expected.record === undefined || (await startedAsRecorded(pid, expected.record));
}

/** The one start-time rule: the process started when the record says, within START_SLACK_MS. */
async function startedAsRecorded(pid: number, record: StartRecord): Promise<boolean> {
  const started = await startedAtMs(pid);
  if (started === null) return true; // gone since the alive check: no evidence against it
  // A time in whole seconds lies up to a second before the true start.
  if ('startedAtSec' in record) return Math.abs(started - record.startedAtSec * 1000) < START_SLACK_MS + 1000;
  return started <= record.writtenAtMs + START_SLACK_MS;
}

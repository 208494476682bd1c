// Nothing stays behind a stop: after a server exits, any process still in its process group, or
// still working in its data dir, is killed before the node counts as down.
import path from 'node:path';
import { pidsOwnedBy, runningProcessGroup, sendSignal, workingDir } from '../host/process-info.ts';

export interface Leftover {
  pid: number;
  why: 'process group' | 'data dir';
}

/**
 * Finds processes left by a server that was spawned as group leader `pgid` on `dataDir`, running
 * as `serverUid`. Only that user's processes are looked at (one stat of /proc/<pid> each), so a
 * scan stays cheap with many nodes exiting at once; an operator's shell that happens to sit in
 * the data dir is never a leftover.
 */
export async function findLeftovers(pgid: number, dataDir: string, serverUid: number): Promise<Leftover[]> {
  const root = path.resolve(dataDir);
  const verdicts = await Promise.all(
    (await pidsOwnedBy(serverUid)).map(async (pid): Promise<Leftover | null> => {
      if (pid === process.pid) return null;
      const group = await runningProcessGroup(pid);
      if (group === null) return null;
      if (group === pgid) return { pid, why: 'process group' };
      const cwd = await workingDir(pid);
      return cwd && (cwd === root || cwd.startsWith(`${root}/`)) ? { pid, why: 'data dir' } : null;
    }),
  );
  return verdicts.filter((v): v is Leftover => v !== null);
}

/** Kills what findLeftovers finds and returns it, so the caller can log the evidence. */
export async function reapLeftovers(pgid: number, dataDir: string, serverUid: number): Promise<Leftover[]> {
  const found = await findLeftovers(pgid, dataDir, serverUid);
  for (const l of found) sendSignal(l.pid, 'SIGKILL');
  return found;
}

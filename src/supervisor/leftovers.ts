// Nothing stays behind a stop: after a server exits, any process still in its process group, or
// still working in its data dir, is killed before the node counts as down.
import path from 'node:path';
import { liveProcessGroupNow, pidsOwnedBy, processGroupExists, sendSignal, workingDirNow } from '../host/process-info.ts';

export interface Leftover {
  pid: number;
  why: 'process group' | 'data dir';
}

/**
 * Finds processes left by a server that was spawned as group leader `pgid` on `dataDir`, running
 * as `serverUid`. Only that user's processes are looked at, and a process's stat is read only
 * while the group still has members (a dead mariadbd leaves none, and postgres backends live in
 * their own sessions, found by their working dir): the other processes are judged by their working dir alone, so the cost
 * follows the account's processes, not the host's; an operator's shell that happens to sit in
 * the data dir is never a leftover. Synchronous: it sits between a server's death and the node's
 * `crashed`, and a millisecond of blocking reads is cheaper than a fan-out on the thread pool of a
 * busy machine. A zombie is never a leftover: it has exited, and has no working dir.
 */
export function findLeftovers(pgid: number, dataDir: string, serverUid: number): Leftover[] {
  const root = path.resolve(dataDir);
  const groupLeft = processGroupExists(pgid);
  const found: Leftover[] = [];
  for (const pid of pidsOwnedBy(serverUid)) {
    if (pid === process.pid) continue;
    if (groupLeft) {
      const pgrp = liveProcessGroupNow(pid);
      if (pgrp === null) continue;
      if (pgrp === pgid) {
        found.push({ pid, why: 'process group' });
        continue;
      }
    }
    const cwd = workingDirNow(pid);
    if (cwd && (cwd === root || cwd.startsWith(`${root}/`))) found.push({ pid, why: 'data dir' });
  }
  return found;
}

/** Kills what findLeftovers finds and returns it, so the caller can log the evidence. */
export function reapLeftovers(pgid: number, dataDir: string, serverUid: number): Leftover[] {
  const found = findLeftovers(pgid, dataDir, serverUid);
  for (const l of found) sendSignal(l.pid, 'SIGKILL');
  return found;
}

// Nothing stays behind a stop: after a server exits, any process still in its process group, or
// still working in its data dir, is killed before the node counts as down.
import path from 'node:path';
import { runningProcessesOf, sendSignal } from '../host/process-info.ts';

export interface Leftover {
  pid: number;
  why: 'process group' | 'data dir';
}

/**
 * Finds processes left by a server that was spawned as group leader `pgid` on `dataDir`, running
 * as `serverUid`. Only that user's processes are read at all, and only those outside the group
 * have their working dir looked up, so the cost follows the account's processes, not the host's;
 * an operator's shell that happens to sit in the data dir is never a leftover. Synchronous: it
 * sits between a server's death and the node's `crashed`, and a millisecond of blocking reads is
 * cheaper than a fan-out on the thread pool of a busy machine.
 */
export function findLeftovers(pgid: number, dataDir: string, serverUid: number): Leftover[] {
  const root = path.resolve(dataDir);
  const found: Leftover[] = [];
  for (const p of runningProcessesOf(serverUid)) {
    if (p.pid === process.pid) continue;
    if (p.pgrp === pgid) {
      found.push({ pid: p.pid, why: 'process group' });
      continue;
    }
    const cwd = p.cwd();
    if (cwd && (cwd === root || cwd.startsWith(`${root}/`))) found.push({ pid: p.pid, why: 'data dir' });
  }
  return found;
}

/** Kills what findLeftovers finds and returns it, so the caller can log the evidence. */
export function reapLeftovers(pgid: number, dataDir: string, serverUid: number): Leftover[] {
  const found = findLeftovers(pgid, dataDir, serverUid);
  for (const l of found) sendSignal(l.pid, 'SIGKILL');
  return found;
}

// Free-space check done before a start: a server started on a full disk only crash-loops.
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { existsSync } from 'node:fs';

export const MIN_FREE_BYTES = 64 * 1024 * 1024;

/** Throws a sentence when the filesystem holding dir has less than minFree bytes available. */
export async function checkDiskSpace(dir: string, minFree = MIN_FREE_BYTES): Promise<void> {
  let probe = dir;
  while (!existsSync(probe) && path.dirname(probe) !== probe) probe = path.dirname(probe);
  const fs = await statfs(probe);
  const free = fs.bavail * fs.bsize;
  if (free < minFree) {
    throw new Error(`disk full: only ${Math.round(free / 1024 / 1024)} MB free on the filesystem of ${dir}`);
  }
}

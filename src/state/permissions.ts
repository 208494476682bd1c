// The state dir holds node passwords (SQLite), uploaded install configs and dropped nodes' data:
// only node-mgr's own user may enter it, whatever an older version or the umask left behind.
import { chmodSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** Dirs of the state dir that must be 0700; every node-mgr.* file (SQLite, its WAL, the pid file) is made 0600. */
const PRIVATE_DIRS = new Set(['uploads', 'trash']);

/**
 * Creates the state dir 0700, and makes an existing one 0700 with its files 0600 (node-mgr's own,
 * never through links). A mode that is already right is left alone, and one that cannot be changed
 * (an immutable or read-only file) is returned as a warning: the state store's own checks then say
 * what is wrong with the state in one sentence, rather than a chmod stack trace.
 */
export function secureStateDir(stateDir: string): string[] {
  const warnings: string[] = [];
  const ensureMode = (file: string, mode: number, current: number) => {
    if ((current & 0o777) === mode) return;
    try {
      chmodSync(file, mode);
    } catch (err) {
      warnings.push(`cannot make ${file} ${mode.toString(8)} (it is ${(current & 0o777).toString(8)}): ${(err as Error).message}`);
    }
  };
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  ensureMode(stateDir, 0o700, lstatSync(stateDir).mode);
  for (const name of readdirSync(stateDir)) {
    const file = path.join(stateDir, name);
    const st = lstatSync(file);
    if (st.isFile() && name.startsWith('node-mgr.')) ensureMode(file, 0o600, st.mode);
    else if (st.isDirectory() && PRIVATE_DIRS.has(name)) ensureMode(file, 0o700, st.mode);
  }
  return warnings;
}

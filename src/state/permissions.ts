// The state dir holds node passwords (SQLite), uploaded install configs and dropped nodes' data:
// only node-mgr's own user may enter it, whatever an older version or the umask left behind.
import { chmodSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** Dirs of the state dir that must be 0700; every node-mgr.* file (SQLite, its WAL, the pid file) is made 0600. */
const PRIVATE_DIRS = new Set(['uploads', 'trash']);

/** Creates the state dir 0700, and makes an existing one 0700 with its files 0600 (node-mgr's own, never through links). */
export function secureStateDir(stateDir: string): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  chmodSync(stateDir, 0o700);
  for (const name of readdirSync(stateDir)) {
    const file = path.join(stateDir, name);
    const st = lstatSync(file);
    if (st.isFile() && name.startsWith('node-mgr.')) chmodSync(file, 0o600);
    else if (st.isDirectory() && PRIVATE_DIRS.has(name)) chmodSync(file, 0o700);
  }
}

// The OS account the database processes run as: looked up in /etc/passwd, its groups from
// /etc/group, and whether it can reach a path (node-mgr runs as root, for whom access() always
// succeeds, so the mode bits are checked by hand).
import { readFileSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';

/** The OS identity database processes run as. */
export interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

/** Looks the OS user up in /etc/passwd (the database processes run as it). */
export function lookupRunAs(name: string, passwd = '/etc/passwd'): RunAs {
  return parseRunAs(name, readPasswd(passwd), passwd);
}

function readPasswd(file: string): string {
  try {
    // Synchronous on purpose: this runs once at startup, before anything else can happen.
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file} to look up the runAs user: ${(err as Error).message}`);
  }
}

/** Parses passwd text; exported for tests. */
export function parseRunAs(name: string, passwdText: string, source = '/etc/passwd'): RunAs {
  for (const line of passwdText.split('\n')) {
    const f = line.split(':');
    if (f.length >= 4 && f[0] === name) return { name, uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(
    `runAs user '${name}' does not exist in ${source}: create it (e.g. \`useradd --system --no-create-home ${name}\`) or set runAs in the config`,
  );
}

let groupFile: { version: string; text: string } | null = null;

/**
 * /etc/group's text, read again only when its inode, size or mtime changed: every file node-mgr
 * opens below a node dir asks for the account's groups (assertAncestorsSafe), several times per
 * restart, and a change to the file (usermod, groupadd: a new file renamed into place) still
 * counts from the next call. Null when there is no such file.
 */
function groupFileText(): string | null {
  try {
    const st = statSync('/etc/group');
    const version = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (groupFile?.version !== version) groupFile = { version, text: readFileSync('/etc/group', 'utf8') };
    return groupFile.text;
  } catch {
    return null;
  }
}

/** Supplementary and primary groups of a user, from /etc/group. */
export async function groupsOf(runAs: RunAs): Promise<Set<number>> {
  const groups = new Set([runAs.gid]);
  // No /etc/group: the primary group is all we know.
  for (const line of (groupFileText() ?? '').split('\n')) {
    const f = line.split(':');
    if (f.length >= 4 && f[3].split(',').includes(runAs.name)) groups.add(Number(f[2]));
  }
  return groups;
}

/**
 * Throws a sentence naming the first existing ancestor of `target` that runAs cannot enter.
 * We run as root, for whom access() always succeeds, so the mode bits are checked by hand.
 */
export async function assertTraversable(target: string, runAs: RunAs): Promise<void> {
  const groups = await groupsOf(runAs);
  const ancestors: string[] = [];
  for (let p = path.dirname(path.resolve(target)); ; p = path.dirname(p)) {
    ancestors.unshift(p);
    if (p === path.dirname(p)) break;
  }
  for (const dir of ancestors) {
    let st;
    try {
      st = await stat(dir);
    } catch {
      return; // Not created yet: we create it below, owned by runAs.
    }
    const bit = st.uid === runAs.uid ? 0o100 : groups.has(st.gid) ? 0o010 : 0o001;
    if (runAs.uid !== 0 && (st.mode & bit) === 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new Error(
        `${dir} (mode ${mode}, owner uid ${st.uid}) cannot be traversed by the runAs user ${runAs.name}: ` +
          `the server could not reach ${target}; chmod o+x ${dir} or choose another node dir`,
      );
    }
  }
}

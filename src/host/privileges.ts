// Running without root: node-mgr and the databases share one OS account, so there is no privilege
// boundary to defend (as with the original node_mgr and Patroni). A run started as root that needs
// no root (the demo) hands its directory to that account and becomes it before opening anything.
import { mkdirSync } from 'node:fs';
import { execa } from 'execa';
import { assertTraversable, groupsOf, lookupRunAs, type RunAs } from './run-as.ts';

/**
 * When running as root: makes `dir` (and everything already in it, links themselves and never
 * their targets) the account's, then switches this process to the account (groups, gid, uid).
 * Returns the account, or null when node-mgr is not root (nothing to drop).
 */
export async function becomeServiceAccount(accountName: string, dir: string): Promise<RunAs | null> {
  if (process.getuid?.() !== 0) return null;
  const account = lookupRunAs(accountName);
  if (account.uid === 0) return null;
  await assertTraversable(dir, account);
  mkdirSync(dir, { recursive: true });
  // -h -P: a link in the dir is chowned itself, never followed (the account could have made it).
  const chown = await execa('chown', ['-R', '-h', '-P', '--', `${account.uid}:${account.gid}`, dir], { reject: false, all: true });
  if (chown.failed) throw new Error(`cannot hand ${dir} to ${account.name}: ${(chown.all ?? '').trim()}`);
  // Groups first, uid last: once the uid is the account's, the others can no longer be changed.
  if (!process.setgroups || !process.setgid || !process.setuid) throw new Error('this platform cannot change the process user');
  process.setgroups([...(await groupsOf(account))]);
  process.setgid(account.gid);
  process.setuid(account.uid);
  return account;
}

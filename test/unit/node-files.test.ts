// Node-dir file handling against what the servers' account can plant: links, hard links, fifos,
// and a parent directory it could swap. Real files owned by the real runAs account (as root).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  assertAncestorsSafe,
  copyTruncateNodeLog,
  openNodeLogForAppend,
  readNodeLogTail,
  readNodePidFile,
  writeNodeFile,
  type NodeDirs,
} from '../../src/engines/node-files.ts';
import { lookupRunAs } from '../../src/host/run-as.ts';
import { removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';

const runAs = lookupRunAs(TEST_RUN_AS);
after(removeTempDirs);

/** A node dir owned by the account, with log/ and run/, and a root-only secret file next to it. */
async function layout(): Promise<{ node: NodeDirs; secret: string }> {
  const dir = await tempNodeDir('node');
  for (const d of [dir, path.join(dir, 'log'), path.join(dir, 'run')]) {
    mkdirSync(d, { recursive: true });
    chownSync(d, runAs.uid, runAs.gid);
  }
  const secret = path.join(path.dirname(dir), 'secret');
  writeFileSync(secret, 'TOP SECRET\n', { mode: 0o600 });
  return { node: { id: 'mysql-1', dir, dataDir: path.join(dir, 'data'), runAs }, secret };
}

const state = (file: string) => {
  const st = lstatSync(file);
  return `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)} ${readFileSync(file, 'utf8')}`;
};

describe('node-dir files (node-mgr as root, the account hostile)', () => {
  it('never reads a log tail or pid file through a link or a hard link to a root file', async () => {
    const { node, secret } = await layout();
    symlinkSync(secret, path.join(node.dir, 'log', 'server.log'));
    linkSync(secret, path.join(node.dir, 'log', 'error.log'));
    symlinkSync(secret, path.join(node.dir, 'run', 'x.pid'));
    assert.deepEqual(await readNodeLogTail(node, path.join(node.dir, 'log', 'server.log'), 10), []);
    assert.deepEqual(await readNodeLogTail(node, path.join(node.dir, 'log', 'error.log'), 10), []);
    assert.equal(await readNodePidFile(node, path.join(node.dir, 'run', 'x.pid')), null);
  });

  it('replaces a link or a fifo where a log goes by a new file of the account, leaving the target as it was', async () => {
    const { node, secret } = await layout();
    const before = state(secret);
    symlinkSync(secret, path.join(node.dir, 'log', 'server.log'));
    execFileSync('mkfifo', [path.join(node.dir, 'log', 'other.log')]);
    for (const name of ['server.log', 'other.log']) {
      const h = await openNodeLogForAppend(node, path.join(node.dir, 'log', name), runAs);
      await h.write('hello\n');
      await h.close();
      const st = lstatSync(path.join(node.dir, 'log', name));
      assert.ok(st.isFile(), name);
      assert.equal(st.uid, runAs.uid);
    }
    assert.equal(state(secret), before);
  });

  it('writes a file by rename: a link in its place is replaced, not written through', async () => {
    const { node, secret } = await layout();
    const before = state(secret);
    symlinkSync(secret, path.join(node.dir, 'my.cnf'));
    await writeNodeFile(node, path.join(node.dir, 'my.cnf'), '[mariadbd]\n', { mode: 0o644 });
    assert.equal(readFileSync(path.join(node.dir, 'my.cnf'), 'utf8'), '[mariadbd]\n');
    assert.equal(state(secret), before);
  });

  it('refuses to go through a directory the account replaced by a link', async () => {
    const { node, secret } = await layout();
    execFileSync('rm', ['-r', path.join(node.dir, 'run')]);
    symlinkSync(path.dirname(secret), path.join(node.dir, 'run'));
    await assert.rejects(writeNodeFile(node, path.join(node.dir, 'run', 'secret'), 'x', { mode: 0o644 }), /symbolic link.*remove it/);
    assert.equal(readFileSync(secret, 'utf8'), 'TOP SECRET\n');
  });

  it('does not rotate a hard link to a root file', async () => {
    const { node, secret } = await layout();
    writeFileSync(secret, 'x'.repeat(5000), { mode: 0o600 });
    const before = state(secret);
    linkSync(secret, path.join(node.dir, 'log', 'server.log'));
    assert.equal(await copyTruncateNodeLog(node, path.join(node.dir, 'log', 'server.log'), 10, 2), false);
    assert.equal(state(secret), before);
  });

  it('refuses a node dir whose parent the account could change, with a sentence saying how to fix it', async () => {
    const { node } = await layout();
    const parent = path.join(path.dirname(node.dir), 'owned-by-account');
    mkdirSync(parent);
    chownSync(parent, runAs.uid, runAs.gid);
    await assert.rejects(assertAncestorsSafe(path.join(parent, 'node'), runAs), (err: Error) => {
      assert.match(err.message, new RegExp(`${parent} .*can be changed by the servers' account ${runAs.name}`));
      assert.match(err.message, /chown root .*chmod go-w/);
      return true;
    });
    // A world-writable sticky dir (/tmp) is fine for a child that the account does not own.
    const sticky = path.join(path.dirname(node.dir), 'sticky');
    mkdirSync(path.join(sticky, 'rootowned'), { recursive: true });
    chmodSync(sticky, 0o1777);
    await assertAncestorsSafe(path.join(sticky, 'rootowned', 'node'), runAs);
  });
});

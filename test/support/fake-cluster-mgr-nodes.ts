// Config entries for light supervised processes: test/support/fake-cluster-mgr.mjs run as nodes of
// kind cluster_mgr (an HTTP /health answer, a pidfile, exit 0 on SIGTERM). Tens of them fit on a
// test machine where tens of MariaDB servers would not.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const FAKE_CLUSTER_MGR = fileURLToPath(new URL('./fake-cluster-mgr.mjs', import.meta.url));

export function fakeClusterMgrEntry(root: string, port: number): Record<string, unknown> {
  const dir = path.join(root, `cm-${port}`);
  const pidFile = path.join(dir, 'run', 'fake.pid');
  return {
    kind: 'cluster_mgr',
    role: 'cluster_mgr',
    port,
    dir,
    command: [process.execPath, FAKE_CLUSTER_MGR, '--port', String(port), '--pidfile', pidFile],
    pidFile,
    healthUrl: `http://127.0.0.1:${port}/health`,
  };
}

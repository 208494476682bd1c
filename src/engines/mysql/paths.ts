// Where a MySQL node keeps its files: what the engine writes, and what the backup tools and
// table jobs need to find.
import path from 'node:path';
import type { NodeSpec } from '../node-spec.ts';

/** Layout of a MySQL node dir. */
export function mysqlPaths(spec: NodeSpec) {
  return {
    cnf: path.join(spec.dir, 'my.cnf'),
    tmpDir: path.join(spec.dir, 'tmp'),
    /**
     * The server's secure_file_priv: the one dir where SELECT … INTO OUTFILE, LOAD DATA INFILE and
     * LOAD_FILE() reach, so a login with FILE cannot write into node-mgr's state dir or a data dir.
     */
    filesDir: path.join(spec.dir, 'files'),
    socket: path.join(spec.runDir, 'mysqld.sock'),
    pidFile: path.join(spec.runDir, 'mysqld.pid'),
    errorLog: path.join(spec.logDir, 'error.log'),
  };
}

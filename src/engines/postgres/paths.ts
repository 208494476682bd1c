// Where a PostgreSQL node keeps its files and finds its programs: what the engine writes, and
// what the backup tools need to find.
import path from 'node:path';
import type { NodeSpec } from '../node-spec.ts';

/** Settings node-mgr generates from serverOptions, included from postgresql.conf. */
export const OPTIONS_FILE = 'node-mgr.conf';

export function postgresPaths(spec: NodeSpec) {
  return {
    bin: (program: string) => path.join(spec.binaries.postgresBinDir, program),
    postmasterPid: path.join(spec.dataDir, 'postmaster.pid'),
    socket: path.join(spec.runDir, `.s.PGSQL.${spec.port}`),
    optionsFile: path.join(spec.dataDir, OPTIONS_FILE),
    mainConf: path.join(spec.dataDir, 'postgresql.conf'),
    hba: path.join(spec.dataDir, 'pg_hba.conf'),
  };
}

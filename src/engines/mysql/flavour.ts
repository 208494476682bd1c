// The two MySQL-protocol flavours node-mgr runs, MariaDB and MySQL 8: everything in which they
// differ (config section, program names, init tool, backup tools) and nothing else.
import type { NodeSpec } from '../node-spec.ts';

type FlavourName = NodeSpec['binaries']['mysqlFlavor'];

interface Flavour {
  /** my.cnf section the server reads. */
  section: string;
  /** argv0 basenames a server of this flavour runs under. */
  serverPrograms: string[];
  /** Initialises the empty data dir as runAs and runs initSqlFile once, before any server listens. */
  install(spec: NodeSpec, cnf: string, initSqlFile: string): { file: string; args: string[] };
  /** Statements the init SQL starts with. */
  initPreamble: string[];
  /** Hot physical backup and its stream unpacker, for the backup jobs. */
  backupProgram: string;
  streamUnpackProgram: string;
}

const FLAVOURS: Record<FlavourName, Flavour> = {
  mariadb: {
    section: 'mariadbd',
    serverPrograms: ['mariadbd', 'mysqld'],
    // `normal` root authentication: the default (unix_socket) refuses TCP logins from 127.0.0.1 (error 1130).
    install: (spec, cnf, sql) => ({
      file: spec.binaries.mysqlInstallDb,
      args: [
        `--defaults-file=${cnf}`,
        `--basedir=${spec.binaries.mysqlBaseDir}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        `--extra-file=${sql}`,
      ],
    }),
    // --extra-file runs in bootstrap mode, where the grant tables are not loaded yet: account
    // statements fail until FLUSH PRIVILEGES loads them.
    initPreamble: ['FLUSH PRIVILEGES'],
    backupProgram: 'mariabackup',
    streamUnpackProgram: 'mbstream',
  },
  mysql8: {
    section: 'mysqld',
    serverPrograms: ['mysqld'],
    // --init-file runs after --initialize has created the grant tables.
    install: (spec, cnf, sql) => ({
      file: spec.binaries.mysqld,
      args: [`--defaults-file=${cnf}`, '--initialize-insecure', `--init-file=${sql}`],
    }),
    initPreamble: [],
    backupProgram: 'xtrabackup',
    streamUnpackProgram: 'xbstream',
  },
};

export function mysqlFlavour(spec: NodeSpec): Flavour {
  return FLAVOURS[spec.binaries.mysqlFlavor];
}

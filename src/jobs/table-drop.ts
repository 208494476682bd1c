// `delete` + `file_type:"table"`: DROP TABLE on a local storage node, with the caller's credentials.
import type { NodeSpec } from '../engines/node-spec.ts';
import { closeSession, ER, errno, openSession, type Credentials } from './node-sql.ts';
import { checkIdentifier, kunlunDatabaseName, qualifiedTable } from './sql-names.ts';

export interface DropTableRequest {
  database: string;
  table: string;
  creds: Credentials;
}

export interface DropTableResult {
  node: string;
  database: string;
  table: string;
  dropped: true;
}

/** Drops the table; an unknown table (or database) is an error that says so, never a quiet success. */
export async function dropTable(node: NodeSpec, req: DropTableRequest): Promise<DropTableResult> {
  const database = kunlunDatabaseName(req.database);
  const table = checkIdentifier(req.table, 'table name');
  const name = qualifiedTable(database, table);
  const conn = await openSession(node, req.creds, 'DROP TABLE');
  try {
    await conn.query(`DROP TABLE ${name}`);
  } catch (err) {
    if (errno(err) === ER.BAD_TABLE) throw new Error(`table ${name} does not exist on ${node.id}; nothing was dropped`);
    throw new Error(`DROP TABLE ${name} on ${node.id} failed: ${(err as Error).message}`);
  } finally {
    await closeSession(conn);
  }
  return { node: node.id, database, table, dropped: true };
}

// Ending a MySQL/MariaDB client connection the polite way. destroy() just closes the socket: the
// server counts that in Aborted_clients and writes "Aborted connection … (Got an error reading
// communication packets)" to its error log, every probe. end() sends COM_QUIT first.
import type { Connection } from 'mysql2/promise';

/**
 * COM_QUIT and wait for the server to close; destroy() when that fails (the connection is already
 * broken) or takes longer than timeoutMs (a server that no longer answers). Never throws.
 */
export async function endConnection(conn: Pick<Connection, 'end' | 'destroy'>, timeoutMs = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      conn.end(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('no close within the timeout')), timeoutMs);
      }),
    ]);
  } catch {
    conn.destroy();
  } finally {
    clearTimeout(timer);
  }
}

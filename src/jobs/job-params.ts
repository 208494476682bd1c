// The field types that job parameter schemas share. Each job kind declares its parameters as a zod
// schema beside its handler (the handler's type is inferred from it); the HTTP faces compose those
// schemas into their request bodies, so a field is checked the same way wherever a job comes from.
import { z } from 'zod';

/** A string of at most `max` characters: every string a job takes is bounded. */
export const text = (max = 256) => z.string().max(max);

export const portNumber = z.number().int().min(1).max(65535);

/**
 * The seed's way to say which node a job works on and with which login: the node is the one on
 * s_port (the edge resolves it into the job's nodeId), s_ip must be this host's, and the job logs in
 * as s_user/s_pwd.
 */
export const sourceLogin = {
  s_ip: text(64),
  s_port: portNumber,
  s_user: text(),
  s_pwd: text(),
};

/** A table of a source node, by Kunlun's database name (PROTOCOL §6.5). */
export const sourceTable = {
  s_dbname: text(192),
  s_table_name: text(192),
};

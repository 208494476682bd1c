// The seed's install configs (PROTOCOL §10), turned into node entries that CREATE can use.
import path from 'node:path';
import { z } from 'zod';
import type { NodeEntry } from '../config/schema.ts';
import { checkApiServerOptions, ServerOptionError } from '../engines/server-options.ts';
import { localAddresses } from '../host/address.ts';
import type { KindedError } from '../error-kind.ts';

const mysqlShardConfigSchema = z.object({
  cluster_name: z.string().optional(),
  shard_name: z.string().optional(),
  innodb_size: z.union([z.number(), z.string()]).optional(),
  nodes: z
    .array(
      z.object({
        is_primary: z.boolean().optional(),
        ip: z.string(),
        port: z.number().int().min(1).max(65535),
        xport: z.number().int().optional(),
        mgr_port: z.number().int().optional(),
        data_dir_path: z.string().min(1),
        log_dir_path: z.string().optional(),
        innodb_log_dir_path: z.string().optional(),
        innodb_buffer_pool_size: z.string().optional(),
        user: z.string().optional(),
        election_weight: z.number().optional(),
      }),
    )
    .min(1),
});

const NO_CONTROL_CHARS = /^[^\x00-\x1f\x7f]*$/;

const pgCompConfigSchema = z
  .array(
    z.object({
      id: z.number().int(),
      name: z.string().optional(),
      ip: z.string(),
      port: z.number().int().min(1).max(65535),
      // No line breaks or control characters: they end statements in the single-user-mode init (engines/postgres/engine.ts).
      user: z.string().regex(NO_CONTROL_CHARS, 'must not contain line breaks or control characters').optional(),
      password: z.string().regex(NO_CONTROL_CHARS, 'must not contain line breaks or control characters').optional(),
      datadir: z.string().min(1),
    }),
  )
  .min(1);

export class InstallConfigError extends Error implements KindedError {
  readonly kind = 'invalid';
  constructor(message: string) {
    super(message);
    this.name = 'InstallConfigError';
  }
}

export interface InstallDefaults {
  nodesDir: string;
  user: string;
  password: string;
  localAddresses?: string[];
}

export type Selection = { index: number } | { ids: number[] };

function parse<T>(schema: z.ZodType<T>, text: string, file: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InstallConfigError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const first = r.error.issues[0]!;
    throw new InstallConfigError(`${file} is invalid at ${first.path.join('.') || '(top level)'}: ${first.message}`);
  }
  return r.data;
}

/** The node's own directory; data lives in <dir>/data. Relative paths go under nodesDir. */
function nodeDir(given: string, port: number, nodesDir: string): string {
  const abs = path.resolve(nodesDir, given);
  return path.basename(abs) === String(port) ? abs : path.join(abs, String(port));
}

function requireLocal(ip: string, what: string, defaults: InstallDefaults): void {
  if (!(defaults.localAddresses ?? localAddresses()).includes(ip)) {
    throw new InstallConfigError(`${what} is on ${ip}, which is not an address of this host`);
  }
}

/** `mysql_shard1.json` + `--target_node_index=N` → the storage (or meta) node to create here. */
export function mysqlEntries(text: string, file: string, select: Selection, defaults: InstallDefaults): NodeEntry[] {
  const cfg = parse(mysqlShardConfigSchema, text, file);
  if (!('index' in select)) throw new InstallConfigError(`${file}: mysql installs select a node with --target_node_index`);
  const node = cfg.nodes[select.index];
  if (!node) throw new InstallConfigError(`${file} has no node at index ${select.index} (it has ${cfg.nodes.length})`);
  requireLocal(node.ip, `node ${select.index} of ${file}`, defaults);
  const isMeta = cfg.cluster_name === 'meta' || cfg.shard_name === 'meta';
  // The uploaded file comes from the network: its options pass the same allow-list as POST /v1/nodes.
  let serverOptions: NodeEntry['serverOptions'] = {};
  if (node.innodb_buffer_pool_size) {
    try {
      serverOptions = checkApiServerOptions('mysql', { innodb_buffer_pool_size: node.innodb_buffer_pool_size.replace(/B$/i, '') });
    } catch (err) {
      if (err instanceof ServerOptionError) throw new InstallConfigError(`${file} is invalid at nodes.${select.index}.innodb_buffer_pool_size: ${err.message}`);
      throw err;
    }
  }
  return [
    {
      kind: 'mysql',
      role: isMeta ? 'meta' : 'storage',
      port: node.port,
      ip: node.ip,
      dir: nodeDir(node.data_dir_path, node.port, defaults.nodesDir),
      cluster: cfg.cluster_name,
      shard: cfg.shard_name,
      user: defaults.user,
      password: defaults.password,
      serverOptions,
    },
  ];
}

/** `postgresql_comp.json` + `--install_ids=1,2` → the computing nodes to create here. */
export function pgEntries(text: string, file: string, select: Selection, defaults: InstallDefaults): NodeEntry[] {
  const cfg = parse(pgCompConfigSchema, text, file);
  const picked = 'ids' in select ? select.ids.map((id) => cfg.find((c) => c.id === id) ?? id) : [cfg[select.index] ?? select.index];
  return picked.map((c) => {
    if (typeof c === 'number') throw new InstallConfigError(`${file} has no computing node ${'ids' in select ? `with id ${c}` : `at index ${c}`}`);
    requireLocal(c.ip, `computing node ${c.id} of ${file}`, defaults);
    return {
      kind: 'postgres' as const,
      role: 'computer' as const,
      port: c.port,
      ip: c.ip,
      dir: nodeDir(c.datadir, c.port, defaults.nodesDir),
      user: c.user ?? defaults.user,
      password: c.password ?? defaults.password,
      serverOptions: {},
    };
  });
}

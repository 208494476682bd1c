// The table job types of PROTOCOL §3: `delete` (file_type table: DROP TABLE; binlog: purge) and
// `send` (table transfer). The legacy edge has parsed the request and resolved the source node by
// s_port into the job's nodeId; here the node must also be a MySQL node and s_ip this host's.
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import type { Config } from '../config/schema.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import type { Supervisor } from '../supervisor/supervisor.ts';
import type { JobContext } from './job.ts';
import { sourceLogin, sourceTable, text } from './job-params.ts';
import type { JobRunner } from './runner.ts';
import { purgeBinlogs } from './binlog-purge.ts';
import { archiveDirOf, notArchived } from './binlog-archiving.ts';
import { readBinlogArchive } from '../backup/binlog-archive.ts';
import { storeNamed } from '../backup/index.ts';
import { newestVerifiedBackupBinlog } from '../backup/catalog.ts';
import { isLocalAddress } from './node-sql.ts';
import { dropTable } from './table-drop.ts';
import { TableImports } from './table-import.ts';
import { TableTransfer, type SendParams } from './table-transfer.ts';

/** `delete` + `file_type:"table"`: which table to drop. */
export const dropTableParams = z.object({ file_type: z.literal('table'), ...sourceLogin, ...sourceTable });

/** `delete` + `file_type:"binlog"`: how far to purge (`to` a binlog name, `before` an ISO time), or only say what would go. */
export const purgeBinlogsParams = z.object({
  file_type: z.literal('binlog'),
  ...sourceLogin,
  to: text(512).optional(),
  before: text(64).optional(),
  dry_run: z.boolean().optional(),
});

/** The two kinds of `delete`, told apart by file_type. */
export type DeleteParams = z.infer<typeof dropTableParams> | z.infer<typeof purgeBinlogsParams>;

const importsBySupervisor = new WeakMap<Supervisor, TableImports>();

/**
 * The one destination-side service of a node-mgr: the job handlers and the `recv` route must share
 * it, since it knows which imports run and which a previous node-mgr left to undo.
 */
export function tableImportsFor(config: Config, supervisor: Supervisor, log?: Logger): TableImports {
  let imports = importsBySupervisor.get(supervisor);
  if (!imports) {
    imports = new TableImports(config, supervisor, log ?? pino({ name: 'node-mgr' }).child({ component: 'table-transfer' }));
    importsBySupervisor.set(supervisor, imports);
  }
  return imports;
}

/** The job's source node: a MySQL node of this host, named by a local s_ip. */
function sourceNode(ctx: JobContext, supervisor: Supervisor, sIp: string): NodeSpec {
  const spec = ctx.nodeId ? supervisor.spec(ctx.nodeId) : undefined;
  if (!spec) throw new Error(`the job's node ${ctx.nodeId ?? '(none)'} is not supervised here`);
  if (spec.kind !== 'mysql') throw new Error(`${spec.id} is a ${spec.kind} node; this job works on MySQL storage nodes`);
  if (!isLocalAddress(sIp)) throw new Error(`s_ip ${sIp} is not an address of this host; the job runs on the node's own host`);
  return spec;
}

export function registerTableJobs(jobs: JobRunner, config: Config, supervisor: Supervisor): void {
  const log = pino({ name: 'node-mgr' }).child({ component: 'table-jobs' });
  const imports = tableImportsFor(config, supervisor, log);
  // Imports a killed node-mgr left half-done are undone as soon as their nodes run again.
  imports.startRecovery();
  const transfer = new TableTransfer(config, supervisor, imports);

  jobs.register('delete', async (ctx: JobContext<DeleteParams>) => {
    const req = ctx.params;
    const node = sourceNode(ctx, supervisor, req.s_ip);
    const creds = { user: req.s_user, password: req.s_pwd };
    if (req.file_type === 'table') {
      ctx.progress({ phase: 'dropping' });
      return dropTable(node, { database: req.s_dbname, table: req.s_table_name, creds });
    }
    ctx.progress({ phase: req.dry_run ? 'planning' : 'purging' });
    return purgeBinlogs(node, { creds, to: req.to, before: req.before, dryRun: req.dry_run }, {
      supervisor,
      log: ctx.log,
      newestBackupBinlog: () => newestVerifiedBackupBinlog(config, null, node),
      binlogArchive: async () => {
        if (notArchived(config, node) !== null) return null;
        const store = storeNamed(config);
        const dir = archiveDirOf(node);
        const index = await readBinlogArchive(store, dir);
        return { where: `${store.name}:${dir}`, files: new Set(index.entries.map((e) => e.file)), retiredThrough: index.retiredThrough };
      },
    });
  });

  // The transfer checks its source node and s_ip itself, as the first step of its preflight.
  jobs.register('send', (ctx: JobContext<SendParams>) => transfer.run(ctx, ctx.params));
}

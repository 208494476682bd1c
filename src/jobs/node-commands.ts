// `mysql_cmd` / `pgsql_cmd` / `cluster_cmd` jobs: a recognised command becomes an event for the
// node's actor (PROTOCOL §5). The command is planned once, when it is submitted, so that a bad one
// is refused with a 4xx before a job exists; the job then carries out that plan.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import type { Config, NodeEntry } from '../config/schema.ts';
import type { JobRecord } from '../state/store.ts';
import { mysqlEntries, pgEntries, type Selection } from './install-configs.ts';
import { NodeCommandError, type Supervisor } from '../supervisor/supervisor.ts';
import { parseCommand, CommandError, type CommandJobType } from './command.ts';
import type { JobContext } from './job.ts';
import { text } from './job-params.ts';
import type { JobRunner } from './runner.ts';

/** The command line a caller sends (`./stopmysql.sh 6007`); never run by a shell. */
export const commandParams = z.object({ cmd: text(4096) });
export type CommandParams = z.infer<typeof commandParams>;

export type CommandPlan =
  | { kind: 'event'; event: 'START' | 'STOP' | 'RESTART'; nodeId: string }
  | { kind: 'create'; entries: NodeEntry[] }
  | { kind: 'drop'; nodeIds: string[] }
  | { kind: 'program'; program: string; args: string[]; cwd: string };

const KIND_OF: Record<CommandJobType, 'mysql' | 'postgres' | 'cluster_mgr'> = {
  mysql_cmd: 'mysql',
  pgsql_cmd: 'postgres',
  cluster_cmd: 'cluster_mgr',
};

const UPLOAD_TYPE_OF: Record<CommandJobType, string> = { mysql_cmd: 'mysql', pgsql_cmd: 'pgsql', cluster_cmd: 'cluster' };

/** Where an uploaded file of this job type lives (PROTOCOL §7). */
export function uploadDirFor(config: Config, fileType: string): string {
  return path.join(config.uploadDir!, fileType);
}

/** Resolves `--config=./mysql_shard1.json` to the uploaded file: base name only, never a path out of the upload dir. */
function uploadedConfig(config: Config, jobType: CommandJobType, given: string): string {
  const name = given.replace(/^\.\//, '');
  if (!name || name.includes('/') || name.includes('\0') || name === '..' || name === '.') {
    throw new CommandError(`--config must name an uploaded file by its base name, not "${given}"`);
  }
  const file = path.join(uploadDirFor(config, UPLOAD_TYPE_OF[jobType]), name);
  if (!existsSync(file)) throw new CommandError(`install config ${name} has not been uploaded (file_type ${UPLOAD_TYPE_OF[jobType]})`);
  return file;
}

/** Plans a `*_cmd` request against the current nodes; throws a 4xx-worthy error when it cannot be done. */
async function planCommand(jobType: CommandJobType, cmd: string, config: Config, supervisor: Supervisor): Promise<CommandPlan> {
  const parsed = parseCommand(jobType, cmd, config.commandAllowList);
  const kind = KIND_OF[jobType];
  switch (parsed.action) {
    case 'START':
    case 'STOP':
    case 'RESTART': {
      const node = supervisor.byPort(parsed.port);
      if (!node || node.kind !== kind) throw new NodeCommandError(`no ${kind} node on port ${parsed.port} on this host`, 'not_found');
      return { kind: 'event', event: parsed.action, nodeId: node.id };
    }
    case 'CLUSTER_MGR': {
      const node = supervisor.list().find((n) => n.kind === 'cluster_mgr');
      if (!node) throw new NodeCommandError('no cluster_mgr node is configured on this host', 'not_found');
      return { kind: 'event', event: parsed.verb, nodeId: node.id };
    }
    case 'CREATE':
    case 'DROP': {
      const file = uploadedConfig(config, jobType, parsed.configFile);
      const text = await readFile(file, 'utf8');
      const defaults = { nodesDir: config.nodesDir, ...config.createDefaults };
      const entries = kind === 'mysql' ? mysqlEntries(text, path.basename(file), parsed.select as Selection, defaults) : pgEntries(text, path.basename(file), parsed.select as Selection, defaults);
      if (parsed.action === 'CREATE') {
        for (const e of entries) {
          const existing = supervisor.byPort(e.port);
          if (existing) throw new NodeCommandError(`a node already exists on port ${e.port} (${existing.id}, ${existing.state})`, 'conflict');
        }
        return { kind: 'create', entries };
      }
      const nodeIds = entries.map((e) => {
        const node = supervisor.byPort(e.port);
        if (!node) throw new NodeCommandError(`no node on port ${e.port} on this host`, 'not_found');
        return node.id;
      });
      return { kind: 'drop', nodeIds };
    }
    case 'ALLOWED':
      return { kind: 'program', program: parsed.program, args: parsed.args, cwd: uploadDirFor(config, UPLOAD_TYPE_OF[jobType]) };
  }
}

/** The node a plan acts on, for the job runner's per-node serialisation. */
function planNodeId(plan: CommandPlan): string | undefined {
  if (plan.kind === 'event') return plan.nodeId;
  if (plan.kind === 'drop') return plan.nodeIds[0];
  if (plan.kind === 'create') return `${plan.entries[0]!.kind}-${plan.entries[0]!.port}`;
  return undefined;
}

/**
 * Plans a `*_cmd` request and submits it as a job that carries the plan out; throws (a 4xx) when it
 * cannot be planned. `params` are what the job record keeps (and what an idempotent repeat is
 * compared by): the caller's whole request.
 */
export async function submitCommandJob(
  jobs: JobRunner,
  config: Config,
  supervisor: Supervisor,
  submission: { id?: string; type: CommandJobType; params: CommandParams },
): Promise<{ job: JobRecord; created: boolean }> {
  // An idempotent repeat must not be re-planned against the state the first run changed.
  const existing = submission.id ? jobs.get(submission.id) : undefined;
  if (existing) return jobs.submit({ ...submission, nodeId: existing.nodeId ?? undefined });
  const plan = await planCommand(submission.type, submission.params.cmd, config, supervisor);
  return jobs.submit({ ...submission, plan, nodeId: planNodeId(plan) });
}

/** Registers the three command job types with the runner. */
export function registerCommandJobs(jobs: JobRunner, supervisor: Supervisor): void {
  const handler = async (ctx: JobContext<CommandParams, CommandPlan>) => {
    if (!ctx.plan) throw new Error(`a ${ctx.type} job is planned when it is submitted (submitCommandJob); this one came without its plan`);
    return executePlan(ctx.plan, ctx, supervisor);
  };
  for (const type of ['mysql_cmd', 'pgsql_cmd', 'cluster_cmd'] as const) jobs.register(type, handler);
}

async function executePlan(plan: CommandPlan, ctx: JobContext, supervisor: Supervisor): Promise<unknown> {
  switch (plan.kind) {
    case 'event': {
      ctx.progress({ phase: plan.event.toLowerCase() === 'stop' ? 'stopping' : 'starting' });
      const view = await supervisor.command(plan.nodeId, plan.event);
      return { node: view.id, port: view.port, state: view.state, pid: view.pid };
    }
    case 'create': {
      const created = [];
      for (const entry of plan.entries) {
        ctx.progress({ phase: `creating ${entry.kind}-${entry.port}` });
        const view = await supervisor.create(entry);
        created.push({ node: view.id, port: view.port, state: view.state, pid: view.pid });
      }
      return { created };
    }
    case 'drop': {
      for (const id of plan.nodeIds) {
        ctx.progress({ phase: `dropping ${id}` });
        await supervisor.drop(id);
      }
      return { dropped: plan.nodeIds };
    }
    case 'program': {
      ctx.progress({ phase: 'running' });
      const r = await execa(plan.program, plan.args, { cwd: existsSync(plan.cwd) ? plan.cwd : undefined, reject: false, timeout: 600_000, all: true, cancelSignal: ctx.signal });
      const tail = (r.all ?? '').split('\n').slice(-20).join('\n');
      if (r.exitCode !== 0) throw new Error(`${path.basename(plan.program)} exited with ${r.exitCode ?? r.signal}: ${tail.split('\n').slice(-3).join(' | ')}`);
      return { exit_code: r.exitCode, output_tail: tail };
    }
  }
}

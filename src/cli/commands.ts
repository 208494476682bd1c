// The client commands: each talks to a running node-mgr through its REST face (docs at /docs/ui).
import { createInterface } from 'node:readline/promises';
import { CliError, NodeMgrClient, portOf, resolveEndpoint, type EndpointOptions, type JobSummary, type NodeSummary } from './client.ts';
import { bytes, jobsTable, nodesTable, progressText, table, useColour } from './format.ts';

export interface OutputOptions extends EndpointOptions {
  json?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Redraws `render()` every `seconds` until Ctrl-C: the screen is cleared on a terminal, blocks are separated otherwise. */
async function watch(seconds: number, render: () => Promise<string>): Promise<never> {
  for (;;) {
    const text = await render();
    if (process.stdout.isTTY) process.stdout.write(`\x1b[H\x1b[2J${new Date().toLocaleTimeString()}  (every ${seconds} s, Ctrl-C to quit)\n\n${text}\n`);
    else process.stdout.write(`${text}\n\n`);
    await sleep(seconds * 1000);
  }
}

function watchSeconds(value: string | boolean | undefined): number | null {
  if (value === undefined || value === false) return null;
  if (value === true) return 2;
  const s = Number(value);
  if (!(s > 0)) throw new CliError(`--watch takes a number of seconds, not "${value}"`);
  return s;
}

export async function nodes(opts: OutputOptions & { watch?: string | boolean }): Promise<number> {
  const client = new NodeMgrClient(await resolveEndpoint(opts));
  const render = async () => {
    const list = await client.get<NodeSummary[]>('/v1/nodes');
    return opts.json ? JSON.stringify(list, null, 2) : list.length ? nodesTable(list, { colour: useColour() }) : 'no nodes are supervised';
  };
  const every = watchSeconds(opts.watch);
  if (every !== null) await watch(every, render);
  console.log(await render());
  return 0;
}

export async function nodeAction(action: 'start' | 'stop' | 'restart', node: string, opts: OutputOptions): Promise<number> {
  const client = new NodeMgrClient(await resolveEndpoint(opts));
  const port = await portOf(client, node);
  const view = await client.post<NodeSummary>(`/v1/nodes/${port}/${action}`);
  if (opts.json) console.log(JSON.stringify(view, null, 2));
  else console.log(`${view.id}: ${view.state}${view.pid ? ` (pid ${view.pid})` : ''}${view.lastError ? `; last error: ${view.lastError}` : ''}`);
  const settled = action === 'stop' ? view.state === 'stopped' : view.state === 'running';
  return settled ? 0 : 1;
}

interface LogReply {
  file: string;
  files: string[];
  size: number;
  rotated?: boolean;
  text: string;
}

export async function logs(node: string, opts: EndpointOptions & { follow?: boolean; lines?: string; file?: string }): Promise<number> {
  const client = new NodeMgrClient(await resolveEndpoint(opts));
  const port = await portOf(client, node);
  const query = new URLSearchParams();
  if (opts.file) query.set('file', opts.file);
  query.set('lines', String(Number(opts.lines ?? 100)));
  const first = await client.get<LogReply>(`/v1/nodes/${port}/log?${query}`);
  process.stdout.write(first.text);
  if (!opts.follow) return 0;
  let offset = first.size;
  for (;;) {
    await sleep(1000);
    const next = await client.get<LogReply>(`/v1/nodes/${port}/log?file=${encodeURIComponent(first.file)}&offset=${offset}`);
    if (next.rotated) process.stderr.write(`--- ${first.file} was rotated; reading the new file from its start ---\n`);
    process.stdout.write(next.text);
    offset = next.size;
  }
}

export async function jobs(opts: OutputOptions & { watch?: string | boolean; all?: boolean; limit?: string }): Promise<number> {
  const client = new NodeMgrClient(await resolveEndpoint(opts));
  const limit = Number(opts.limit ?? 20);
  const render = async () => {
    const list = await client.get<JobSummary[]>(`/v1/jobs?limit=${limit}`);
    const shown = opts.all ? list : list.filter((j) => j.status === 'running' || j.status === 'queued' || Date.now() - (j.finishedAt ?? 0) < 3_600_000);
    return opts.json ? JSON.stringify(shown, null, 2) : shown.length ? jobsTable(shown, { colour: useColour() }) : 'no job ran in the last hour (--all shows older ones)';
  };
  const every = watchSeconds(opts.watch);
  if (every !== null) await watch(every, render);
  console.log(await render());
  return 0;
}

/** Follows a job until it ends, with a progress line; exit 0 only when it succeeded. */
async function followJob(client: NodeMgrClient, id: string, json: boolean): Promise<number> {
  const tty = process.stdout.isTTY === true && !json;
  for (;;) {
    const job = await client.get<JobSummary>(`/v1/jobs/${encodeURIComponent(id)}`);
    const done = !['queued', 'running'].includes(job.status);
    if (tty) process.stdout.write(`\r\x1b[2K${job.id}  ${job.status}  ${progressText(job)}`);
    if (done) {
      if (tty) process.stdout.write('\n');
      if (json) console.log(JSON.stringify(job, null, 2));
      else {
        const file = job.result && typeof job.result === 'object' && 'file' in job.result ? String((job.result as { file: unknown }).file) : null;
        console.log([`${job.type} ${job.status}`, job.info, file].filter(Boolean).join(': '));
      }
      return job.status === 'succeeded' ? 0 : 1;
    }
    await sleep(1000);
  }
}

export async function backup(node: string, opts: OutputOptions & { wait?: boolean }): Promise<number> {
  const client = new NodeMgrClient(await resolveEndpoint(opts));
  const port = await portOf(client, node);
  const accepted = await client.post<{ job_id: string }>(`/v1/nodes/${port}/backup`);
  if (opts.wait === false) {
    console.log(opts.json ? JSON.stringify(accepted) : `backup job ${accepted.job_id} started; follow it with \`node-mgr jobs --watch\``);
    return 0;
  }
  return followJob(client, accepted.job_id, Boolean(opts.json));
}

export async function restore(node: string, file: string, opts: OutputOptions & { wait?: boolean; yes?: boolean }): Promise<number> {
  const client = new NodeMgrClient(await resolveEndpoint(opts));
  const port = await portOf(client, node);
  if (!opts.yes) {
    if (!process.stdin.isTTY) throw new CliError(`restore replaces the data of node ${node}; add --yes to confirm`);
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    const answer = await rl.question(`Replace the data of node ${node} (port ${port}) with ${file}? The node restarts. [y/N] `);
    rl.close();
    if (!/^y(es)?$/i.test(answer.trim())) {
      console.log('not restored');
      return 1;
    }
  }
  const accepted = await client.post<{ job_id: string }>(`/v1/nodes/${port}/restore`, { file });
  if (opts.wait === false) {
    console.log(opts.json ? JSON.stringify(accepted) : `restore job ${accepted.job_id} started; follow it with \`node-mgr jobs --watch\``);
    return 0;
  }
  return followJob(client, accepted.job_id, Boolean(opts.json));
}

interface BackupListing {
  node: string;
  port: number;
  dir: string | null;
  info?: string;
  backups: Array<{ path: string; time: string; size: number; verify: { ok?: boolean; at?: string } | null }>;
}

export async function backups(node: string | undefined, opts: OutputOptions): Promise<number> {
  const client = new NodeMgrClient(await resolveEndpoint(opts));
  const query = node ? `?port=${await portOf(client, node)}` : '';
  const list = await client.get<BackupListing[]>(`/v1/backups${query}`);
  if (opts.json) {
    console.log(JSON.stringify(list, null, 2));
    return 0;
  }
  const rows = list.flatMap((n) =>
    n.backups.length
      ? n.backups.map((b) => [n.node, b.time, bytes(b.size), b.verify ? (b.verify.ok === false ? 'FAILED' : 'verified') : '-', b.path])
      : [[n.node, '-', '-', '-', n.info ?? 'no backups']],
  );
  console.log(rows.length ? table(['NODE', 'TIME', 'SIZE', 'CHECK', 'FILE'], rows, useColour()) : 'no node here can be backed up');
  return 0;
}

/** For ExecStartPost: returns once GET /readyz answers 200 (node-mgr serves and its state takes writes). */
export async function waitReady(opts: EndpointOptions & { timeout?: string }): Promise<number> {
  const client = new NodeMgrClient(await resolveEndpoint(opts));
  const deadline = Date.now() + Number(opts.timeout ?? 90) * 1000;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const r = await client.raw('GET', '/readyz', undefined, 5000);
      if (r.status === 200) return 0;
      last = `HTTP ${r.status}: ${r.text}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(250);
  }
  console.error(`node-mgr was not ready within ${opts.timeout ?? 90} s: ${last}`);
  return 1;
}

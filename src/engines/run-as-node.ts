// Programs run as the node's OS account (init tools, backup tools, the server itself): the
// environment they get, and their output with the admin password taken out.
import path from 'node:path';
import { execa } from 'execa';
import type { NodeSpec } from './node-spec.ts';

/**
 * Runs an init tool (install-db, initdb, postgres --single) to completion as the node's OS user.
 * The admin password never shows in an error: tools echo failing statements.
 */
export async function runAsTool(
  spec: NodeSpec,
  file: string,
  args: string[],
  options: { cwd: string; input?: string; signal?: AbortSignal },
): Promise<string> {
  const result = await execa(file, args, {
    uid: spec.runAs.uid,
    gid: spec.runAs.gid,
    env: serverEnv(spec),
    extendEnv: false,
    cwd: options.cwd,
    input: options.input,
    cancelSignal: options.signal,
    all: true,
    reject: false,
  });
  const output = redact(result.all ?? '', spec.password);
  if (result.failed) {
    const why = result.isCanceled ? 'was cancelled' : `failed (exit ${result.exitCode ?? result.signal})`;
    const tail = toolFailureEvidence(output);
    throw new Error(`${spec.id}: ${path.basename(file)} ${why}:\n${tail}`);
  }
  return output;
}

const PASSED_THROUGH = ['PATH', 'TZ', 'LD_LIBRARY_PATH'];

/**
 * The environment of servers and init tools: node-mgr's own (its tokens, NODE_OPTIONS) does not
 * leak into them, and HOME is the node dir so that no tool reads root's dotfiles.
 */
export function serverEnv(spec: Pick<NodeSpec, 'dir'>, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { LANG: 'C.UTF-8' };
  for (const name of PASSED_THROUGH) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  return { ...env, HOME: spec.dir, ...extra };
}

/** Replaces every occurrence of the secret. */
export function redact(text: string, secret: string): string {
  return secret ? text.split(secret).join('***') : text;
}

/** The error lines of a tool's output (install-db buries them under a page of advice), else its last lines. */
function toolFailureEvidence(output: string): string {
  const lines = output.trim().split('\n');
  const errors = lines.filter((l) => /\bERROR\b|\bFATAL\b|\[ERROR\]|error:/i.test(l));
  return (errors.length ? errors : lines).slice(-15).join('\n');
}

// The original node_mgr clients as a test sees them: test/support/seed-client.c, built here with
// `cc`, prints what http_post_para / http_post_file would print for a reply (PROTOCOL §1, §7).
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SOURCE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'seed-client.c');

export interface SeedClientRun {
  /** Exactly what the client printed. */
  stdout: string;
  /** "reply cut: …" when the reply was longer than the client's single read. */
  stderr: string;
  /** The text after `result_str=` on the last line (the client's result). */
  result: string;
  /** For a reply without `200 OK`: its body, taken as the client takes a body (never printed by the originals). */
  errorBody?: string;
}

let built: Promise<string> | undefined;

/** Compiles the client once per test process (cached by the source's digest). */
export function buildSeedClient(): Promise<string> {
  built ??= (async () => {
    const digest = createHash('sha256').update(readFileSync(SOURCE)).digest('hex').slice(0, 12);
    const dir = path.join(os.tmpdir(), 'nm-seed-client');
    mkdirSync(dir, { recursive: true });
    const bin = path.join(dir, `seed-client-${digest}`);
    if (!existsSync(bin)) {
      const tmp = `${bin}.${process.pid}`;
      await run('cc', ['-O1', '-Wall', '-Werror', '-o', tmp, SOURCE]);
      await run('mv', ['-f', tmp, bin]);
    }
    return bin;
  })();
  return built;
}

export interface SeedClientOptions {
  /** Connect from this local address (127.0.0.N: another "source" on the same host). */
  bind?: string;
}

function runClient(args: string[], input?: Buffer | string, opts: SeedClientOptions = {}): Promise<SeedClientRun> {
  return buildSeedClient().then(
    (bin) =>
      new Promise<SeedClientRun>((resolve, reject) => {
        const child = spawn(bin, args, { env: { ...process.env, SEED_CLIENT_ERROR_BODY: '1', ...(opts.bind ? { SEED_CLIENT_BIND: opts.bind } : {}) }, stdio: ['pipe', 'pipe', 'pipe'] });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.stdout.on('data', (c: Buffer) => out.push(c));
        child.stderr.on('data', (c: Buffer) => err.push(c));
        child.on('error', reject);
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          if (code !== 0) return reject(new Error(`seed-client ${args[0]} exited ${code ?? signal}: ${Buffer.concat(err).toString()}`));
          const stdout = Buffer.concat(out).toString();
          const stderr = Buffer.concat(err).toString();
          const last = stdout.trimEnd().split('\n').at(-1) ?? '';
          const errorBody = /^error_body=(.*)$/m.exec(stderr)?.[1];
          resolve({ stdout, stderr, result: last.startsWith('result_str=') ? last.slice('result_str='.length) : '', errorBody });
        });
        child.stdin.on('error', () => {});
        child.stdin.end(input ?? '');
      }),
  );
}

/** `./http_post_para <url> <json>` */
export const seedPostPara = (url: string, json: string, opts?: SeedClientOptions) => runClient(['para', url, json], undefined, opts);

/** `./http_post_file <url> <json> <file>` */
export const seedPostFile = (url: string, json: string, file: string, opts?: SeedClientOptions) => runClient(['file', url, json, file], undefined, opts);

/** Any request bytes, sent in one send(); the reply handled as the original clients do. */
export const seedPostRaw = (port: number, request: Buffer | string, opts?: SeedClientOptions) => runClient(['raw', '127.0.0.1', String(port)], request, opts);

// /work/shared/tools/closeload.c: a closed-loop load client that opens one TCP connection per
// request, the way the original C++ callers (http_post_para) connect.
//
// The shared source sends `POST / HTTP/1.1` although its header says HTTP/1.0; with HTTP/1.1 a
// Node server keeps the connection open, so that binary only works in `cl` mode (the client
// closes once Content-Length bytes are in). The original callers send HTTP/1.0 and the server
// closes: for that we build a second binary from the same source with the request line changed
// and run it in `eof` mode. Both binaries live in .cache/ (git-ignored).
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './report.ts';

const run = promisify(execFile);
const SOURCE = '/work/shared/tools/closeload.c';
const CACHE = path.join(ROOT, '.cache');

export type CloseloadVariant = 'http10-eof' | 'http11-cl';

function binaryFor(variant: CloseloadVariant): string {
  return path.join(CACHE, variant === 'http11-cl' ? 'closeload' : 'closeload-http10');
}

/** Builds the binaries when missing or older than the source. */
export async function buildCloseload(): Promise<void> {
  if (!existsSync(SOURCE)) throw new Error(`${SOURCE} is missing: the closeload runs need it`);
  const srcTime = statSync(SOURCE).mtimeMs;
  const stale = (bin: string) => !existsSync(bin) || statSync(bin).mtimeMs < srcTime;
  if (stale(binaryFor('http11-cl'))) {
    await run('gcc', ['-O2', '-pthread', '-o', binaryFor('http11-cl'), SOURCE]);
  }
  if (stale(binaryFor('http10-eof'))) {
    const text = readFileSync(SOURCE, 'utf8');
    const changed = text.replace('"POST / HTTP/1.1\\r\\n', '"POST / HTTP/1.0\\r\\n');
    if (changed === text) throw new Error(`${SOURCE}: request line "POST / HTTP/1.1" not found; cannot build the HTTP/1.0 variant`);
    const derived = path.join(CACHE, 'closeload-http10.c');
    writeFileSync(derived, changed);
    await run('gcc', ['-O2', '-pthread', '-o', binaryFor('http10-eof'), derived]);
  }
}

export interface CloseloadResult {
  variant: CloseloadVariant;
  concurrency: number;
  seconds: number;
  ok: number;
  rps: number;
  attempts: number;
  errors: { empty: number; bad: number; connect: number; send: number; timeout: number };
  latencyMs: { mean: number; p50: number; p90: number; p99: number; max: number };
  output: string;
}

/** Runs closeload against 127.0.0.1:port with `body`, counting replies that contain `expect`. */
export async function closeload(variant: CloseloadVariant, port: number, concurrency: number, seconds: number, body: string, expect: string): Promise<CloseloadResult> {
  const mode = variant === 'http11-cl' ? 'cl' : 'eof';
  // A stuck request gives up after 30 s inside closeload; the outer bound is a safety net.
  const { stdout } = await run(binaryFor(variant), ['127.0.0.1', String(port), String(concurrency), String(seconds), body, expect, mode], {
    timeout: (seconds + 45) * 1000,
  });
  const num = (re: RegExp) => {
    const m = re.exec(stdout);
    if (!m) throw new Error(`closeload output not understood:\n${stdout}`);
    return Number(m[1]);
  };
  return {
    variant,
    concurrency,
    seconds,
    ok: num(/ ok=(\d+)/),
    rps: num(/ok_rps=([\d.]+)/),
    attempts: num(/attempts=(\d+)/),
    errors: {
      empty: num(/empty_reply=(\d+)/),
      bad: num(/bad_reply=(\d+)/),
      connect: num(/connect=(\d+)/),
      send: num(/send=(\d+)/),
      timeout: num(/timeout30s=(\d+)/),
    },
    latencyMs: { mean: num(/mean=([\d.]+)/), p50: num(/p50=([\d.]+)/), p90: num(/p90=([\d.]+)/), p99: num(/p99=([\d.]+)/), max: num(/max=([\d.]+)/) },
    output: stdout.trim(),
  };
}

export function closeloadErrors(r: CloseloadResult): number {
  return r.errors.empty + r.errors.bad + r.errors.connect + r.errors.send + r.errors.timeout;
}

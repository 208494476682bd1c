// Per-connection cost (issue 16), not one of run-all's figures: closeload (HTTP/1.0, one
// connection per request, get_node) against node-mgr with no nodes and a bare node:http answering
// the same bytes, rounds alternating; prints server CPU µs per request for both and ours/http.
//   node --import tsx bench/conn-cost.ts      S=5 (seconds a round), ROUNDS=3, C=10 (concurrency)
//   NODE_MGR_CPU_PROF=DIR HTTP_PROF=DIR       V8 CPU profiles of node-mgr / the node:http server
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildCloseload, closeload } from './support/closeload.ts';
import { benchConfig, benchPort } from './support/fleet.ts';
import { api, startNodeMgrProcess } from './support/node-mgr.ts';
import { cpuSample } from './support/proc.ts';
import { BENCH_DIR, sleep } from './support/report.ts';

const SECONDS = Number(process.env.S ?? 5);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const C = Number(process.env.C ?? 10);
const body = JSON.stringify({ ver: '0.1', job_type: 'get_node' });

async function main() {
  await buildCloseload();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nm-conncost-'));
  const config = await benchConfig(path.join(dir, 'state'), []);
  const mgr = await startNodeMgrProcess(path.join(dir, 'mgr'), config, 60_000);
  const r = await api(mgr.url, 'POST', '/', JSON.parse(body));
  if (r.status !== 200) throw new Error(`get_node answered ${r.status}: ${r.text}`);
  const replies = { get_node: r.text, get_status: r.text, get_info: r.text };
  const file = path.join(dir, 'replies.json');
  await writeFile(file, JSON.stringify(replies));
  const port = await benchPort();
  const h = spawn(process.execPath, ['--import', 'tsx', ...(process.env.HTTP_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.HTTP_PROF}`] : []), path.join(BENCH_DIR, 'support/static-server.ts'), '--port', String(port), '--replies', file, '--kind', 'http'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((res) => h.stdout!.on('data', (c: Buffer) => c.toString().includes('listening') && res()));
  const targets = [{ name: 'ours', port: Number(new URL(mgr.url).port), pid: mgr.pid }, { name: 'http', port, pid: h.pid! }];
  const rows: Record<string, number[]> = { ours: [], http: [] };
  await closeload('http10-eof', targets[0]!.port, C, 2, body, '{}');
  await closeload('http10-eof', targets[1]!.port, C, 2, body, '{}');
  for (let i = 0; i < ROUNDS; i++) {
    for (const t of targets) {
      const b = cpuSample(t.pid);
      const x = await closeload('http10-eof', t.port, C, SECONDS, body, '{}');
      const a = cpuSample(t.pid);
      const cpuS = a.self - b.self;
      const us = (cpuS / x.ok) * 1e6;
      rows[t.name]!.push(us);
      console.log(`round ${i} ${t.name}: ${x.ok} ok, ${x.rps.toFixed(0)} rps, ${us.toFixed(1)} µs CPU/request, errors ${JSON.stringify(x.errors)}`);
    }
  }
  const med = (v: number[]) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)]!;
  console.log(`MEDIAN ours ${med(rows.ours!).toFixed(1)} µs/req, http ${med(rows.http!).toFixed(1)} µs/req, ours/http ${(med(rows.ours!) / med(rows.http!)).toFixed(2)}; per-round ratios ${rows.ours!.map((o, i) => (o / rows.http![i]!).toFixed(2)).join(' ')}`);
  h.kill('SIGTERM');
  await mgr.stop('SIGTERM');
  await sleep(500);
  await rm(dir, { recursive: true, force: true });
}
main().catch((e) => { console.error(e); process.exit(1); });

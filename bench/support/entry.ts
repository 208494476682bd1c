// Which node-mgr the benches run. By default the compiled build, what operators run
// (bin/node-mgr.js → dist/), rebuilt first when a source is newer than it: start-up time and memory
// of the sources through tsx are tsx's, not node-mgr's. NODE_MGR_BENCH_ENTRY=tsx measures the
// sources through tsx instead (bin/node-mgr-dev.js, what the tests run).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export type BenchEntry = 'dist' | 'tsx';

export function benchEntry(): BenchEntry {
  const asked = process.env.NODE_MGR_BENCH_ENTRY ?? 'dist';
  if (asked !== 'dist' && asked !== 'tsx') throw new Error(`NODE_MGR_BENCH_ENTRY=${asked}: expected dist or tsx`);
  return asked;
}

/** The script the benches start node-mgr with (test/support/node-mgr-process.ts reads NODE_MGR_BIN). */
export function entryScript(entry: BenchEntry = benchEntry()): string {
  return path.join(ROOT, entry === 'dist' ? 'bin/node-mgr.js' : 'bin/node-mgr-dev.js');
}

/** What the header and the result files say was measured. */
export function entryNote(entry: BenchEntry = benchEntry()): string {
  return entry === 'dist' ? 'bin/node-mgr.js (the build in dist/)' : 'bin/node-mgr-dev.js (the sources through tsx)';
}

const BUILT = path.join(ROOT, 'dist/src/main.js');
const INPUTS = ['src', 'machines', 'scripts/build.mjs', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json'];

function newestMtime(p: string): number {
  let st;
  try {
    st = statSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of readdirSync(p)) newest = Math.max(newest, newestMtime(path.join(p, name)));
  return newest;
}

/** True when dist/ is missing or older than a source it is built from. */
export function distIsStale(): boolean {
  let built: number;
  try {
    built = statSync(BUILT).mtimeMs;
  } catch {
    return true;
  }
  return INPUTS.some((p) => newestMtime(path.join(ROOT, p)) > built);
}

/** Runs `npm run build` (scripts/build.mjs) when the benches run dist/ and it is stale. */
export function ensureBuilt(): void {
  if (benchEntry() !== 'dist' || !distIsStale()) return;
  console.log('bench: dist/ is older than the sources; building it (scripts/build.mjs)');
  const built = spawnSync(process.execPath, [path.join(ROOT, 'scripts/build.mjs')], { stdio: 'inherit', cwd: ROOT });
  if (built.status !== 0) throw new Error(`the build failed (exit ${built.status ?? built.signal}); the benches measure dist/`);
}

/** Points node-mgr's spawns at the entry (once per process; idempotent). */
export function useBenchEntry(): void {
  ensureBuilt();
  process.env.NODE_MGR_BIN = entryScript();
}

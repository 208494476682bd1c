// `npm run bench`: every figure in sequence (one at a time: they would disturb each other), then
// all their tables once more. Each script runs in its own process and writes
// bench/results/<name>-<run id>.json; a script that fails does not stop the others.
//
//   npm run bench                    all of them
//   npm run bench -- api footprint   some of them
//
// node-mgr runs as operators run it, the build in dist/ (built first when a source is newer);
// NODE_MGR_BENCH_ENTRY=tsx runs the sources through tsx instead (bench/support/entry.ts).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BENCH_DIR, printHeader, RESULTS_DIR, RUN_ID, type ResultFile } from './support/report.ts';
import { ensureBuilt } from './support/entry.ts';

/** The three core figures, then the features' (each runs when its script is present). */
const FIGURES = ['api', 'recovery', 'footprint', 'supervision', 'backup', 'table-transfer', 'inspector-50', 'binlog-archive', 'pitr'];

interface Outcome {
  name: string;
  code: number | null;
  seconds: number;
}

function runScript(name: string): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, `${name}.ts`)], {
      stdio: 'inherit',
      env: { ...process.env, BENCH_RUN_ID: RUN_ID },
    });
    child.once('exit', (code, signal) => resolve({ name, code: code ?? (signal ? 128 : null), seconds: (Date.now() - started) / 1000 }));
  });
}

async function main(): Promise<number> {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((a) => !FIGURES.includes(a));
  if (unknown.length) {
    console.error(`unknown figure(s): ${unknown.join(', ')}; known: ${FIGURES.join(', ')}`);
    return 2;
  }
  const wanted = (asked.length ? asked : FIGURES).filter((name) => existsSync(path.join(BENCH_DIR, `${name}.ts`)));
  ensureBuilt();
  const started = Date.now();
  printHeader('run-all', `${wanted.join(', ')} (run ${RUN_ID})`);
  // Ctrl-C reaches the running script too (same process group): it cleans up and exits; then stop.
  let interrupted = false;
  process.on('SIGINT', () => (interrupted = true));
  const outcomes: Outcome[] = [];
  for (const name of wanted) {
    outcomes.push(await runScript(name));
    if (interrupted) break;
  }

  // Printed, and kept as bench/results/tables-<run>.txt (what docs/bench-latest.md is made from).
  const out: string[] = [];
  const say = (line: string) => {
    console.log(line);
    out.push(line);
  };
  console.log(`\n\n######## all tables (run ${RUN_ID}) ########`);
  for (const o of outcomes) {
    const file = path.join(RESULTS_DIR, `${o.name}-${RUN_ID}.json`);
    say(`\n=== ${o.name}: ${o.code === 0 ? 'ok' : `FAILED (exit ${o.code})`}, ${o.seconds.toFixed(0)} s`);
    if (!existsSync(file)) {
      say('    (no results file)');
      continue;
    }
    const result = JSON.parse(readFileSync(file, 'utf8')) as ResultFile;
    const m = result.machine;
    say(`    loadavg ${m.loadavg.join(' ')} at start, ${result.loadavgAtEnd.join(' ')} at end; code ${m.commit} + ${m.uncommittedPaths} uncommitted path(s); node-mgr ${m.nodeMgr ?? '(not recorded)'}\n`);
    for (const t of result.tables) say(`${t}\n`);
  }
  const total = (Date.now() - started) / 1000;
  say(`npm run bench: ${outcomes.length} figure(s) in ${Math.floor(total / 60)} min ${Math.round(total % 60)} s; raw numbers in bench/results/*-${RUN_ID}.json`);
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(path.join(RESULTS_DIR, `tables-${RUN_ID}.txt`), `${out.join('\n')}\n`);
  return outcomes.every((o) => o.code === 0) ? 0 : 1;
}

process.exitCode = await main();

// The import direction of docs/architecture.md, read from the source: every relative import
// (static, `export … from`, type-only and dynamic) of a file under src/ or machines/ must go to its
// own folder or to a folder its folder may use. A change that runs against the layering fails here
// with the file, the line and the rule.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * What each part may import besides itself, lowest first. The same table is drawn in
 * docs/architecture.md; change both together.
 */
export const MAY_IMPORT: Record<string, readonly string[]> = {
  // src/error-kind.ts: the kinds of failure every layer may say; it imports nothing.
  'error-kind': [],
  machines: [],
  config: ['error-kind'],
  host: ['error-kind', 'config'],
  state: ['error-kind', 'config', 'host'],
  backup: ['error-kind', 'config', 'host'],
  engines: ['error-kind', 'config', 'host', 'state', 'backup'],
  supervisor: ['error-kind', 'machines', 'config', 'host', 'state', 'backup', 'engines'],
  metrics: ['error-kind', 'machines', 'config', 'host', 'state', 'backup', 'supervisor'],
  jobs: ['error-kind', 'machines', 'config', 'host', 'state', 'backup', 'engines', 'supervisor', 'metrics'],
  cluster: ['error-kind', 'machines', 'config', 'host', 'state', 'backup', 'engines', 'supervisor', 'metrics', 'jobs'],
  http: ['error-kind', 'machines', 'config', 'host', 'state', 'backup', 'engines', 'supervisor', 'metrics', 'jobs', 'cluster'],
  lifecycle: ['error-kind', 'config', 'host', 'state'],
  daemon: ['error-kind', 'machines', 'config', 'host', 'state', 'backup', 'engines', 'supervisor', 'metrics', 'jobs', 'cluster', 'http', 'lifecycle'],
  cli: ['error-kind', 'machines', 'config', 'host', 'state', 'backup', 'engines', 'supervisor', 'metrics', 'jobs', 'cluster', 'http', 'lifecycle', 'daemon'],
  main: ['cli'],
};

/** The part a repository file belongs to: `machines`, a folder of src/, or a top-level file of src/ by its name. */
export function partOf(file: string): string {
  const rel = path.relative(ROOT, file).split(path.sep);
  if (rel[0] === 'machines') return 'machines';
  if (rel[0] !== 'src') throw new Error(`${file} is outside src/ and machines/`);
  return rel.length === 2 ? rel[1]!.replace(/\.ts$/, '') : rel[1]!;
}

/** Relative module specifiers a source text imports, with their line numbers. */
export function relativeImports(source: string): { spec: string; line: number }[] {
  const out: { spec: string; line: number }[] = [];
  const patterns = [/\bfrom\s+'(\.{1,2}\/[^']+)'/g, /\bimport\s+'(\.{1,2}\/[^']+)'/g, /\bimport\(\s*'(\.{1,2}\/[^']+)'\s*\)/g];
  for (const re of patterns) {
    for (const m of source.matchAll(re)) {
      // A specifier inside a comment line is prose, not an import.
      const lineStart = source.lastIndexOf('\n', m.index) + 1;
      const lineText = source.slice(lineStart, source.indexOf('\n', m.index) === -1 ? undefined : source.indexOf('\n', m.index));
      if (/^\s*(\/\/|\*)/.test(lineText)) continue;
      out.push({ spec: m[1]!, line: source.slice(0, m.index).split('\n').length });
    }
  }
  return out;
}

/** The files `file` imports for their values: `import type` / `export type` need nothing at load time. */
export function valueImports(file: string, text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?\bfrom\s+'(\.{1,2}\/[^']+)'/gms)) out.push(path.resolve(path.dirname(file), m[1]!));
  return out;
}

/** The strongly connected groups of more than one file (Tarjan), each a load-time cycle. */
export function importCycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      group.push(w);
    } while (w !== v);
    if (group.length > 1) cycles.push(group.reverse());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every import of `file` (its text given) that runs against MAY_IMPORT, as `file:line imports spec (part → part; …)`. */
export function violationsIn(file: string, text: string): string[] {
  const from = partOf(file);
  const allowed = MAY_IMPORT[from];
  const name = path.relative(ROOT, file);
  if (!allowed) return [`${name}: part "${from}" is not in the table of docs/architecture.md`];
  const found: string[] = [];
  for (const { spec, line } of relativeImports(text)) {
    const rel = path.relative(ROOT, path.resolve(path.dirname(file), spec));
    if (!rel.startsWith('src' + path.sep) && !rel.startsWith('machines' + path.sep)) {
      found.push(`${name}:${line} imports ${spec}, outside src/ and machines/`);
      continue;
    }
    const to = partOf(path.resolve(path.dirname(file), spec));
    if (to !== from && !allowed.includes(to)) found.push(`${name}:${line} imports ${spec} (${from} → ${to}; ${from} may import ${allowed.join(', ') || 'nothing'})`);
  }
  return found;
}

describe('import direction (docs/architecture.md)', () => {
  it('no file in src/ or machines/ imports against the layering', () => {
    const files = [...sourceFiles(path.join(ROOT, 'src')), ...sourceFiles(path.join(ROOT, 'machines'))];
    assert.ok(files.length > 50, `found only ${files.length} source files: the walk is broken`);
    const found = files.flatMap((f) => violationsIn(f, readFileSync(f, 'utf8')));
    assert.equal(found.length, 0, `imports against docs/architecture.md:\n${found.join('\n')}`);
  });

  it('no two files need each other at load time (a cycle of value imports)', () => {
    const files = [...sourceFiles(path.join(ROOT, 'src')), ...sourceFiles(path.join(ROOT, 'machines'))];
    const cycles = importCycles(new Map(files.map((f) => [f, valueImports(f, readFileSync(f, 'utf8'))])));
    assert.equal(cycles.length, 0, `import cycles:\n${cycles.map((c) => c.map((f) => path.relative(ROOT, f)).join(' → ')).join('\n')}`);
  });

  it('finds the imports a file really has, and not the ones in comments', () => {
    const src = [
      "import { a } from '../engines/x.ts';",
      "import type { B } from '../http/y.ts';",
      "export { c } from './z.ts';",
      "// import { d } from '../jobs/no.ts';",
      "const m = await import('../cli/w.ts');",
    ].join('\n');
    assert.deepEqual(
      relativeImports(src).map((i) => `${i.line}:${i.spec}`).sort(),
      ['1:../engines/x.ts', '2:../http/y.ts', '3:./z.ts', '5:../cli/w.ts'],
    );
  });

  it('finds a cycle of value imports and ignores type-only ones', () => {
    const a = path.join(ROOT, 'src/engines/a.ts');
    const b = path.join(ROOT, 'src/engines/b.ts');
    const c = path.join(ROOT, 'src/engines/c.ts');
    const graph = new Map([
      [a, valueImports(a, "import { b } from './b.ts';\nimport type { C } from './c.ts';")],
      [b, valueImports(b, "import {\n  a,\n} from './a.ts';")],
      [c, valueImports(c, "import type { A } from './a.ts';")],
    ]);
    assert.deepEqual(importCycles(graph), [[a, b]]);
  });

  it('flags an import against the direction, named by file and line', () => {
    const backupFile = path.join(ROOT, 'src/backup/catalog.ts');
    const text = readFileSync(backupFile, 'utf8');
    // The real walk over a real file, with one planted line: backup may not import an engine.
    const planted = violationsIn(backupFile, `${text}\nimport { x } from '../engines/engine.ts';\n`);
    assert.equal(planted.length, 1, planted.join('\n'));
    assert.match(planted[0]!, /^src\/backup\/catalog\.ts:\d+ imports \.\.\/engines\/engine\.ts \(backup → engines;/);
  });
});


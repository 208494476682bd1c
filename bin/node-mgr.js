#!/usr/bin/env -S node --max-semi-space-size=2
// --max-semi-space-size=2: a young generation of 2 × 2 MB instead of V8's up to 2 × 16 MB, which a
// long-running daemon grows into and keeps (docs/decisions.md, "A 2 MB young generation").
// Runs the compiled node-mgr (`npm run build` writes dist/; the published package ships it).
// A checkout that was never built falls back to the sources through tsx (bin/node-mgr-dev.js).
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/src/main.js', import.meta.url);
if (existsSync(compiled)) await import(compiled.href);
else if (existsSync(new URL('./node-mgr-dev.js', import.meta.url))) await import('./node-mgr-dev.js');
else {
  console.error('node-mgr: dist/ is missing; run `npm run build` in the package directory');
  process.exit(1);
}

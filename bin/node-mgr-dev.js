#!/usr/bin/env node
// Development entry (not shipped): runs the TypeScript sources through tsx's loader, so tests and a
// developer's edits need no build. Operators run bin/node-mgr.js, which runs the compiled dist/.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');

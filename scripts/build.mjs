// npm run build: compiles src/ and machines/ to dist/ (what bin/node-mgr.js runs) and copies the
// inspector page's static files beside the compiled routes that serve them.
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
rmSync(path.join(root, 'dist'), { recursive: true, force: true });
const built = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (built.status !== 0) process.exit(built.status ?? 1);
cpSync(path.join(root, 'src/http/inspector/page'), path.join(root, 'dist/src/http/inspector/page'), { recursive: true });

// --shrinkwrap (prepack): the package carries the lockfile as npm-shrinkwrap.json, so an install of
// the tarball gets the dependency versions the tests ran with (postpack removes it again).
if (process.argv.includes('--shrinkwrap')) cpSync(path.join(root, 'package-lock.json'), path.join(root, 'npm-shrinkwrap.json'));

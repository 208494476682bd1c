// npm run build: type-checks src/ and machines/ (tsc), then bundles them with their dependencies
// into dist/src/ (esbuild): main.js, which bin/node-mgr.js runs, and the chunks it loads on demand
// (a client command never loads the daemon's). A start reads some 30 files instead of 1,270
// (docs/decisions.md, "One bundle for operators"). The inspector page's static files are copied to
// dist/src/http/inspector/page.
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

const tsc = require.resolve('typescript/bin/tsc');
const checked = spawnSync(process.execPath, [tsc, '--noEmit', '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (checked.status !== 0) process.exit(checked.status ?? 1);

/**
 * Left out of the bundle, loaded from node_modules at run time: better-sqlite3 is a native addon;
 * @fastify/swagger-ui serves the static files beside its own modules (found through __dirname,
 * which a bundle does not have). @fastify/swagger's one __dirname read (its own package.json, for
 * a default title and version) is in a try and the document gives both.
 */
const EXTERNAL = ['better-sqlite3', '@fastify/swagger-ui'];

/**
 * pg decides when it is loaded whether it runs in a Cloudflare Worker, by making a fetch Response;
 * on Node 20 (no `navigator`) that first touch of `Response` loads all of undici, a tenth of a
 * second at every start, for a fetch only discovery from cluster_mgr makes. The bundle runs on Node only: the check
 * answers false. The build fails if pg's code no longer has the check, so this is looked at again.
 */
const nodeOnlyPg = {
  name: 'pg-node-only',
  setup(build) {
    build.onLoad({ filter: /[\\/]pg[\\/]lib[\\/]stream\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const check = 'function isCloudflareRuntime() {';
      if (!source.includes(check)) throw new Error(`${args.path}: no \`${check}\` to answer for Node (scripts/build.mjs, pg-node-only)`);
      return { contents: source.replace(check, `${check}\n  return false;`), loader: 'js' };
    });
  },
};

const esbuild = await import('esbuild');
rmSync(path.join(root, 'dist'), { recursive: true, force: true });
await esbuild.build({
  absWorkingDir: root,
  entryPoints: ['src/main.ts'],
  outdir: 'dist/src',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  // Whitespace and syntax only: names stay, so stack traces and error classes read as in the sources.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  // The CommonJS dependencies call require() for Node's modules; an ES module has none of its own.
  banner: { js: "import { createRequire as __nodeMgrCreateRequire } from 'node:module'; const require = __nodeMgrCreateRequire(import.meta.url);" },
  plugins: [nodeOnlyPg],
  logLevel: 'warning',
});
cpSync(path.join(root, 'src/http/inspector/page'), path.join(root, 'dist/src/http/inspector/page'), { recursive: true });

// --shrinkwrap (prepack): the package carries the lockfile as npm-shrinkwrap.json, so an install of
// the tarball gets the dependency versions the tests ran with (postpack removes it again).
if (process.argv.includes('--shrinkwrap')) cpSync(path.join(root, 'package-lock.json'), path.join(root, 'npm-shrinkwrap.json'));

// A server started the way a previous node-mgr would have started it: by another process (the
// "parent"), through node-mgr's own spawnServer. The parent either exits at once (the server is
// orphaned, as after node-mgr dies) or stays, so a test can hold it with SIGSTOP.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { NodeSpec } from '../../src/engines/node-spec.ts';

const SPAWN_TS = new URL('../../src/supervisor/spawn.ts', import.meta.url).href;
const ENGINES_TS = new URL('../../src/engines/index.ts', import.meta.url).href;

export async function spawnFromForeignParent(spec: NodeSpec, opts: { parentStays: boolean }): Promise<{ pid: number; parent: ChildProcess }> {
  const script = [
    `import { spawnServer } from ${JSON.stringify(SPAWN_TS)};`,
    `import { engineFor } from ${JSON.stringify(ENGINES_TS)};`,
    `const spec = JSON.parse(process.argv[1]);`,
    `const server = await spawnServer(spec, engineFor(spec.kind).launchPlan(spec));`,
    `console.log(server.pid);`,
    opts.parentStays ? `setInterval(() => {}, 1000);` : `process.exit(0);`,
  ].join('\n');
  const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
  return { pid: Number(line.toString().trim()), parent };
}

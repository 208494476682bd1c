// CLI entry: `node-mgr serve` runs node-mgr; the other commands (src/cli/program.ts) drive it.
import { runCli } from './cli/program.ts';

runCli(process.argv).then(
  // Exit explicitly: background samplers and sockets must not keep a stopped node-mgr alive.
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`node-mgr: ${(err as Error).message}`);
    process.exit(1);
  },
);

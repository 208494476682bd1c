// The node-mgr command line (commander): every command has --help; the client commands reach the
// running node-mgr with the address, token and CA of its config file.
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { LOG_FORMATS, LOG_LEVELS } from './log-options.ts';

/** package.json's version: two levels up from src/cli, three from dist/src/cli. */
function version(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'node-mgr' && pkg.version) return pkg.version;
    } catch {
      /* try the next level */
    }
  }
  return 'unknown';
}

const withEndpoint = (cmd: Command) =>
  cmd
    .option('-c, --config <file>', 'the config node-mgr runs with: address, token and CA (default: $NODE_MGR_CONFIG, else /etc/node-mgr/node-mgr.json if present)')
    .option('--url <url>', 'node-mgr\'s address, e.g. http://127.0.0.1:9998 (overrides the config\'s listen)')
    .option('--token <token>', 'bearer token (default: $NODE_MGR_TOKEN, else the config\'s security.token)');

const withLogging = (cmd: Command) =>
  cmd
    .addOption(new Option('--log-level <level>', 'lowest level logged').choices(LOG_LEVELS).default('info').env('NODE_MGR_LOG_LEVEL'))
    .addOption(new Option('--log-format <format>', 'auto: readable on a terminal, JSON lines otherwise').choices(LOG_FORMATS).default('auto').env('NODE_MGR_LOG_FORMAT'));

/** Runs a command's action and turns its result into the exit code. */
function run<A extends unknown[]>(fn: (...args: A) => Promise<number>) {
  return async (...args: A) => {
    process.exitCode = await fn(...args);
  };
}

export function buildProgram(): Command {
  const program = new Command('node-mgr')
    .description('Per-host supervisor for MariaDB/MySQL, PostgreSQL and cluster_mgr processes, and its command line')
    .version(version(), '-V, --version')
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', '\nNODE is a port (6004) or a node id (mysql-6004). Example session: README, "The command line".');

  withLogging(
    program
      .command('serve')
      .description('run node-mgr in the foreground (SIGTERM stops node-mgr, not the databases; SIGHUP reloads the config)')
      .option('-c, --config <file>', 'config file (JSON or YAML)')
      .option('--stop-nodes-on-exit', 'stop the databases too when node-mgr stops')
      .option('--inspect', "send actor events to Stately's inspector")
      .option('--inspect-url <url>', "Stately inspector's WebSocket address (implies --inspect)"),
  ).action(run(async (opts) => (await import('./server.ts')).serve(opts)));

  withLogging(
    withEndpoint(
      program
        .command('start')
        .argument('[node]', 'the node to start; without it, run node-mgr itself (as `serve`)')
        .description('start a node (waits until it runs); `node-mgr start --config FILE` alone runs node-mgr, as `serve`')
        .option('--stop-nodes-on-exit', 'with no NODE: as serve --stop-nodes-on-exit')
        .option('--inspect', 'with no NODE: as serve --inspect')
        .option('--inspect-url <url>', 'with no NODE: as serve --inspect-url')
        .option('--json', 'print the node as JSON'),
    ),
  ).action(
    run(async (node: string | undefined, opts) => {
      if (node === undefined) return (await import('./server.ts')).serve(opts);
      return (await import('./commands.ts')).nodeAction('start', node, opts);
    }),
  );

  for (const action of ['stop', 'restart'] as const) {
    withEndpoint(
      program
        .command(action)
        .argument('<node>', 'port or node id')
        .description(action === 'stop' ? 'stop a node (SQL shutdown, then TERM, then KILL); it stays stopped' : 'stop and start a node')
        .option('--json', 'print the node as JSON'),
    ).action(run(async (node: string, opts) => (await import('./commands.ts')).nodeAction(action, node, opts)));
  }

  withEndpoint(
    program
      .command('nodes')
      .alias('status')
      .description('table of the supervised nodes: state, uptime, CPU, memory, cluster/shard, restarts')
      .option('--json', 'print the nodes as JSON')
      .option('-w, --watch [seconds]', 'redraw every few seconds (default 2) until Ctrl-C'),
  ).action(run(async (opts) => (await import('./commands.ts')).nodes(opts)));

  withEndpoint(
    program
      .command('logs')
      .argument('<node>', 'port or node id')
      .description("a node's server log (the file it wrote last, or --file)")
      .option('-f, --follow', 'keep printing new lines until Ctrl-C')
      .option('-n, --lines <n>', 'how many lines from the end', '100')
      .option('--file <name>', 'a file of the node\'s log/ dir, e.g. error.log or server.log'),
  ).action(run(async (node: string, opts) => (await import('./commands.ts')).logs(node, opts)));

  withEndpoint(
    program
      .command('jobs')
      .description('running jobs and those of the last hour, with progress (bytes, rate, ETA)')
      .option('--json', 'print the jobs as JSON')
      .option('-a, --all', 'also jobs older than an hour')
      .option('--limit <n>', 'how many of the newest jobs to look at', '20')
      .option('-w, --watch [seconds]', 'redraw every few seconds (default 2) until Ctrl-C'),
  ).action(run(async (opts) => (await import('./commands.ts')).jobs(opts)));

  withEndpoint(
    program
      .command('backup')
      .argument('<node>', 'port or node id')
      .description('cold backup of a running node to the configured store; follows the job until it ends')
      .option('--no-wait', 'print the job id and return at once')
      .option('--json', 'print the finished job as JSON'),
  ).action(run(async (node: string, opts) => (await import('./commands.ts')).backup(node, opts)));

  withEndpoint(
    program
      .command('restore')
      .argument('<node>', 'port or node id')
      .argument('<file>', 'the backup, as `node-mgr backups` lists it')
      .description("replace a node's data with a backup (asks first; --yes when not on a terminal)")
      .option('-y, --yes', 'do not ask')
      .option('--no-wait', 'print the job id and return at once')
      .option('--json', 'print the finished job as JSON'),
  ).action(run(async (node: string, file: string, opts) => (await import('./commands.ts')).restore(node, file, opts)));

  withEndpoint(
    program
      .command('backups')
      .argument('[node]', 'only this node')
      .description('the backups of this host\'s nodes, newest first, with their last check')
      .option('--json', 'print the listing as JSON'),
  ).action(run(async (node: string | undefined, opts) => (await import('./commands.ts')).backups(node, opts)));

  program
    .command('reload')
    .description('make the running node-mgr of that config re-read it (SIGHUP)')
    .requiredOption('-c, --config <file>', 'the file the running node-mgr was started with')
    .action(run(async (opts) => (await import('./server.ts')).reload(opts)));

  withEndpoint(
    program
      .command('wait-ready')
      .description('wait until node-mgr answers GET /readyz with 200 (systemd ExecStartPost)')
      .option('--timeout <seconds>', 'give up after this long (exit 1)', '90'),
  ).action(run(async (opts) => (await import('./commands.ts')).waitReady(opts)));

  withLogging(
    program
      .command('demo')
      .description('one MariaDB storage node and one PostgreSQL computing node under DIR, supervised and served')
      .option('--dir <dir>', 'where the demo keeps its nodes', './var/demo')
      .option('--port <port>', 'API port', '9998'),
  ).action(run(async (opts) => (await import('./server.ts')).demo(opts)));

  return program;
}

/** Errors an operator can act on are one line; anything else keeps its stack for a bug report. */
export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  if (argv.length <= 2) {
    program.outputHelp();
    return 2;
  }
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    // By name: importing the classes would load the config schema (zod) before every command.
    if (err instanceof Error && ['CliError', 'ConfigError'].includes(err.constructor.name)) console.error(`node-mgr: ${err.message}`);
    else console.error(`node-mgr: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
}

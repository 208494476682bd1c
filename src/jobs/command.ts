// `*_cmd` requests (PROTOCOL §5). The original ran `sh -c "cd <dir>; <cmd>"`; we run no shell:
// the commands callers send are recognised and become node actor events.
import type { KindedError } from '../error-kind.ts';

export type CommandJobType = 'mysql_cmd' | 'pgsql_cmd' | 'cluster_cmd';

export type NodeCommand =
  | { action: 'START' | 'STOP' | 'RESTART'; port: number }
  | { action: 'CREATE' | 'DROP'; configFile: string; select: { index: number } | { ids: number[] } }
  | { action: 'CLUSTER_MGR'; verb: 'START' | 'STOP' }
  | { action: 'ALLOWED'; program: string; args: string[] };

export class CommandError extends Error implements KindedError {
  readonly kind = 'invalid';
  constructor(message: string) {
    super(message);
    this.name = 'CommandError';
  }
}

/**
 * Splits a command line the way a POSIX shell would split plain words and quotes, without
 * expanding anything. Returns null when quoting is unbalanced.
 */
export function splitWords(line: string): string[] | null {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) word += line[++i];
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) return null;
  if (inWord) words.push(word);
  return words;
}

// Shell syntax, line breaks and other control characters (a tab is only a word separator).
const SHELL_META = /[;&|<>`$(){}\x00-\x08\x0a-\x1f\x7f]/;

/**
 * The extra words a recognised command may carry: `--name[=value]` or a plain value, where a value
 * holds no path beyond a leading `./` and no shell syntax. node-mgr ignores the options it does not
 * know (`--cluster_id=1`), so a path or a tool option like `--defaults-file=/etc/shadow` is refused
 * rather than silently carried along.
 */
const PLAIN_WORD = /^(--[A-Za-z][\w-]*(=(\.\/)?[\w.,:@+-]*)?|(\.\/)?[\w.,:@+-]+)$/;

function port(word: string | undefined, cmd: string): number {
  const n = Number(word);
  if (!word || !/^\d+$/.test(word) || n < 1 || n > 65535) throw new CommandError(`command "${cmd}" does not name a valid port`);
  return n;
}

/** Reads `name=value` or `--name=value` (or `--name value`) from the words. */
function option(words: string[], name: string): string | undefined {
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    for (const prefix of [`--${name}=`, `${name}=`]) if (w.startsWith(prefix)) return w.slice(prefix.length);
    if (w === `--${name}`) return words[i + 1];
  }
  return undefined;
}

function scriptWords(words: string[]): { script: string; rest: string[] } {
  // `python2 start_pg.py …`, `python install-mysql.py …`, `bash -x bin/x …`, `./startmysql.sh …`
  let i = 0;
  if (/^(python[23]?(\.\d+)?|bash|sh)$/.test(words[0] ?? '')) {
    i = 1;
    while (words[i]?.startsWith('-') && words[i] !== undefined && !words[i]!.includes('/')) i++;
  }
  const script = (words[i] ?? '').replace(/^\.\//, '');
  return { script, rest: words.slice(i + 1) };
}

function configSelection(rest: string[], cmd: string): { configFile: string; select: { index: number } | { ids: number[] } } {
  const configFile = option(rest, 'config');
  if (!configFile) throw new CommandError(`command "${cmd}" needs --config=<uploaded file>`);
  const index = option(rest, 'target_node_index');
  const ids = option(rest, 'install_ids') ?? option(rest, 'uninstall_ids');
  if (index !== undefined) {
    if (!/^\d+$/.test(index)) throw new CommandError(`command "${cmd}": --target_node_index must be a number`);
    return { configFile, select: { index: Number(index) } };
  }
  if (ids !== undefined) {
    const list = ids.split(',').map((s) => s.trim());
    if (!list.every((s) => /^\d+$/.test(s))) throw new CommandError(`command "${cmd}": --install_ids must be numbers separated by commas`);
    return { configFile, select: { ids: list.map(Number) } };
  }
  return { configFile, select: { index: 0 } };
}

/**
 * Turns a `*_cmd` request into a node command. `allowList` holds absolute program paths the
 * operator allows beyond the recognised commands.
 */
export function parseCommand(jobType: CommandJobType, cmd: string, allowList: string[] = []): NodeCommand {
  const words = splitWords(cmd);
  if (!words) throw new CommandError(`command "${cmd}" has unbalanced quotes`);
  if (words.length === 0) throw new CommandError('cmd is empty');
  const { script, rest } = scriptWords(words);
  const name = script.split('/').pop() ?? '';
  const recognised = (): NodeCommand | null => {
    if (jobType === 'mysql_cmd') {
      const m = /^(start|stop|restart)mysql\.sh$/.exec(name);
      if (m) {
        if (rest.length !== 1) return null;
        return { action: m[1]!.toUpperCase() as 'START', port: port(rest[0], cmd) };
      }
      if (!rest.every((w) => PLAIN_WORD.test(w))) return null;
      if (/^install[-_]mysql\.py$/.test(name)) return { action: 'CREATE', ...configSelection(rest, cmd) };
      if (/^uninstall[-_]mysql\.py$/.test(name)) return { action: 'DROP', ...configSelection(rest, cmd) };
    }
    if (jobType === 'pgsql_cmd') {
      const m = /^(start|stop|restart)_pg\.py$/.exec(name);
      if (m) {
        // Exactly the port: `port=5401`, `--port=5401`, `--port 5401` or `5401`, nothing after it.
        const given = rest.length === 1 ? rest[0]!.replace(/^(--)?port=/, '') : rest.length === 2 && rest[0] === '--port' ? rest[1] : undefined;
        if (given === undefined) return null;
        return { action: m[1]!.toUpperCase() as 'START', port: port(given, cmd) };
      }
      if (!rest.every((w) => PLAIN_WORD.test(w))) return null;
      if (/^install[-_]pg\.py$/.test(name)) return { action: 'CREATE', ...configSelection(rest, cmd) };
      if (/^uninstall[-_]pg\.py$/.test(name)) return { action: 'DROP', ...configSelection(rest, cmd) };
    }
    if (jobType === 'cluster_cmd' && name === 'cluster_mgr_safe' && rest.every((w) => PLAIN_WORD.test(w))) {
      return { action: 'CLUSTER_MGR', verb: rest.includes('--stop') ? 'STOP' : 'START' };
    }
    return null;
  };
  // The whole line, not its words: a line break separates words but is a command separator to sh.
  if (!SHELL_META.test(cmd)) {
    const r = recognised();
    if (r) return r;
  }
  const program = words[0]!;
  if (allowList.includes(program)) {
    return { action: 'ALLOWED', program, args: words.slice(1) };
  }
  throw new CommandError(`command "${cmd}" is not a recognised ${jobType} command and its program is not in the command allow-list`);
}

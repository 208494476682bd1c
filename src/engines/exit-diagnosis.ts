// Why did a server exit? Read the end of its logs and name the cause an operator can act on.
// The classification is a pure function over log lines; the file reading is injected.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { ExitCause, ExitDiagnosis } from './engine.ts';
import { tailOfOpenFile } from './node-files.ts';

export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

/** Reads up to maxLines last lines of a file; [] when it does not exist. */
export type TailReader = (file: string, maxLines: number) => Promise<string[]>;

export const TAIL_LINES = 30;

/** Thrown by waitReady when a server does not become ready; `reason` tells the supervisor what to do next. */
export class StartFailed extends Error {
  constructor(
    message: string,
    readonly reason: 'exited' | 'timeout' | 'rejected_credentials',
  ) {
    super(message);
    this.name = 'StartFailed';
  }
}

interface Rule {
  cause: ExitCause;
  pattern: RegExp;
  detail: (match: RegExpExecArray, line: string) => string;
}

const evidence = (line: string) => `"${stripLogPrefix(line)}"`;

// Ordered by how specific the evidence is; within one run the earliest matching line wins,
// because the first error is the cause and the later ones are its consequences.
const RULES: Rule[] = [
  {
    cause: 'bad_config_option',
    pattern: /unknown (variable|option) '([^']+)'/i,
    detail: (m) => `the server rejected the unknown ${m[1].toLowerCase()} '${m[2]}' in its configuration`,
  },
  {
    cause: 'bad_config_option',
    pattern: /unrecognized configuration parameter "([^"]+)"/,
    detail: (m) => `the server rejected the unrecognized configuration parameter "${m[1]}"`,
  },
  {
    cause: 'bad_config_option',
    pattern: /invalid value for parameter "([^"]+)": "([^"]*)"/,
    detail: (m) => `the server rejected the value "${m[2]}" of configuration parameter "${m[1]}"`,
  },
  {
    cause: 'bad_config_option',
    pattern: /(?:unknown|unsupported) value '([^']*)' for option '([^']+)'|option '([^']+)' requires an argument/i,
    detail: (_m, line) => `the server rejected an option value: ${evidence(line)}`,
  },
  {
    cause: 'port_in_use',
    pattern: /Address already in use|Can't start server: Bind on TCP\/IP port|could not bind IPv[46] address/,
    detail: (_m, line) => `the server's port is already in use by another process: ${evidence(line)}`,
  },
  {
    cause: 'data_dir_locked',
    pattern:
      /Unable to lock \S*ibdata1|Can't lock aria control file|lock file "postmaster\.pid" already exists|another (?:postmaster|server) .*running in data directory/i,
    detail: (_m, line) => `another server is using the data dir: ${evidence(line)}`,
  },
  {
    cause: 'disk_full',
    pattern: /No space left on device|\b(?:errno|Errcode|OS error):? 28\b/i,
    detail: (_m, line) => `the disk is full: ${evidence(line)}`,
  },
  {
    cause: 'permission',
    pattern: /Permission denied|\b(?:errno|Errcode|OS error):? 13\b/i,
    detail: (_m, line) => `the server's user lacks permission on a file: ${evidence(line)}`,
  },
];

// A run starts at node-mgr's launch marker or the server's own start banner; a previous run ended
// at its shutdown line. Lines before the last such boundary belong to older runs.
const RUN_START = /^--- node-mgr .*launching|\[Note\] Starting MariaDB|starting as process \d+|LOG:\s+starting PostgreSQL/;
const RUN_END = /Shutdown complete|database system is shut down/;

/** The lines of the latest run in an (appended-to) log. */
export function currentRun(lines: string[]): string[] {
  // The run that just ended may close with its own shutdown line (PostgreSQL does after a failed start).
  let end = lines.length;
  while (end > 0 && RUN_END.test(lines[end - 1])) end--;
  for (let i = end - 1; i >= 0; i--) {
    if (RUN_START.test(lines[i])) return lines.slice(i);
    if (RUN_END.test(lines[i])) return lines.slice(i + 1);
  }
  return lines;
}

/** Removes the timestamp / thread / pid prefix MariaDB and PostgreSQL put before a message. */
export function stripLogPrefix(line: string): string {
  return line
    .replace(/^\d{4}-\d\d-\d\d[ T]+[\d:.]+(?:\s+[A-Z]{2,5})?\s+(?:\[\d+\]|\d+)\s+/, '')
    .trim();
}

const ERRORISH = /\[ERROR\]|FATAL:|PANIC:|ERROR:|\berror\b/i;

/**
 * Classifies an exit from the latest run's log lines (files in the order given, each already
 * cut to its latest run). Log evidence wins over the exit signal: a SIGABRT after
 * "No space left on device" is a full disk.
 */
export function classifyExit(runLines: string[], exit: ExitStatus, logTail: string[] = runLines): ExitDiagnosis {
  const tail = logTail.slice(-TAIL_LINES);
  for (const line of runLines) {
    for (const rule of RULES) {
      const m = rule.pattern.exec(line);
      if (m) return { cause: rule.cause, detail: rule.detail(m, line), logTail: tail };
    }
  }
  if (exit.signal) {
    return { cause: 'killed_by_signal', detail: `the server was killed by ${exit.signal}`, logTail: tail };
  }
  const lastError = [...runLines].reverse().find((l) => ERRORISH.test(l));
  const how = exit.code === null ? 'the server exited' : `the server exited with code ${exit.code}`;
  return {
    cause: 'unknown',
    detail: lastError ? `${how}; last error in its log: ${evidence(lastError)}` : `${how} and its log names no cause`,
    logTail: tail,
  };
}

/** Reads the tails of the given logs (most important first) and classifies the exit. */
export async function diagnoseFromLogs(
  files: string[],
  exit: ExitStatus,
  readTail: TailReader = readLogTail,
): Promise<ExitDiagnosis> {
  const runLines: string[] = [];
  const tails: string[] = [];
  // Read together (a crash's restart waits for the diagnosis), used in the order given.
  const read = await Promise.all(files.map((file) => readTail(file, TAIL_LINES * 4)));
  files.forEach((file, i) => {
    const lines = read[i]!;
    runLines.push(...currentRun(lines));
    tails.push(...lines.slice(-TAIL_LINES).map((l) => `${file}: ${l}`));
  });
  return classifyExit(runLines, exit, runLines.length ? runLines : tails);
}

/** Last maxLines lines of a file (read from its last 64 KiB); [] when the file does not exist. */
export async function readLogTail(file: string, maxLines: number): Promise<string[]> {
  let handle;
  try {
    // Never through a link: the log's dir belongs to the server's account (see node-files.ts).
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return [];
  }
  try {
    const st = await handle.stat();
    if (!st.isFile() || st.nlink !== 1) return [];
    return await tailOfOpenFile(handle, st.size, maxLines);
  } finally {
    await handle.close();
  }
}

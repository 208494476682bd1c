// node-mgr's own log: JSON lines for journald and log shippers, readable lines on a terminal.
import pino, { type Logger } from 'pino';
import { LOGGER_OPTIONS } from '../daemon.ts';

import type { LogOptions } from './log-options.ts';

export type { LogOptions };

/** `auto` is pretty when stdout is a terminal and JSON otherwise (a pipe, a file, journald). */
export async function createLogger(opts: LogOptions): Promise<Logger> {
  const level = opts.logLevel ?? 'info';
  const format = opts.logFormat ?? 'auto';
  const readable = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (!readable) return pino({ ...LOGGER_OPTIONS, level });
  // Loaded only for a terminal: a service's start does not pay for it.
  const { default: pretty } = await import('pino-pretty');
  // In-process and synchronous: a worker-thread transport could lose the last lines at exit.
  const stream = pretty({ colorize: process.stdout.isTTY === true && !process.env.NO_COLOR, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name' });
  return pino({ ...LOGGER_OPTIONS, level }, stream);
}

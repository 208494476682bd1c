// GET /v1/nodes/:port/log: a node's server logs for `node-mgr logs` (tail, then follow by offset).
// Files are opened the way node-files.ts opens everything below a node dir: never through a link.
import type { FastifyInstance } from 'fastify';
import { constants } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { HttpError } from './errors.ts';
import { errorSchema, portParams } from './schemas.ts';
import { openPlainFile, readNodeLogTail, withParentDir } from '../engines/node-files.ts';
import { redact } from '../engines/run-as-node.ts';

/** One reply carries at most this much of a followed log; the caller asks again from the new offset. */
const MAX_CHUNK = 1024 * 1024;
/** Rotated copies (server.log.1, error.log.2.gz) are not the log being written now. */
const ROTATED = /\.\d+(\.gz)?$/;

export const logReplySchema = {
  type: 'object',
  required: ['file', 'files', 'size', 'text'],
  properties: {
    file: { type: 'string', description: 'the file read, a name in the node\'s log/ dir' },
    files: { type: 'array', items: { type: 'string' }, description: 'every log file of the node' },
    size: { type: 'integer', description: 'the file\'s size: the offset to follow from' },
    rotated: { type: 'boolean', description: 'the file shrank below the asked offset (rotated): text is from its start' },
    text: { type: 'string' },
  },
} as const;

interface LogQuery {
  file?: string;
  lines?: number;
  offset?: number;
}

export async function logRoutes(app: FastifyInstance): Promise<void> {
  const { supervisor } = app.services;

  app.get<{ Params: { port: number }; Querystring: LogQuery }>(
    '/nodes/:port/log',
    {
      config: { access: 'read' },
      schema: {
        summary: "A node's server log: the last `lines` lines, or everything after `offset` (follow)",
        operationId: 'getNodeLog',
        tags: ['nodes'],
        params: portParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            file: { type: 'string', pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*$', description: 'default: the log the server wrote last' },
            lines: { type: 'integer', minimum: 1, maximum: 5000, default: 100 },
            offset: { type: 'integer', minimum: 0 },
          },
        },
        response: { 200: logReplySchema, 404: errorSchema },
      },
    },
    async (req) => {
      const view = supervisor.byPort(req.params.port);
      if (!view) throw new HttpError(404, `no node on port ${req.params.port} on this host`);
      const spec = supervisor.spec(view.id)!;
      const files = await logFiles(spec.logDir);
      const file = req.query.file ?? newest(files)?.name;
      if (!file || !files.some((f) => f.name === file)) {
        throw new HttpError(404, file ? `node ${view.id} has no log file ${file}; it has: ${files.map((f) => f.name).join(', ') || 'none'}` : `node ${view.id} has no log file yet`);
      }
      const full = path.join(spec.logDir, file);
      const names = files.map((f) => f.name).sort();
      const clean = (text: string) => (spec.password ? redact(text, spec.password) : text);
      if (req.query.offset === undefined) {
        const lines = await readNodeLogTail(spec, full, req.query.lines ?? 100);
        const size = files.find((f) => f.name === file)!.size;
        return { file, files: names, size, text: clean(lines.map((l) => `${l}\n`).join('')) };
      }
      const chunk = await readFrom(spec, full, req.query.offset);
      return { file, files: names, size: chunk.end, rotated: chunk.rotated, text: clean(chunk.text) };
    },
  );
}

async function logFiles(dir: string): Promise<Array<{ name: string; size: number; mtimeMs: number }>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const files = await Promise.all(
    names.map(async (name) => {
      const st = await lstat(path.join(dir, name)).catch(() => null);
      return st?.isFile() ? { name, size: st.size, mtimeMs: st.mtimeMs } : null;
    }),
  );
  return files.filter((f): f is NonNullable<typeof f> => f !== null);
}

function newest<T extends { name: string; mtimeMs: number }>(files: T[]): T | undefined {
  return files.filter((f) => !ROTATED.test(f.name)).sort((a, b) => b.mtimeMs - a.mtimeMs)[0];
}

/** The bytes after `offset` (at most MAX_CHUNK, cut after the last whole line); from 0 when the file shrank. */
async function readFrom(spec: Parameters<typeof withParentDir>[0], file: string, offset: number): Promise<{ text: string; end: number; rotated: boolean }> {
  return withParentDir(spec, file, async (dir, name) => {
    const handle = await openPlainFile(dir, name, constants.O_RDONLY);
    if (!handle) return { text: '', end: offset, rotated: false };
    try {
      const { size } = await handle.stat();
      const rotated = size < offset;
      const start = rotated ? 0 : offset;
      const buf = Buffer.alloc(Math.min(size - start, MAX_CHUNK));
      await handle.read(buf, 0, buf.length, start);
      const lastNewline = buf.lastIndexOf(0x0a);
      const whole = lastNewline === -1 ? (buf.length === MAX_CHUNK ? buf : Buffer.alloc(0)) : buf.subarray(0, lastNewline + 1);
      return { text: whole.toString('utf8'), end: start + whole.length, rotated };
    } finally {
      await handle.close();
    }
  });
}

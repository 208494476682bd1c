// PROTOCOL §7: multipart upload of install configs. The first part `parameters` names the
// file_type; the file part is saved under a temporary name and renamed to its base name only once
// the whole request has been read without error: a request that fails leaves no file behind.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FastifyRequest } from 'fastify';
import { uploadDirFor } from '../jobs/node-commands.ts';
import { badRequest, HttpError } from './errors.ts';
import type { HttpDeps } from './deps.ts';

const FILE_TYPES = new Set(['mysql', 'pgsql', 'cluster']);

/** Base names only: any `/`, `\`, `..`, NUL, control character or empty name is refused. */
export function checkUploadName(name: string | undefined): string {
  if (!name) throw badRequest('the uploaded file has no filename');
  if (name === '.' || name.includes('/') || name.includes('\\') || name.includes('..') || /[\x00-\x1f]/.test(name) || name.length > 255) {
    throw badRequest(`upload filename ${JSON.stringify(name).slice(0, 100)} must be a plain base name`);
  }
  return name;
}

/**
 * What busboy throws for a malformed body (no boundary, a part header it cannot read, the end of
 * the body inside a part) is the sender's fault: 400. Our own refusals, fastify's limits (413) and
 * file-system errors keep their meaning.
 */
function asUploadError(err: unknown): unknown {
  const e = err as { statusCode?: unknown; syscall?: unknown; message?: unknown };
  if (err instanceof HttpError || typeof e.statusCode === 'number' || typeof e.syscall === 'string') return err;
  return badRequest(`the multipart body is malformed: ${String(e.message ?? err)}`);
}

export async function handleUpload(req: FastifyRequest, deps: HttpDeps): Promise<{ result: 'succeed'; path: string }> {
  try {
    return await receiveUpload(req, deps);
  } catch (err) {
    throw asUploadError(err);
  }
}

async function receiveUpload(req: FastifyRequest, deps: HttpDeps): Promise<{ result: 'succeed'; path: string }> {
  let fileType: string | null = null;
  // The file received so far, still under its temp name until the request has been read in full.
  let received: { temp: string; final: string } | null = null;
  try {
    for await (const part of req.parts({ limits: { fileSize: deps.config.security.uploadLimitBytes, files: 1, fields: 4 } })) {
      if (part.type === 'field') {
        if (part.fieldname !== 'parameters') continue;
        let params: unknown;
        try {
          params = JSON.parse(String(part.value));
        } catch {
          throw badRequest('multipart field "parameters" is not valid JSON');
        }
        const ft = (params as { file_type?: unknown } | null)?.file_type;
        if (typeof ft !== 'string' || !FILE_TYPES.has(ft)) throw badRequest('parameters.file_type must be "mysql", "pgsql" or "cluster"');
        if (fileType !== null && ft !== fileType) throw badRequest('multipart part "parameters" is given twice with different file types');
        fileType = ft;
        continue;
      }
      if (!fileType) {
        part.file.resume();
        throw badRequest('multipart part "parameters" must come before the file');
      }
      // A body that ends inside the file part errors the part's stream, maybe before we start reading
      // it (the mkdir below yields): pipeline() over a stream already destroyed would wait forever,
      // holding the request and the temp file's fd.
      const read = { error: null as Error | null };
      part.file.once('error', (err) => (read.error = err));
      const cutShort = () => badRequest(`the multipart body ends inside the file part: ${read.error?.message ?? 'the part was cut short'}`);
      const name = checkUploadName(part.filename);
      const dir = uploadDirFor(deps.config, fileType);
      await mkdir(dir, { recursive: true });
      if (read.error || part.file.destroyed) throw cutShort();
      // Unique per upload: two uploads of one name in the same millisecond must not share a temp file.
      const temp = path.join(dir, `.${name}.${process.pid}.${Date.now()}.${randomBytes(4).toString('hex')}.part`);
      received = { temp, final: path.join(dir, name) };
      await pipeline(part.file, createWriteStream(temp, { flags: 'wx', mode: 0o640 })).catch((err) => {
        // A failed write (ENOSPC…) also errors the part's stream: the file system's error wins.
        throw read.error && typeof (err as { syscall?: unknown }).syscall !== 'string' ? cutShort() : err;
      });
      if (part.file.truncated) throw new HttpError(413, `uploaded file is larger than ${deps.config.security.uploadLimitBytes} bytes`);
    }
    if (!fileType) throw badRequest('multipart body has no "parameters" part');
    if (!received) throw badRequest('multipart body has no file part');
    // Only now, with every part read (a second file, a bad field or a cut body after the file would
    // have thrown above), does the file take its name.
    await rename(received.temp, received.final);
  } catch (err) {
    if (received) await unlink(received.temp).catch(() => {});
    throw err;
  }
  req.log.info({ fileType, path: received.final }, 'install config uploaded');
  return { result: 'succeed', path: received.final };
}

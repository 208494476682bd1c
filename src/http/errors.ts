// One error shape on the wire: {"result":"error","info":"<one sentence>"} with a meaningful status.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { errorKind, type ErrorKind } from '../error-kind.ts';

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const badRequest = (m: string) => new HttpError(400, m);
export const notFound = (m: string) => new HttpError(404, m);
export const conflict = (m: string) => new HttpError(409, m);

/**
 * The one place a domain error's kind (error-kind.ts) becomes a status (PROTOCOL §1). Its message
 * is already the sentence for the caller, also for `internal`: the layer that threw it wrote it so.
 */
const STATUS_OF_KIND: Record<ErrorKind, number> = {
  invalid: 400,
  not_found: 404,
  conflict: 409,
  unavailable: 503,
  internal: 500,
};

export function errorReply(err: unknown): { status: number; info: string } {
  const e = err as Partial<FastifyError> & { message?: string };
  if (err instanceof HttpError) return { status: err.statusCode, info: err.message };
  const kind = errorKind(err);
  if (kind) return { status: STATUS_OF_KIND[kind], info: e.message ?? '' };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
    case 'FST_FILES_LIMIT':
    case 'FST_PARTS_LIMIT':
      return { status: 413, info: 'request body is too large' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, info: 'request body is empty; expected a JSON object' };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: 400, info: 'Content-Length does not match the body' };
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, info: 'unsupported Content-Type' };
  }
  // A file write of the request (an upload) hit a full or read-only disk: the server's fault, said so.
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return { status: 507, info: `no space left on the disk: ${e.message}` };
  if (e.code === 'EROFS') return { status: 503, info: `the file system is read-only: ${e.message}` };
  if (e.validation) return { status: 400, info: `invalid request: ${e.message}` };
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status !== 500 && status >= 400) return { status, info: e.message || 'bad request' };
  return { status: 500, info: `internal error: ${e.message ?? String(err)}` };
}

export function errorHandler(this: unknown, err: unknown, req: FastifyRequest, reply: FastifyReply): void {
  const { status, info } = errorReply(err);
  if (status === 500 || status > 501) req.log.error({ err }, "request failed");
  else req.log.warn({ status, info }, 'request refused');
  if (status === 413 && !req.raw.complete) lingerBeforeClose(req.raw.socket);
  void reply.code(status).type('application/json').send({ result: 'error', info: oneLine(info) });
}

/** How long, and for how many more bytes, a socket closed after an early reply keeps reading. */
export const LINGER = { ms: 2_000, bytes: 16 * 1024 * 1024 };
const lingering = new WeakSet<Socket>();

/**
 * A reply sent before the request body was read (a 413 for a declared size over the limit) is
 * followed by a close, with the client still sending the body. Closed at once, the socket has
 * unread bytes, so the kernel answers with a reset, and a reset can destroy the reply before the
 * client reads it: the client sees EPIPE or ECONNRESET instead of the 413. So such a socket closes
 * the way servers linger: our side ends after the reply (FIN), what the client still sends is read
 * and dropped, and the socket is destroyed once the client closes, or after LINGER.ms or
 * LINGER.bytes, whichever comes first.
 */
export function lingerBeforeClose(socket: Socket): void {
  if (lingering.has(socket) || socket.destroyed) return;
  lingering.add(socket);
  // Node's HTTP server closes a `Connection: close` socket with destroySoon() once the reply is out.
  socket.destroySoon = () => {
    let dropped = 0;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
    };
    const timer = setTimeout(done, LINGER.ms);
    timer.unref();
    socket.on('data', (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > LINGER.bytes) done();
    });
    socket.once('end', done);
    socket.end();
    socket.resume();
  };
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, '; ').slice(0, 2000);
}

/**
 * Node's HTTP parser refused the request before fastify saw it (bad request line, header too
 * large, smuggling-shaped framing): answer in our shape, then close, as Node itself would.
 */
export function clientErrorReply(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, info] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'the request did not arrive in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'the request headers are too large']
        : [400, `the request is not valid HTTP/1.x (${err.code ?? 'parse error'})`];
  if (socket.writable) socket.write(rawErrorResponse(status, info));
  socket.destroy(err);
}

/**
 * A whole error reply as the bytes to write in one piece, for replies made outside fastify (the
 * HTTP parser's, the connection gate's). Spelled as the original clients search for it
 * (PROTOCOL §1): `Content-Length:` exactly, status line, headers and body in one write.
 */
export function rawErrorResponse(status: number, info: string): string {
  const body = JSON.stringify({ result: 'error', info: oneLine(info) });
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

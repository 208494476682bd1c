// The health probe of a program with an http:// health URL, on one kept-alive connection: a
// probe is then one request written and one answer read, where a connection per probe cost the
// TCP handshake and teardown on both sides (about three quarters of node-mgr's idle CPU with 200
// cluster_mgr nodes). A server may close an idle connection whenever it likes: the next probe
// connects again, and a request written to a kept connection that the server was closing in the
// meantime is sent once more on a fresh one, as HTTP clients do for idempotent requests.
import net from 'node:net';
import type { MonitorSession } from './engine.ts';

/** Head and body of a health answer past this are not a health answer. */
const MAX_ANSWER_BYTES = 64 * 1024;

interface Answer {
  status: number;
  /** The connection may carry the next request: the body was read to its stated length and the server keeps it open. */
  reusable: boolean;
}

/** A kept connection failed before a byte of the answer came back: the server had closed it while idle. */
class StaleConnection extends Error {}

/**
 * Where a chunked body ends in `body` (the bytes after the head): the offset past its last chunk
 * and trailers, null while it is incomplete, -1 when it is not chunked encoding.
 */
export function chunkedBodyEnd(body: string): number | null {
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) return body.length - at > 1024 ? -1 : null;
    const size = /^([0-9a-fA-F]{1,8})(?:;[^\r\n]*)?$/.exec(body.slice(at, eol));
    if (!size) return -1;
    const n = parseInt(size[1], 16);
    if (n === 0) {
      // Trailers, if any, then the empty line.
      let line = eol + 2;
      for (;;) {
        const next = body.indexOf('\r\n', line);
        if (next < 0) return null;
        if (next === line) return next + 2;
        line = next + 2;
      }
    }
    const dataEnd = eol + 2 + n;
    if (body.length < dataEnd + 2) return null;
    if (body.slice(dataEnd, dataEnd + 2) !== '\r\n') return -1;
    at = dataEnd + 2;
  }
}

/** Parses a complete answer head: status, body length if stated, and whether the server keeps the connection. */
function parseHead(head: string): { status: number; length: number | null; chunked: boolean; keepAlive: boolean } | null {
  const lines = head.split('\r\n');
  const statusLine = /^HTTP\/(\d)\.(\d) (\d{3})\b/.exec(lines[0]);
  if (!statusLine) return null;
  let length: number | null = null;
  let chunked = false;
  let connection = '';
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length' && /^\d+$/.test(value)) length = Number(value);
    else if (name === 'transfer-encoding') chunked = /\bchunked\s*$/i.test(value);
    else if (name === 'connection') connection = value.toLowerCase();
  }
  const http11 = statusLine[1] === '1' && statusLine[2] === '1';
  const keepAlive = http11 ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
  return { status: Number(statusLine[3]), length: chunked ? null : length, chunked, keepAlive };
}

/**
 * One GET on socket, read to the end of the answer when its length is stated or it is chunked
 * (only then can the connection carry the next one). Rejects with StaleConnection when the connection ends or fails
 * before any byte of the answer.
 */
function exchange(socket: net.Socket, request: string): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    let received = '';
    let head: ReturnType<typeof parseHead> = null;
    const finish = (err: Error | null, answer?: Answer): void => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      if (err) reject(err);
      else resolve(answer!);
    };
    const onData = (chunk: string): void => {
      received += chunk;
      if (!head) {
        const end = received.indexOf('\r\n\r\n');
        if (end < 0) {
          if (received.length > MAX_ANSWER_BYTES || (received.length >= 12 && !received.startsWith('HTTP/'))) finish(new Error('the answer is not HTTP'));
          return;
        }
        head = parseHead(received.slice(0, end));
        if (!head) return finish(new Error('the answer is not HTTP'));
        received = received.slice(end + 4);
        // No stated length (a body until close): the status is the answer; the connection is not reused.
        if (head.length === null && !head.chunked) return finish(null, { status: head.status, reusable: false });
      }
      const bodyEnd = head.chunked ? chunkedBodyEnd(received) : received.length >= head.length! ? head.length! : null;
      if (bodyEnd === -1 || (bodyEnd === null && received.length > MAX_ANSWER_BYTES)) finish(null, { status: head.status, reusable: false });
      else if (bodyEnd !== null) finish(null, { status: head.status, reusable: head.keepAlive && received.length === bodyEnd });
    };
    const onEnd = (): void => {
      if (!received) return finish(new StaleConnection('the connection closed without an answer'));
      // A status line and then the end (an answer delimited by the close): the status still counts.
      const partial = head ? null : parseHead(received);
      if (!partial) return finish(new Error('the connection closed in the middle of the answer'));
      finish(null, { status: partial.status, reusable: false });
    };
    const onError = (err: Error): void => finish(received ? err : new StaleConnection(err.message));
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onError);
    socket.write(request);
  });
}

function connectTo(url: URL): net.Socket {
  const socket = net.connect({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80) });
  socket.setEncoding('latin1');
  return socket;
}

function getRequest(url: URL, close: boolean): string {
  return `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;
}

/**
 * One GET of `url` (http://) on a connection of its own, closed after the answer: the answer's
 * status. release() drops the connection at once (a timeout, an abort).
 */
export function getStatusOnce(url: URL): { status: Promise<number>; release(): void } {
  const socket = connectTo(url);
  // An error after the answer (or after release) has no one to tell.
  socket.on('error', () => {});
  const status = exchange(socket, getRequest(url, true)).then(
    (answer) => {
      socket.destroy();
      return answer.status;
    },
    (err: Error) => {
      socket.destroy();
      throw err instanceof StaleConnection ? new Error(err.message) : err;
    },
  );
  return { status, release: () => socket.destroy() };
}

/**
 * A health session on `url` (http://): check() sends a GET and judges the status (any answer
 * below 500 means the program is up, as for the one-shot probe). The server closing the idle
 * connection is not a loss: only the program's exit ends it, and that is watched elsewhere.
 */
export function httpHealthSession(url: URL, label: string): MonitorSession {
  const request = getRequest(url, false);
  let socket: net.Socket | null = null;
  let ended = false;

  const connect = (): net.Socket => {
    const s = connectTo(url);
    s.setNoDelay(true);
    // An idle connection's error or close only means the next probe connects again.
    const forget = (): void => {
      if (socket === s) socket = null;
    };
    s.on('error', forget);
    s.on('close', forget);
    socket = s;
    return s;
  };

  const attempt = async (): Promise<Answer> => {
    const kept = socket;
    if (kept && kept.writable && !kept.destroyed) {
      try {
        return await exchange(kept, request);
      } catch (err) {
        kept.destroy();
        if (!(err instanceof StaleConnection)) throw err;
      }
    }
    return exchange(connect(), request);
  };

  return {
    // Reconnecting at intervals would prove nothing: there is no login on an HTTP connection.
    renewable: false,
    check(timeoutMs) {
      if (ended) return Promise.reject(new Error(`${label} failed: the health session is closed`));
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          socket?.destroy();
          reject(new Error(`${label} failed: no answer within ${timeoutMs} ms`));
        }, timeoutMs);
        attempt().then(
          (answer) => {
            clearTimeout(timer);
            if (!answer.reusable) socket?.destroy();
            if (answer.status >= 500) reject(new Error(`${label} failed: answered HTTP ${answer.status}`));
            else resolve();
          },
          (err: unknown) => {
            clearTimeout(timer);
            socket?.destroy();
            reject(new Error(`${label} failed: ${(err as Error).message}`));
          },
        );
      });
    },
    onLost() {
      // Never called: see above.
    },
    async close() {
      ended = true;
      socket?.end();
      socket?.destroy();
      socket = null;
    },
    destroy() {
      ended = true;
      socket?.destroy();
      socket = null;
    },
  };
}

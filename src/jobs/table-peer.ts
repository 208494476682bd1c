// The other host's node-mgr, as a table transfer's destination (PROTOCOL §6.4): a preflight call,
// then one streaming POST whose reply is the destination's import and verification.
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { TableTransferError, type ImportResult, type TableCondition } from './table-import.ts';
import { TABLE_STREAM_CONTENT_TYPE, type ChunkPool, type RemoteDestination, type SourceTable } from './table-stream.ts';
import type { ErrorKind } from '../error-kind.ts';

/**
 * What a peer's refusal says about the transfer, read from its HTTP status: this is the client
 * side of the peer's own edge (http/errors.ts), so it reads the statuses that edge answers with.
 */
const PEER_REFUSALS: Partial<Record<number, ErrorKind>> = { 400: 'invalid', 404: 'not_found', 409: 'conflict' };

export interface RecvPreflightBody {
  destination: RemoteDestination;
  table: SourceTable;
}

interface PeerReply {
  status: number;
  body: { result?: string; info?: string } & Record<string, unknown>;
}

export class PeerNodeMgr {
  constructor(
    /** e.g. http://10.0.0.6:9998 */
    readonly url: string,
    private readonly token: string | undefined,
    /** PEM of the CA that signed the peer's certificate (https URLs); the system's CAs when absent. */
    private readonly ca?: string,
  ) {}

  private request(route: string, opts: http.RequestOptions): http.ClientRequest {
    const url = new URL(route, this.url);
    return url.protocol === 'https:' ? https.request(url, { ...opts, ...(this.ca ? { ca: this.ca } : {}) }) : http.request(url, opts);
  }

  private headers(contentType: string): Record<string, string> {
    return { 'content-type': contentType, ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) };
  }

  private refusal(step: string, reply: PeerReply): TableTransferError {
    const info = reply.body.info ?? `HTTP ${reply.status}`;
    return new TableTransferError(step, `the destination's node-mgr (${this.url}) answered ${reply.status}: ${info}`, PEER_REFUSALS[reply.status] ?? 'internal');
  }

  /** One node of the peer (GET /v1/nodes/:port): null when the peer has none on that port. */
  async node(port: number, signal: AbortSignal): Promise<{ kind: string; role: string; cluster?: string; shard?: string } | null> {
    const req = this.request(`/v1/nodes/${port}`, { method: 'GET', headers: this.headers('application/json'), signal: AbortSignal.any([signal, AbortSignal.timeout(30_000)]) });
    const answered = replyOf(req);
    req.end();
    let reply: PeerReply;
    try {
      reply = await answered;
    } catch (err) {
      throw new Error(`cannot reach the node-mgr at ${this.url}: ${(err as Error).message}`);
    }
    if (reply.status === 404) return null;
    if (reply.status !== 200) throw new Error(`the node-mgr at ${this.url} answered ${reply.status}: ${String(reply.body.info ?? '')}`);
    return reply.body as unknown as { kind: string; role: string; cluster?: string; shard?: string };
  }

  /** Asks the destination whether it can take the table; changes nothing there. */
  async preflight(body: RecvPreflightBody, signal: AbortSignal): Promise<{ condition: TableCondition }> {
    let reply: PeerReply;
    try {
      const req = this.request('/v1/recv/table/preflight', {
        method: 'POST',
        headers: this.headers('application/json'),
        signal: AbortSignal.any([signal, AbortSignal.timeout(60_000)]),
      });
      const answered = replyOf(req);
      req.end(JSON.stringify(body));
      reply = await answered;
    } catch (err) {
      throw new TableTransferError('preflight', `cannot reach the destination's node-mgr at ${this.url}: ${(err as Error).message}`, 'internal');
    }
    if (reply.status !== 200) throw this.refusal('preflight', reply);
    return { condition: reply.body.condition as TableCondition };
  }

  /**
   * Opens the streaming POST. `send` resolves once the whole stream is handed to the kernel (the
   * source may unlock then) and rejects at once if the destination answers before that (it refused);
   * `result` is the destination's import and verification.
   */
  upload(signal: AbortSignal): { send(stream: AsyncIterable<Buffer>, pool?: ChunkPool): Promise<void>; result: Promise<ImportResult & { bytes: number }> } {
    const req = this.request('/v1/recv/table', { method: 'POST', headers: this.headers(TABLE_STREAM_CONTENT_TYPE), signal });
    let finished = false;
    req.once('finish', () => {
      finished = true;
    });
    const reply = replyOf(req);
    reply.catch(() => undefined);
    const result = reply.then(
      (r) => {
        if (r.status !== 200) throw this.refusal('importing on the destination', r);
        return r.body as unknown as ImportResult & { bytes: number };
      },
      (err: Error) => {
        throw new TableTransferError('importing on the destination', `the connection to the destination's node-mgr at ${this.url} failed: ${err.message}`, 'internal');
      },
    );
    result.catch(() => undefined);
    return {
      send: async (stream, pool) => {
        const sent = pump(stream, req, pool);
        sent.catch(() => undefined);
        try {
          // The destination answers before the end of the body only to refuse it.
          await Promise.race([sent, result.then(() => sent)]);
        } catch (err) {
          if (finished) throw err;
          req.destroy();
          // The refusal explains a broken pipe better than the pipe does: give it a moment to arrive.
          const answered = await Promise.race([reply.then((r) => r, () => null), sleep(1000).then(() => null)]);
          if (answered && answered.status !== 200) throw this.refusal('importing on the destination', answered);
          if (err instanceof TableTransferError) throw err;
          throw new TableTransferError('sending to the destination', `sending the table to ${this.url} failed: ${(err as Error).message}`, 'internal');
        }
      },
      result,
    };
  }
}

/**
 * Writes the stream into the request body, reading the next chunk while waiting for 'drain'; each
 * chunk goes back to `pool` once the socket has taken it (its write callback). Ends the body at
 * the end of the stream; on any failure the request is destroyed and the stream closed.
 */
async function pump(stream: AsyncIterable<Buffer>, req: http.ClientRequest, pool?: ChunkPool): Promise<void> {
  const gone = () => new Error('the connection closed before the stream was sent');
  const onClose = () => pool?.close(gone());
  req.once('close', onClose);
  const settled = (event: 'drain' | 'finish') =>
    new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        req.off(event, ok);
        req.off('error', done);
        req.off('close', closed);
        if (err) reject(err);
        else resolve();
      };
      const ok = () => done();
      const closed = () => done(req.errored ?? gone());
      req.once(event, ok);
      req.once('error', done);
      req.once('close', closed);
    });
  const it = stream[Symbol.asyncIterator]();
  try {
    let next = it.next();
    for (;;) {
      const { value: chunk, done } = await next;
      if (done) break;
      if (req.destroyed) throw req.errored ?? gone();
      const give = pool ? () => pool.give(chunk) : undefined;
      const room = req.write(chunk, give);
      // The next read runs while the socket drains.
      next = it.next();
      next.catch(() => undefined);
      if (!room) await settled('drain');
    }
    const finished = settled('finish');
    req.end();
    await finished;
  } catch (err) {
    req.destroy(err as Error);
    throw err;
  } finally {
    req.off('close', onClose);
    // A read waiting for a buffer fails now; the stream is closed once it is no longer running.
    pool?.close(gone());
    void it.return?.(undefined)?.catch(() => undefined);
  }
}

/** The reply to a request: its status and JSON body (or the start of a body that is not JSON). */
function replyOf(req: http.ClientRequest): Promise<PeerReply> {
  return new Promise<PeerReply>((resolve, reject) => {
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', reject);
      res.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: PeerReply['body'] = {};
        try {
          body = JSON.parse(text);
        } catch {
          body = { info: text.slice(0, 500) };
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
  });
}

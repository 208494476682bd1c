// HDFS as a backup store, through the WebHDFS REST API on the NameNode's HTTP port
// (https://hadoop.apache.org/docs/stable/hadoop-project-dist/hadoop-hdfs/WebHDFS.html).
// A small client on node:http rather than the `webhdfs` npm package: uploads stream with
// backpressure (multi-GB archives never sit in memory), every operation takes an AbortSignal,
// and HDFS RemoteExceptions become BackupStoreErrors that say what HDFS said.
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { PassThrough, Readable, addAbortSignal } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CountedSource,
  BackupStoreError,
  abortedError,
  checkOffset,
  checkRecordLine,
  checkStorePath,
  type BackupStore,
  type BackupStoreErrorCode,
  type ByteSource,
  type StoreEntry,
  type StoreStat,
} from './store.ts';

export interface WebHdfsOptions {
  /** The NameNode's HTTP address, `http://host:port` (a `/webhdfs/v1` suffix is accepted). */
  url: string;
  /** HDFS user for simple authentication (`user.name`). */
  user: string;
  /** Limit for a NameNode request (metadata operations, and the first step of CREATE/APPEND/OPEN). */
  requestTimeoutMs?: number;
  /** An upload or download with no bytes moving for this long fails. */
  idleTimeoutMs?: number;
}

/** HDFS refused the operation: `exception` is the Java exception's simple name. */
export class WebHdfsRemoteError extends BackupStoreError {
  constructor(
    code: BackupStoreErrorCode,
    message: string,
    path: string,
    readonly exception: string,
    readonly httpStatus: number,
  ) {
    super(code, message, path);
    this.name = 'WebHdfsRemoteError';
  }
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

interface HdfsFileStatus {
  pathSuffix: string;
  type: 'FILE' | 'DIRECTORY' | 'SYMLINK';
  length: number;
  modificationTime: number;
}

interface HdfsBlockLocation {
  offset: number;
  length: number;
  corrupt: boolean;
  names?: string[];
}

type Params = Record<string, string | number | boolean>;

// The NameNode answers these while a file's last block or lease is still settling (an append
// right after another one); trying again shortly succeeds.
const TRANSIENT = new Set(['AlreadyBeingCreatedException', 'RecoveryInProgressException', 'RetriableException', 'NotReplicatedYetException']);

export class WebHdfsStore implements BackupStore {
  readonly name = 'webhdfs' as const;
  readonly location: string;
  readonly #base: URL;
  readonly #user: string;
  readonly #requestTimeoutMs: number;
  readonly #idleTimeoutMs: number;

  constructor(opts: WebHdfsOptions) {
    let base: URL;
    try {
      base = new URL(opts.url);
    } catch {
      throw new BackupStoreError('invalid_argument', `webhdfs url ${JSON.stringify(opts.url)} is not a URL (expected http://namenode:9870)`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new BackupStoreError('invalid_argument', `webhdfs url ${opts.url} must be http:// or https://`);
    }
    const prefix = base.pathname.replace(/\/+$/, '');
    base.pathname = prefix.endsWith('/webhdfs/v1') ? prefix : `${prefix}/webhdfs/v1`;
    base.search = '';
    this.#base = base;
    this.#user = opts.user;
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.#idleTimeoutMs = opts.idleTimeoutMs ?? 120_000;
    this.location = `${base.origin}${base.pathname}`;
  }

  async list(dir: string): Promise<StoreEntry[]> {
    const p = checkStorePath(dir);
    const reply = await this.#namenode('GET', 'LISTSTATUS', p);
    const statuses = (json(reply, 'LISTSTATUS', p) as { FileStatuses: { FileStatus: HdfsFileStatus[] } }).FileStatuses.FileStatus;
    // LISTSTATUS of a file answers with the file itself, under an empty name.
    if (statuses.length === 1 && statuses[0]!.pathSuffix === '' && statuses[0]!.type === 'FILE') {
      throw new BackupStoreError('not_a_directory', `list ${p} (${this.location}): is a file, not a directory`, p);
    }
    return statuses
      .filter((s) => s.type === 'FILE' || s.type === 'DIRECTORY')
      .map((s) => ({ name: s.pathSuffix, ...toStat(s) }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(path: string): Promise<StoreStat | null> {
    const p = checkStorePath(path);
    try {
      const reply = await this.#namenode('GET', 'GETFILESTATUS', p);
      return toStat((json(reply, 'GETFILESTATUS', p) as { FileStatus: HdfsFileStatus }).FileStatus);
    } catch (err) {
      if (err instanceof BackupStoreError && err.code === 'not_found') return null;
      throw err;
    }
  }

  async write(path: string, source: ByteSource, opts: { signal?: AbortSignal } = {}): Promise<{ bytes: number }> {
    const p = checkStorePath(path);
    if (p === '/') throw new BackupStoreError('not_a_file', 'write /: the store root is a directory', p);
    const { signal } = opts;
    // Step 1 creates nothing: the NameNode only picks the DataNode to send the bytes to.
    const target = await this.#redirect('PUT', 'CREATE', p, { overwrite: true }, signal);
    const progress = { requestSent: false };
    try {
      return { bytes: await this.#upload('PUT', target, source, 'CREATE', p, signal, progress) };
    } catch (err) {
      // The DataNode creates the file when the request reaches it: remove what it got.
      throw progress.requestSent ? await this.#discardPartial(p, err) : err;
    }
  }

  async read(path: string, opts: { offset?: number; signal?: AbortSignal } = {}): Promise<Readable> {
    const p = checkStorePath(path);
    const offset = checkOffset(opts.offset, p);
    const { signal } = opts;
    let target: URL;
    try {
      target = await this.#redirect('GET', 'OPEN', p, offset ? { offset } : {}, signal);
    } catch (err) {
      // HDFS refuses an offset equal to the length; the store contract allows it (nothing left to read).
      if (err instanceof WebHdfsRemoteError && /Offset=\d+ out of the range/.test(err.message)) {
        const st = await this.stat(p);
        if (st?.type === 'file' && st.size === offset) return Readable.from([]);
        throw new BackupStoreError('invalid_argument', `read ${p}: offset ${offset} is beyond the end of the file (${st?.size ?? '?'} bytes)`, p);
      }
      throw err;
    }
    const res = await this.#send('GET', target, { op: 'OPEN', path: p, peer: 'DataNode', signal });
    if (res.statusCode !== 200) throw this.#remoteError('OPEN', p, await collect(res, res.statusCode ?? 0));

    // Re-emit a broken download as an error that names the file and the DataNode.
    const out = new PassThrough();
    let received = 0;
    res.on('data', (chunk: Buffer) => (received += chunk.byteLength));
    res.socket.setTimeout(this.#idleTimeoutMs, () => res.destroy(new Error(`no data for ${this.#idleTimeoutMs / 1000} s`)));
    res.once('error', (err) => {
      if (signal?.aborted) {
        out.destroy(abortedError('read', p, signal));
        return;
      }
      const broke = new BackupStoreError('failed', `read ${p}: download from DataNode ${target.host} broke after ${received} bytes: ${describe(err)}`, p, { cause: err });
      // A DataNode cannot tell a client mid-stream that a block failed its checksum: it drops the
      // connection, as a network fault would. The NameNode knows the difference (the reader
      // reported the block corrupt): ask it before calling this a network error.
      void this.#damagedBlockAt(p, (offset ?? 0) + received).then(
        (damaged) => out.destroy(damaged ?? broke),
        () => out.destroy(broke),
      );
    });
    out.once('close', () => res.destroy());
    res.pipe(out);
    return signal ? addAbortSignal(signal, out) : out;
  }

  /**
   * After a download broke at byte `at`: a BackupStoreError `damaged` when HDFS holds the block
   * there only in corrupt replicas, else null. The reader's report of a checksum failure may reach
   * the NameNode just after the connection dropped, hence the few looks.
   */
  async #damagedBlockAt(p: string, at: number): Promise<BackupStoreError | null> {
    for (const delay of [0, 300, 1000]) {
      await sleep(delay);
      const reply = await this.#namenode('GET', 'GETFILEBLOCKLOCATIONS', p, { offset: at, length: 1 });
      const blocks = (json(reply, 'GETFILEBLOCKLOCATIONS', p) as { BlockLocations?: { BlockLocation?: HdfsBlockLocation[] } }).BlockLocations?.BlockLocation ?? [];
      const bad = blocks.find((b) => b.corrupt && b.offset <= at && at < b.offset + b.length);
      if (bad) {
        const where = bad.names?.length ? ` on DataNode ${bad.names.join(', ')}` : '';
        return new BackupStoreError(
          'damaged',
          `read ${p}: HDFS refused the block at bytes ${bad.offset}–${bad.offset + bad.length} of the file${where}: its checksum failed ` +
            `(the stored bytes are damaged, e.g. by bit rot on the DataNode's disk) and no healthy replica is left. ` +
            `Run \`hdfs fsck ${p} -files -blocks -locations\` to see which replicas are bad; if a healthy replica shows up (a DataNode that was down), ` +
            `read again, else restore from another backup (GET /v1/backups lists them)`,
          p,
        );
      }
    }
    return null;
  }

  async rename(from: string, to: string): Promise<void> {
    const src = checkStorePath(from);
    const dst = checkStorePath(to);
    if (src === '/' || dst === '/') throw new BackupStoreError('invalid_path', `rename ${src} → ${dst}: cannot rename the store root`, src);
    // renameoptions=NONE makes the NameNode use rename2: it fails with a reason when `to`
    // exists, instead of answering `false` or moving `from` into an existing directory.
    const rename = () => this.#namenode('PUT', 'RENAME', src, { destination: dst, renameoptions: 'NONE' });
    try {
      await rename();
    } catch (err) {
      if (!(err instanceof WebHdfsRemoteError && /destination parent .* not found/.test(err.message))) throw err;
      await this.mkdirs(parentOf(dst));
      await rename();
    }
  }

  async appendLine(path: string, line: string): Promise<void> {
    const p = checkStorePath(path);
    const data = Buffer.from(`${checkRecordLine(line, p)}\n`);
    for (let attempt = 1; ; attempt++) {
      try {
        const target = await this.#redirect('POST', 'APPEND', p, {});
        await this.#upload('POST', target, [data], 'APPEND', p);
        return;
      } catch (err) {
        const retry = attempt < 8 && err instanceof WebHdfsRemoteError;
        if (retry && err.code === 'not_found') {
          // The first record creates the file, but never over one a concurrent writer just made.
          try {
            const target = await this.#redirect('PUT', 'CREATE', p, { overwrite: false });
            await this.#upload('PUT', target, [data], 'CREATE', p);
            return;
          } catch (createErr) {
            if (createErr instanceof WebHdfsRemoteError && createErr.code === 'already_exists') continue;
            throw createErr;
          }
        }
        if (retry && TRANSIENT.has(err.exception)) {
          await sleep(100 * attempt);
          continue;
        }
        throw err;
      }
    }
  }

  async delete(path: string): Promise<void> {
    const p = checkStorePath(path);
    if (p === '/') throw new BackupStoreError('invalid_path', 'delete /: refusing to delete the whole store', p);
    try {
      // `{"boolean": false}` means nothing was there: fine.
      await this.#namenode('DELETE', 'DELETE', p, { recursive: true });
    } catch (err) {
      // A path under a file: HDFS refuses to traverse it, but nothing is there either.
      if (err instanceof WebHdfsRemoteError && /\(is not a directory\)/.test(err.message)) return;
      throw err;
    }
  }

  async mkdirs(path: string): Promise<void> {
    const p = checkStorePath(path);
    const reply = await this.#namenode('PUT', 'MKDIRS', p);
    if ((json(reply, 'MKDIRS', p) as { boolean: boolean }).boolean !== true) {
      throw new BackupStoreError('failed', `mkdirs ${p} (${this.location}): the NameNode answered false`, p);
    }
  }

  /**
   * After a failed CREATE, deletes the partial file the DataNode began. Only a file is ever
   * deleted, and not when HDFS refused the create itself (then there is nothing to discard, and
   * what is at `p` — a directory, say — is not ours).
   */
  async #discardPartial(p: string, err: unknown): Promise<unknown> {
    if (err instanceof BackupStoreError && err.code !== 'failed' && err.code !== 'aborted') return err;
    if (err instanceof WebHdfsRemoteError && err.exception === 'AccessControlException') return err;
    try {
      // Nothing there yet: the DataNode may still be creating the file we cut off (it does so
      // on the request head, and closes it when it sees the connection gone). Look again.
      for (const delay of [0, 300, 1500]) {
        await sleep(delay);
        const st = await this.stat(p);
        if (st?.type === 'file') {
          await this.#namenode('DELETE', 'DELETE', p, { recursive: false });
          break;
        }
        if (st) break;
      }
      return err;
    } catch (deleteErr) {
      const first = err instanceof BackupStoreError ? err : new BackupStoreError('failed', `write ${p}: ${describe(err)}`, p, { cause: err });
      return new BackupStoreError(first.code, `${first.message}; the partial file ${p} could not be removed: ${describe(deleteErr)}`, p, { cause: err });
    }
  }

  /** A request to the NameNode with its JSON reply; errors become BackupStoreErrors. */
  async #namenode(method: string, op: string, p: string, params: Params = {}, signal?: AbortSignal): Promise<Reply> {
    const url = this.#url(p, op, params);
    const to = { op, path: p, peer: 'NameNode', signal };
    const res = await this.#send(method, url, to);
    const reply = await collect(res, res.statusCode ?? 0).catch((err: unknown) => {
      throw this.#transportError(to, url, err);
    });
    if (reply.status < 200 || reply.status >= 300) throw this.#remoteError(op, p, reply);
    return reply;
  }

  /** First step of CREATE, APPEND and OPEN: the NameNode redirects to a DataNode. */
  async #redirect(method: string, op: string, p: string, params: Params, signal?: AbortSignal): Promise<URL> {
    const url = this.#url(p, op, params);
    const to = { op, path: p, peer: 'NameNode', signal };
    const res = await this.#send(method, url, to);
    const reply = await collect(res, res.statusCode ?? 0).catch((err: unknown) => {
      throw this.#transportError(to, url, err);
    });
    const location = reply.status === 307 ? reply.headers.location : undefined;
    if (!location) throw this.#remoteError(op, p, reply);
    return new URL(location, url);
  }

  /**
   * Streams `source` to the DataNode the NameNode chose. Resolves with the byte count once the
   * DataNode confirms; a DataNode that fails, answers early or goes quiet rejects with why.
   */
  async #upload(
    method: 'PUT' | 'POST',
    target: URL,
    source: ByteSource,
    op: string,
    p: string,
    signal?: AbortSignal,
    progress = { requestSent: false },
  ): Promise<number> {
    if (signal?.aborted) throw abortedError(op.toLowerCase(), p, signal);
    const dataNode = target.host;
    const counted = new CountedSource(source);
    const req = (target.protocol === 'https:' ? https : http).request(target, {
      method,
      signal,
      agent: false, // a fresh connection: a long upload must not inherit a stale keep-alive socket
      headers: { 'content-type': 'application/octet-stream' },
    });
    req.setTimeout(this.#idleTimeoutMs, () => req.destroy(new Error(`no progress for ${this.#idleTimeoutMs / 1000} s`)));
    const reply = new Promise<Reply>((resolve, reject) => {
      req.once('response', (res) => {
        collect(res, res.statusCode ?? 0).then((r) => {
          resolve(r);
          // An answer before the body is all sent is a refusal: stop sending.
          if (!req.writableFinished) req.destroy(new Error(`DataNode answered HTTP ${r.status} before the upload ended`));
        }, reject);
      });
      req.once('error', reject);
    });
    reply.catch(() => undefined); // awaited below; an early rejection must not go unhandled

    let sendError: unknown;
    try {
      await pipeline(counted.stream, req);
    } catch (err) {
      sendError = err;
    }
    // Headers never handed to the socket: the DataNode cannot have created anything.
    progress.requestSent = req.headersSent;
    if (signal?.aborted) throw abortedError(op.toLowerCase(), p, signal);
    if (counted.error !== undefined) {
      throw new BackupStoreError('failed', `${op} ${p}: reading the data to upload failed after ${counted.bytes} bytes: ${describe(counted.error)}`, p, { cause: counted.error });
    }
    let answer: Reply | undefined;
    let replyError: unknown;
    try {
      // After a send failure, wait briefly for the DataNode's explanation (a RemoteException).
      answer = sendError === undefined ? await reply : await Promise.race([reply, sleep(2000).then(() => undefined)]);
    } catch (err) {
      replyError = err;
    }
    if (signal?.aborted) throw abortedError(op.toLowerCase(), p, signal);
    if (answer && (answer.status < 200 || answer.status >= 300)) {
      const remote = this.#remoteError(op, p, answer);
      throw new WebHdfsRemoteError(remote.code, `${remote.message} (DataNode ${dataNode}, after ${counted.bytes} bytes sent)`, p, remote.exception, remote.httpStatus);
    }
    const broken = sendError ?? replyError;
    if (broken !== undefined || !answer) {
      throw new BackupStoreError(
        'failed',
        `${op} ${p}: upload to DataNode ${dataNode} failed after ${counted.bytes} bytes sent: ${broken === undefined ? 'no answer' : describe(broken)}`,
        p,
        { cause: broken },
      );
    }
    return counted.bytes;
  }

  /** Sends a request without a body and resolves with the response head. */
  #send(method: string, url: URL, o: { op: string; path: string; peer: string; signal?: AbortSignal }): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = (url.protocol === 'https:' ? https : http).request(url, { method, signal: o.signal, headers: { 'content-length': '0' } });
      // A timer, not the socket timeout: the response body may then stream for hours.
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${this.#requestTimeoutMs / 1000} s`)), this.#requestTimeoutMs);
      req.once('response', (res) => {
        clearTimeout(timer);
        resolve(res);
      });
      req.once('error', (err) => {
        clearTimeout(timer);
        reject(this.#transportError(o, url, err));
      });
      req.end();
    });
  }

  #url(p: string, op: string, params: Params): URL {
    const url = new URL(this.#base);
    url.pathname += p.split('/').map(encodeURIComponent).join('/');
    url.searchParams.set('op', op);
    url.searchParams.set('user.name', this.#user);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, String(v));
    return url;
  }

  #transportError(o: { op: string; path: string; peer: string; signal?: AbortSignal }, url: URL, err: unknown): BackupStoreError {
    if (err instanceof BackupStoreError) return err;
    if (o.signal?.aborted) return abortedError(o.op.toLowerCase(), o.path, o.signal);
    return new BackupStoreError('failed', `${o.op} ${o.path}: cannot talk to the ${o.peer} at ${url.host} (${this.location}): ${describe(err)}`, o.path, { cause: err });
  }

  #remoteError(op: string, p: string, reply: Reply): WebHdfsRemoteError {
    let exception = `HTTP${reply.status}`;
    let message = reply.body.toString('utf8', 0, 500).trim() || `HTTP ${reply.status}`;
    try {
      const remote = (JSON.parse(reply.body.toString('utf8')) as { RemoteException?: { exception?: string; message?: string } }).RemoteException;
      if (remote?.exception) exception = remote.exception;
      // Some messages carry the server's Java stack trace after the first line.
      if (remote?.message) message = remote.message.split('\n\tat ')[0]!.trim();
    } catch {
      // Not JSON (a proxy's error page…): keep the start of the body.
    }
    const code = errorCode(exception, message);
    return new WebHdfsRemoteError(code, `webhdfs ${op} ${p} (${this.location}): ${exception}: ${message}`, p, exception, reply.status);
  }
}

/** The store's error code for an HDFS exception (its name and message). */
function errorCode(exception: string, message: string): BackupStoreErrorCode {
  switch (exception) {
    case 'FileNotFoundException':
      return /is not a file/.test(message) ? 'not_a_file' : 'not_found';
    case 'FileAlreadyExistsException':
      if (/as a directory|append to directory/.test(message)) return 'not_a_file';
      if (/is not a directory/.test(message)) return 'not_a_directory';
      return 'already_exists';
    case 'ParentNotDirectoryException':
      return 'not_a_directory';
    default:
      return 'failed';
  }
}

function parentOf(p: string): string {
  return p.slice(0, p.lastIndexOf('/')) || '/';
}

function toStat(s: HdfsFileStatus): StoreStat {
  return { size: s.type === 'FILE' ? s.length : 0, mtime: new Date(s.modificationTime), type: s.type === 'DIRECTORY' ? 'dir' : 'file' };
}

function json(reply: Reply, op: string, p: string): unknown {
  try {
    return JSON.parse(reply.body.toString('utf8'));
  } catch {
    throw new BackupStoreError('failed', `webhdfs ${op} ${p}: the NameNode's answer is not JSON: ${reply.body.toString('utf8', 0, 200)}`, p);
  }
}

async function collect(res: IncomingMessage, status: number): Promise<Reply> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return { status, headers: res.headers, body: Buffer.concat(chunks) };
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  return code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
}

// sha256 of whole files, computed in a worker thread: a table send hashes hundreds of MB, and on
// the event loop that stopped every API request for as long (about 3 ms per MiB). The worker reads
// with large buffers and hashes with OpenSSL, as the main thread would, while the main thread
// goes on serving. The worker's code is a few lines of plain JS given to it as text, so it runs
// the same from the sources (tsx) and from dist/.
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const buf = Buffer.allocUnsafe(8 << 20);
const out = [];
for (const file of workerData.files) {
  const hash = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  out.push(hash.digest('hex'));
}
parentPort.postMessage(out);
`;

/** The sha256 (hex) of each file, in order. An aborted signal stops the worker and rejects. */
export function sha256Files(files: readonly string[], signal?: AbortSignal): Promise<string[]> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { files } });
    const onAbort = () => void worker.terminate();
    signal?.addEventListener('abort', onAbort, { once: true });
    let result: string[] | undefined;
    worker.once('message', (digests: string[]) => (result = digests));
    worker.once('error', (err) => reject(err));
    worker.once('exit', (code) => {
      signal?.removeEventListener('abort', onAbort);
      if (result) resolve(result);
      else if (signal?.aborted) reject(signal.reason);
      else reject(new Error(`the sha256 worker for ${files.join(', ')} exited (${code}) without a digest`));
    });
  });
}

const FOLLOWER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const buf = Buffer.allocUnsafe(8 << 20);
let file = null;
parentPort.on('message', (m) => {
  try {
    if (m.open !== undefined) file = { fd: openSync(m.open, 'r'), hash: createHash('sha256'), pos: 0, name: m.open };
    if (m.upTo !== undefined) {
      while (file.pos < m.upTo) {
        const n = readSync(file.fd, buf, 0, Math.min(buf.length, m.upTo - file.pos), file.pos);
        if (n === 0) throw new Error(file.name + ' ends at byte ' + file.pos + ', ' + m.upTo + ' were written');
        file.hash.update(buf.subarray(0, n));
        file.pos += n;
      }
    }
    if (m.close) {
      closeSync(file.fd);
      parentPort.postMessage({ digest: file.hash.digest('hex') });
      file = null;
    }
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
});
`;

/**
 * The sha256 of files while they are being written, one after the other, taken by a worker thread
 * that reads back what the writer says is on disk: the writer's event loop only sends it offsets.
 * The digest is of the file as written, not of the bytes handed to the write.
 */
export class FollowingDigest {
  private readonly worker: Worker;
  private failed: Error | null = null;
  private pending: Array<{ resolve: (d: string) => void; reject: (e: Error) => void }> = [];

  constructor() {
    this.worker = new Worker(FOLLOWER_SOURCE, { eval: true });
    this.worker.on('message', (m: { digest?: string; error?: string }) => {
      if (m.error !== undefined) this.fail(new Error(`hashing the received file failed: ${m.error}`));
      else this.pending.shift()?.resolve(m.digest!);
    });
    this.worker.once('error', (err) => this.fail(err));
    this.worker.once('exit', (code) => this.fail(new Error(`the sha256 worker exited (${code})`)));
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const p of this.pending.splice(0)) p.reject(this.failed);
  }

  /** A new file: the next `written` calls are its sizes so far. */
  open(file: string): void {
    this.worker.postMessage({ open: file });
  }

  /** `bytes` of the open file are written: hash up to there. */
  written(bytes: number): void {
    this.worker.postMessage({ upTo: bytes });
  }

  /** The open file is complete: its digest (hex). */
  close(): Promise<string> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.worker.postMessage({ close: true });
    });
  }

  /** Stops the worker; outstanding digests reject. */
  async stop(): Promise<void> {
    this.fail(new Error('hashing was stopped'));
    await this.worker.terminate();
  }
}

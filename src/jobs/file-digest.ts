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

// A multipart upload (PROTOCOL §7) that fails leaves no file behind: not under its own name, not
// under a temp name, and an older file of the same name stays as it was. Real node-mgr process,
// raw sockets (the shapes a hostile or broken client sends), no database server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { startNodeMgrProcess, type NodeMgrProcess } from '../support/node-mgr-process.ts';
import { errorShapeProblem, rawExchange } from '../chaos/support/chaos.ts';

const TOKEN = 'upload-failures-token';
const LIMIT = 16 * 1024;
const B = 'upl';

const params = (json = '{"ver":"0.1","file_type":"mysql"}') => `--${B}\r\nContent-Disposition: form-data; name="parameters"\r\n\r\n${json}\r\n`;
const file = (name: string, content: string) => `--${B}\r\nContent-Disposition: form-data; name="filename"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n${content}\r\n`;
const end = `--${B}--\r\n`;
const head = (length: number) =>
  `POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary=${B}\r\nContent-Length: ${length}\r\n\r\n`;
const request = (body: string) => head(Buffer.byteLength(body)) + body;

describe('a failed upload leaves no file behind', () => {
  let root: string;
  let mgr: NodeMgrProcess;
  let apiPort: number;
  let dir: string;

  before(async () => {
    root = path.dirname(await tempNodeDir());
    apiPort = await freePort();
    mgr = await startNodeMgrProcess(path.join(root, 'mgr'), {
      listen: { host: '127.0.0.1', port: apiPort },
      stateDir: path.join(root, 'state'),
      uploadDir: path.join(root, 'uploads'),
      runAs: TEST_RUN_AS,
      security: { token: TOKEN, uploadLimitBytes: LIMIT },
    });
    dir = path.join(root, 'uploads', 'mysql');
  });

  after(async () => {
    await mgr?.stop('SIGKILL');
    await removeTempDirs();
  });

  const entries = () => (existsSync(dir) ? readdirSync(dir).sort() : []);

  async function refused(body: string, status: number, what: string): Promise<void> {
    const x = await rawExchange(apiPort, [request(body)], { expect: 1, timeoutMs: 10_000 });
    assert.equal(x.responses[0]?.status, status, `${what}: ${x.responses[0]?.body ?? 'no answer'}`);
    assert.equal(errorShapeProblem(x.responses[0]!), null, x.responses[0]!.body);
  }

  it('still saves a good upload under its name, with no temp file beside it', async () => {
    const x = await rawExchange(apiPort, [request(params() + file('good.json', '{"ok":1}') + end)], { expect: 1 });
    assert.equal(x.responses[0]?.status, 200, x.responses[0]?.body);
    assert.deepEqual(entries(), ['good.json']);
  });

  it('two files: 413, and the first file is not saved', async () => {
    await refused(params() + file('first.json', '{"a":1}') + file('second.json', '{"b":2}') + end, 413, 'two files');
    assert.deepEqual(entries(), ['good.json']);
  });

  it('a file over the limit: 413, nothing saved', async () => {
    await refused(params() + file('big.json', 'x'.repeat(LIMIT + 100)) + end, 413, 'too big');
    assert.deepEqual(entries(), ['good.json']);
  });

  it('bad parameters after the file (invalid JSON, another file_type): 400, nothing saved, the older file of that name kept', async () => {
    await refused(params() + file('late.json', '{"a":1}') + params('{not json') + end, 400, 'bad JSON after the file');
    await refused(params() + file('late.json', '{"a":1}') + params('{"file_type":"pgsql"}') + end, 400, 'another file_type after the file');
    await refused(params() + file('good.json', '{"replaced":true}') + params('{nope') + end, 400, 'bad JSON after a file of an existing name');
    assert.deepEqual(entries(), ['good.json']);
    assert.equal(readFileSync(path.join(dir, 'good.json'), 'utf8'), '{"ok":1}');
  });

  it('a connection aborted mid-file, or after the file before the closing boundary: nothing saved, no temp file left', async () => {
    const abort = async (bytes: string, declared: number) => {
      const sock = net.connect(apiPort, '127.0.0.1');
      await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
      sock.write(head(declared) + bytes);
      await sleep(300);
      sock.destroy();
    };
    const full = params() + file('aborted.json', 'y'.repeat(4000)) + end;
    await abort(params() + `--${B}\r\nContent-Disposition: form-data; name="filename"; filename="aborted.json"\r\n\r\n${'y'.repeat(2000)}`, Buffer.byteLength(full));
    await abort(params() + file('aborted.json', 'y'.repeat(4000)), Buffer.byteLength(full));
    // The server notices the closed socket asynchronously.
    let left: string[] = [];
    for (let i = 0; i < 50; i++) {
      left = entries();
      if (left.length === 1) break;
      await sleep(100);
    }
    assert.deepEqual(left, ['good.json']);
  });

  it('a file left by an earlier upload is replaced only by a complete one', async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'kept.json'), 'old');
    await refused(params() + file('kept.json', 'new') + file('other.json', 'x') + end, 413, 'two files over an existing name');
    assert.equal(readFileSync(path.join(dir, 'kept.json'), 'utf8'), 'old');
    const x = await rawExchange(apiPort, [request(params() + file('kept.json', 'new') + end)], { expect: 1 });
    assert.equal(x.responses[0]?.status, 200, x.responses[0]?.body);
    assert.equal(readFileSync(path.join(dir, 'kept.json'), 'utf8'), 'new');
    assert.deepEqual(entries(), ['good.json', 'kept.json']);
  });
});

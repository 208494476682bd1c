// The pure parts of a table transfer: the byte stream between the two halves, and how definitions
// are compared and renamed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ChunkPool, receiveTableStream, tableStream, type StreamHeader } from '../../src/jobs/table-stream.ts';
import { PeerNodeMgr } from '../../src/jobs/table-peer.ts';
import { normaliseDefinition, renameDefinition, TableTransferError } from '../../src/jobs/table-import.ts';
import { sendDestination } from '../../src/jobs/table-transfer.ts';
import { configSchema } from '../../src/config/schema.ts';
import type { Supervisor } from '../../src/supervisor/supervisor.ts';

describe('the table stream', () => {
  let dir: string;
  const cfg = randomBytes(700);
  const ibd = randomBytes(3 * 1024 * 1024 + 17);
  const paths = () => ({ cfg: path.join(dir, 'src.cfg'), ibd: path.join(dir, 'src.ibd') });
  const header = (): StreamHeader => ({
    v: 1,
    jobId: 'j1',
    source: 'mysql-1 `db`.`t`',
    table: { createStatement: 'CREATE TABLE `t` (\n  `id` int(11) NOT NULL\n) ENGINE=InnoDB', version: '10.11.19-MariaDB', pageSize: 16384 },
    files: [
      { kind: 'cfg', size: cfg.length },
      { kind: 'ibd', size: ibd.length },
    ],
  });
  const summary = Promise.resolve({ rows: '42', checksum: '123456' });
  let n = 0;
  const targets = () => {
    n++;
    return { cfg: path.join(dir, `out${n}.cfg`), ibd: path.join(dir, `out${n}.ibd`) };
  };
  /** Collects a stream into chunks, optionally altering it. */
  const collect = async (alter?: (b: Buffer) => Buffer) => {
    const chunks: Buffer[] = [];
    for await (const c of tableStream(header(), paths(), summary)) chunks.push(c);
    const all = Buffer.concat(chunks);
    return alter ? alter(all) : all;
  };
  /** Re-chunks a buffer the way a socket would. */
  async function* inPieces(buf: Buffer, size = 65536) {
    for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
  }

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'nm-table-stream-'));
    writeFileSync(paths().cfg, cfg);
    writeFileSync(paths().ibd, ibd);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('carries both files, byte for byte, and the source summary with their sha256', async () => {
    const out = targets();
    let seenHeader: StreamHeader | undefined;
    const { trailer, bytes } = await receiveTableStream(inPieces(await collect()), async (h) => ((seenHeader = h), out), { verifyHashes: true });
    assert.deepEqual(readFileSync(out.cfg), cfg);
    assert.deepEqual(readFileSync(out.ibd), ibd);
    assert.equal(bytes, cfg.length + ibd.length);
    assert.equal(seenHeader?.jobId, 'j1');
    assert.equal(trailer.rows, '42');
    assert.equal(trailer.checksum, '123456');
    assert.equal(trailer.sha256.ibd, createHash('sha256').update(ibd).digest('hex'));
  });

  it('refuses a stream damaged on the way (one flipped byte in the .ibd)', async () => {
    const damaged = await collect((b) => {
      const c = Buffer.from(b);
      c[c.length - 5000] ^= 0xff;
      return c;
    });
    await assert.rejects(receiveTableStream(inPieces(damaged), async () => targets(), { verifyHashes: true }), /\.ibd file arrived damaged/);
  });

  it('refuses a stream cut short, saying where', async () => {
    const cut = await collect((b) => b.subarray(0, 1_000_000));
    await assert.rejects(receiveTableStream(inPieces(cut), async () => targets(), { verifyHashes: true }), /ended inside the \.ibd file/);
  });

  it('writes nothing when the receiver refuses the header', async () => {
    const out = targets();
    await assert.rejects(
      receiveTableStream(inPieces(await collect()), async () => {
        throw new Error('no such node');
      }, { verifyHashes: true }),
      /no such node/,
    );
    assert.throws(() => readFileSync(out.cfg), /ENOENT/);
  });

  it('holds back the trailer until the locked source has its checksum', async () => {
    let release!: (s: { rows: string; checksum: string }) => void;
    const late = new Promise<{ rows: string; checksum: string }>((r) => (release = r));
    const it = tableStream(header(), paths(), late)[Symbol.asyncIterator]();
    const headerBytes = 4 + Buffer.byteLength(JSON.stringify(header()));
    let got = 0;
    while (got < headerBytes + cfg.length + ibd.length) got += ((await it.next()).value as Buffer).length;
    assert.equal(got, headerBytes + cfg.length + ibd.length);
    const trailer = it.next();
    const first = await Promise.race([trailer, new Promise<'waiting'>((r) => setTimeout(() => r('waiting'), 100))]);
    assert.equal(first, 'waiting', 'no trailer before the checksum is known');
    release({ rows: '1', checksum: '2' });
    assert.match(((await trailer).value as Buffer).subarray(4).toString(), /"checksum":"2"/);
  });
  describe('sent over HTTP from a pool of read buffers (each reused once the socket took it)', () => {
    /** A stand-in for the peer's recv route: receives the stream into `out`, or refuses it with 409. */
    async function peer(out: () => { cfg: string; ibd: string }, refuse = false) {
      const server = http.createServer(async (req, res) => {
        try {
          if (refuse) throw new Error('refused at the header');
          const got = await receiveTableStream(req, async () => out(), { verifyHashes: true });
          res.end(JSON.stringify({ result: 'succeed', rows: got.trailer.rows, bytes: got.bytes }));
        } catch (err) {
          res.statusCode = 409;
          res.end(JSON.stringify({ result: 'error', info: (err as Error).message }));
        }
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    }

    it('arrives byte for byte with two 64 KiB buffers carrying 3 MB', async () => {
      const out = targets();
      const { server, url } = await peer(() => out);
      try {
        const pool = new ChunkPool(2, 64 * 1024);
        const upload = new PeerNodeMgr(url, undefined).upload(AbortSignal.timeout(30_000));
        await upload.send(tableStream(header(), paths(), summary, { pool }), pool);
        const result = await upload.result;
        assert.equal(result.bytes, cfg.length + ibd.length);
        assert.deepEqual(readFileSync(out.cfg), cfg);
        assert.deepEqual(readFileSync(out.ibd), ibd);
      } finally {
        server.close();
      }
    });

    it('a destination that refuses gives its reason, and the pooled stream stops (no hang)', async () => {
      const { server, url } = await peer(() => targets(), true);
      try {
        const pool = new ChunkPool(2, 64 * 1024);
        const upload = new PeerNodeMgr(url, undefined).upload(AbortSignal.timeout(30_000));
        await assert.rejects(upload.send(tableStream(header(), paths(), summary, { pool }), pool), /answered 409: refused at the header/);
      } finally {
        server.close();
      }
    });
  });
});

describe('table definitions', () => {
  const def = (name: string, autoInc = '') =>
    `CREATE TABLE \`${name}\` (\n  \`id\` int(11) NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (\`id\`)\n) ENGINE=InnoDB${autoInc} DEFAULT CHARSET=utf8mb4`;

  it('compare equal whatever the table is called and wherever its AUTO_INCREMENT counter is', () => {
    assert.equal(normaliseDefinition(def('a')), normaliseDefinition(def('other', ' AUTO_INCREMENT=1001')));
  });

  it('keep the AUTO_INCREMENT column attribute', () => {
    assert.match(normaliseDefinition(def('a', ' AUTO_INCREMENT=5')), /NOT NULL AUTO_INCREMENT,/);
  });

  it('are renamed to the destination, quoted, with a backtick in a name doubled', () => {
    assert.equal(renameDefinition(def('we`ird'.replace('`', '``')), 'postgres_$$_public', 'x`y').split('\n')[0], 'CREATE TABLE `postgres_$$_public`.`x``y` (');
  });
});

describe('where a send may go (sendDestination; a supervisor stand-in that only answers byPort)', () => {
  const supervisor = { byPort: (port: number) => (port === 4001 ? { id: 'mysql-4001', ip: '127.0.0.1', port } : undefined) } as unknown as Supervisor;
  const config = configSchema.parse({ listen: { port: 9998 }, security: { token: 'own' }, peers: [{ host: '203.0.113.5', token: 'theirs' }, { host: '203.0.113.6', url: 'https://b.example:9443' }] });

  it('a node of this host stays local', () => {
    assert.ok('local' in sendDestination(config, supervisor, '127.0.0.1', 4001));
  });

  it('a configured peer is called on its URL (default: our scheme and port) with its own token, never ours', () => {
    const a = sendDestination(config, supervisor, '203.0.113.5', 4001);
    assert.ok('peer' in a);
    assert.equal(a.peer.url, 'http://203.0.113.5:9998');
    assert.equal((a.peer as unknown as { token?: string }).token, 'theirs');
    const b = sendDestination(config, supervisor, '203.0.113.6', 4001);
    assert.ok('peer' in b);
    assert.equal(b.peer.url, 'https://b.example:9443');
    assert.equal((b.peer as unknown as { token?: string }).token, undefined, 'a peer without a token gets none, not ours');
  });

  it('any other address is refused with 400 (404 for an address of this host without that node)', () => {
    assert.throws(() => sendDestination(config, supervisor, '203.0.113.7', 4001), (e: TableTransferError) => e.kind === 'invalid' && /not a configured peer/.test(e.message));
    assert.throws(() => sendDestination(config, supervisor, '127.0.0.1', 4002), (e: TableTransferError) => e.kind === 'not_found');
  });
});

// The backup archive format: our tar writer and reader against each other and against GNU tar,
// digests computed while streaming, and corruption caught rather than misread.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ArchiveError, MANIFEST_NAME, packArchive, readArchive, readTar, tarStream, type TarInput } from '../../src/backup/archive.ts';
import { buildManifest, checkAgainstManifest, parseManifest, serialiseManifest, ManifestError } from '../../src/backup/manifest.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const mtime = new Date('2021-11-22T23:43:03Z');

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

async function* chunked(data: Buffer, size = 7777): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

const longName = `deep/${'x'.repeat(120)}/file-with-a-name-longer-than-ustar-allows.ibd`;
const big = randomBytes(3 * 1024 * 1024 + 17);
const small = Buffer.from('binlog.000003\t1234\t0-1-42\n');

function sampleFiles(): TarInput[] {
  return [
    { path: 'mysql', type: 'dir', size: 0, mode: 0o700, mtime },
    { path: 'mysql/user.MAD', type: 'file', size: big.length, mode: 0o640, mtime, body: chunked(big) },
    { path: 'xtrabackup_binlog_info', type: 'file', size: small.length, mode: 0o640, mtime, body: small },
    { path: 'empty', type: 'file', size: 0, mode: 0o600, mtime, body: Buffer.alloc(0) },
    { path: 'deep', type: 'dir', size: 0, mode: 0o750, mtime },
    { path: `deep/${'x'.repeat(120)}`, type: 'dir', size: 0, mode: 0o750, mtime },
    { path: longName, type: 'file', size: small.length, mode: 0o600, mtime, body: small },
  ];
}

function manifestFor(tree: Parameters<typeof buildManifest>[0]['tree']) {
  return serialiseManifest(
    buildManifest({
      engine: { kind: 'mysql', flavour: 'mariadb', tool: 'mariabackup', server_version: '10.11.6-MariaDB' },
      source: { node: 'mysql-6004', role: 'storage', port: 6004, cluster: 'clust1', shard: 'shard1' },
      position: { kind: 'binlog', file: 'binlog.000003', position: 1234 },
      prepared: true,
      tree,
    }),
  );
}

describe('tar writing and reading', () => {
  it('reads back exactly what it wrote: names beyond 100 bytes, empty files, directories, modes', async () => {
    const tar = await collect(tarStream(sampleFiles()));
    assert.equal(tar.length % 512, 0);
    const seen: { path: string; type: string; mode: number; data: Buffer }[] = [];
    for await (const e of readTar(chunked(tar, 1000))) seen.push({ path: e.path, type: e.type, mode: e.mode, data: await collect(e.body) });
    assert.deepEqual(
      seen.map((e) => [e.path, e.type, e.mode.toString(8)]),
      sampleFiles().map((f) => [f.path, f.type, f.mode.toString(8)]),
    );
    assert.equal(sha(seen[1]!.data), sha(big));
    assert.deepEqual(seen[6]!.data, small);
  });

  it('skips a body its consumer did not read', async () => {
    const tar = await collect(tarStream(sampleFiles()));
    const names: string[] = [];
    for await (const e of readTar(chunked(tar))) names.push(e.path); // bodies never read
    assert.equal(names.length, 7);
  });

  it('writes archives GNU tar lists and extracts, and reads what GNU tar writes', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'archive-test-'));
    try {
      const file = path.join(dir, 'ours.tar');
      await writeFile(file, await collect(tarStream(sampleFiles())));
      const listed = (await execa('tar', ['-tvf', file])).stdout;
      assert.match(listed, /file-with-a-name-longer-than-ustar-allows\.ibd/);
      await mkdir(path.join(dir, 'out'));
      await execa('tar', ['-xf', file, '-C', path.join(dir, 'out')]);
      assert.equal(sha(await readFile(path.join(dir, 'out', 'mysql/user.MAD'))), sha(big));
      assert.deepEqual(await readFile(path.join(dir, 'out', longName)), small);

      // GNU tar's own output, with its `./` prefixes and long-name extension.
      const gnu = (await execa('tar', ['-cf', '-', '-C', path.join(dir, 'out'), '.'], { encoding: 'buffer' })).stdout as unknown as Uint8Array;
      const paths: string[] = [];
      for await (const e of readTar(chunked(Buffer.from(gnu)))) {
        paths.push(e.path);
        if (e.path === longName) assert.deepEqual(await collect(e.body), small);
      }
      assert.ok(paths.includes('mysql/user.MAD'));
      assert.ok(paths.includes(longName));
      assert.ok(paths.includes(''), 'the archive root "./" reads as an empty path');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a body that does not have its announced size', async () => {
    const liar: TarInput = { path: 'f', type: 'file', size: 10, mode: 0o600, mtime, body: Buffer.alloc(11) };
    await assert.rejects(collect(tarStream([liar])), /grew while it was being archived/);
    const short: TarInput = { path: 'f', type: 'file', size: 10, mode: 0o600, mtime, body: Buffer.alloc(9) };
    await assert.rejects(collect(tarStream([short])), /shrank while it was being archived/);
  });

  it('reports a truncated archive and a corrupt header', async () => {
    const tar = await collect(tarStream(sampleFiles()));
    const drain = async (data: Buffer) => {
      for await (const e of readTar(chunked(data))) await collect(e.body);
    };
    await assert.rejects(drain(tar.subarray(0, 4096 + 100)), (err: unknown) => err instanceof ArchiveError && /truncated/.test(err.message));
    const bad = Buffer.from(tar);
    bad[512 + 130] = bad[512 + 130]! ^ 0x01; // inside the second header (its size field)
    await assert.rejects(drain(bad), /checksum mismatch/);
  });
});

describe('backup archives (gzip, digests, manifest)', () => {
  it('packs files and MANIFEST.json last; reading checks every digest against it', async () => {
    let raw = 0;
    const archive = await collect(packArchive(toAsync(sampleFiles()), manifestFor, { onRawBytes: (n) => (raw += n) }));
    assert.equal(raw, big.length + 2 * small.length);
    const written: string[] = [];
    const read = await readArchive(chunked(archive), async (e) => {
      written.push(e.path);
      await collect(e.body);
    });
    assert.equal(read.sha256, sha(archive));
    assert.equal(read.bytes, archive.length);
    const manifest = parseManifest(read.manifest);
    assert.equal(manifest.files.length, 4);
    assert.equal(manifest.files.find((f) => f.path === 'mysql/user.MAD')?.sha256, sha(big));
    assert.deepEqual(manifest.position, { kind: 'binlog', file: 'binlog.000003', position: 1234 });
    assert.ok(!written.includes(MANIFEST_NAME), 'the manifest is not handed to the sink');
    checkAgainstManifest(manifest, read.tree);
  });

  it('GNU tar reads the .tgz too', async () => {
    const archive = await collect(packArchive(toAsync(sampleFiles()), manifestFor));
    const { stdout } = await execa('tar', ['-tz'], { input: archive });
    assert.equal(stdout.trim().split('\n').at(-1), MANIFEST_NAME);
  });

  it('a manifest that disagrees with the files is refused, naming the file', async () => {
    const archive = await collect(packArchive(toAsync(sampleFiles()), manifestFor));
    const read = await readArchive(chunked(archive), null);
    const manifest = parseManifest(read.manifest);
    const tampered = { ...manifest, files: manifest.files.map((f) => (f.path === 'empty' ? { ...f, sha256: 'f'.repeat(64) } : f)) };
    assert.throws(() => checkAgainstManifest(tampered, read.tree), (err: unknown) => err instanceof ManifestError && /empty has sha256/.test(err.message));
    const missing = { ...manifest, files: [...manifest.files, { path: 'ibdata1', size: 1, mode: 0o640, sha256: 'a'.repeat(64) }] };
    assert.throws(() => checkAgainstManifest(missing, read.tree), /ibdata1 is missing/);
  });

  it('one flipped byte in the compressed archive is an error, never a silent success', async () => {
    const archive = await collect(packArchive(toAsync(sampleFiles()), manifestFor));
    for (const at of [20, Math.floor(archive.length / 2), archive.length - 6]) {
      const bad = Buffer.from(archive);
      bad[at] = bad[at]! ^ 0x40;
      const outcome = await readArchive(chunked(bad), null).then(
        (r) => {
          // gzip may decode a damaged stream; then the digest differs from the original's.
          assert.notEqual(r.sha256, sha(archive));
          return 'digest differs';
        },
        (err: Error) => err.message,
      );
      assert.ok(outcome.length > 0);
    }
  });

  it('an archive without MANIFEST.json is not a backup', () => {
    assert.throws(() => parseManifest(null), /no MANIFEST\.json/);
    assert.throws(() => parseManifest(Buffer.from('{"format":"other"}')), /MANIFEST\.json field/);
  });

  it('a data file named MANIFEST.json is refused', async () => {
    const clash: TarInput = { path: MANIFEST_NAME, type: 'file', size: 1, mode: 0o600, mtime, body: Buffer.from('x') };
    await assert.rejects(collect(packArchive(toAsync([clash]), manifestFor)), /MANIFEST\.json/);
  });
});

async function* toAsync<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}


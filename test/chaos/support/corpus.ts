// The fuzz corpus: requests generated from the seed's request shapes, then mutated (types, missing
// and extra fields, huge strings, invalid UTF-8, broken multipart, odd framing). Every case says
// what a correct node-mgr must answer: '2xx' (a valid read), '4xx' (invalid by construction) or
// 'any' (either, but never 5xx and never without an info sentence).
//
// Safety: the corpus never names a real node's port in a command that stops, restarts, drops or
// installs, never sends good credentials with a table or binlog job, and never names a host other
// than loopback, so a run cannot stop the nodes, drop data, or send traffic off this machine.
import type { Rng } from './chaos.ts';

export type Expect = '2xx' | '4xx' | 'any';

export type FuzzCase =
  | { kind: 'http'; label: string; method: string; path: string; headers: Record<string, string>; body?: Buffer; expect: Expect }
  | { kind: 'raw'; label: string; chunks: Buffer[]; gapMs?: number; replies: number; expect: Expect; mayGetNoReply?: boolean; halfClose?: boolean };

export interface CorpusContext {
  realPorts: { mysql: number; postgres: number };
  /** Ports where no node lives (1, 65535, a free one…). */
  unknownPorts: number[];
  /** Job ids that exist (filled as the fuzz runs). */
  jobIds: string[];
  /** GET routes from /docs/json, e.g. /v1/nodes/{port}. */
  getRoutes: string[];
  uploadLimitBytes: number;
  bodyLimitBytes: number;
}

const NODE_TYPES = ['meta_node', 'storage_node', 'computer_node'];
const OPTIONAL = new Set(['ver', 'version', 'job_id', 'node_type', 'port', 'to', 'before', 'dry_run', 'store']);

type Body = Record<string, unknown>;

/** One valid request of each shape of the seed (PROTOCOL §2–§5), safe to send as it is. */
function templates(r: Rng, ctx: CorpusContext): Array<{ body: Body; read: boolean }> {
  const unknown = () => r.pick(ctx.unknownPorts);
  const anyPort = () => (r.chance(0.5) ? unknown() : r.pick([ctx.realPorts.mysql, ctx.realPorts.postgres]));
  const jobId = () => (ctx.jobIds.length > 0 && r.chance(0.6) ? r.pick(ctx.jobIds) : `fz-${r.int(0, 1e9).toString(36)}`);
  const source = (port: number) => ({ s_ip: r.pick(['127.0.0.1', 'localhost', '::1']), s_port: port, s_user: 'fuzz_nobody', s_pwd: 'fuzz_pwd' });
  const t = (job_type: string, extra: Body = {}, read = false) => ({ body: { ver: '0.1', job_type, ...extra }, read });
  return [
    t('get_node', r.chance(0.7) ? { node_type: r.pick(NODE_TYPES) } : {}, true),
    t('get_info', {}, true),
    t('get_status', { job_id: jobId() }, true),
    t('auto_pullup', { minutes: r.pick([0, 0, 1, 5]), ...(r.chance(0.7) ? { port: anyPort() } : {}) }),
    t('update_node', r.chance(0.5) ? { node_type: r.pick(NODE_TYPES) } : {}),
    // START of a running node is a no-op; STOP/RESTART only for ports with no node.
    t('mysql_cmd', { cmd: r.pick([`./startmysql.sh ${ctx.realPorts.mysql}`, `./stopmysql.sh ${unknown()}`, `./restartmysql.sh ${unknown()}`, `python2 install-mysql.py --config=./fz-${r.int(0, 20)}.json --target_node_index=${r.int(0, 3)}`, `python2 uninstall-mysql.py --config=./fz-${r.int(0, 20)}.json --target_node_index=0`]) }),
    t('pgsql_cmd', { cmd: r.pick([`python2 start_pg.py port=${ctx.realPorts.postgres}`, `python2 stop_pg.py port=${unknown()}`, `python2 start_pg.py --port=${unknown()}`, `python2 install_pg.py --config=./fz-${r.int(0, 20)}.json --install_ids=1,2`]) }),
    t('cluster_cmd', { cmd: r.pick(['bash -x bin/cluster_mgr_safe --debug --pidfile=run.pid cluster_mgr.cnf', 'bash -x bin/cluster_mgr_safe --debug --pidfile=run.pid --stop cluster_mgr.cnf']) }),
    t('delete', { file_type: 'table', ...source(anyPort()), s_dbname: r.pick(['fuzzdb', 'fuzz.public', 'postgres_$$_public']), s_table_name: `fz_${r.int(0, 1e6)}` }),
    t('delete', { file_type: 'binlog', ...source(anyPort()), ...(r.chance(0.5) ? { to: `binlog.${String(r.int(1, 9)).padStart(6, '0')}` } : { before: new Date(Date.now() - 86_400_000).toISOString() }), dry_run: r.chance(0.5) }),
    t('send', { file_type: 'table', ...source(unknown()), s_dbname: 'fuzzdb', s_table_name: 'a', d_ip: '127.0.0.1', d_port: unknown(), d_user: 'fuzz_nobody', d_pwd: 'x', d_dbname: 'fuzzdb', d_table_name: 'b' }),
    t('coldbackup', { ...source(unknown()), ...(r.chance(0.3) ? { store: 'local' } : {}) }),
    t('coldrestore', { ...source(unknown()), file: `/coldbackup/c/s/coldback_${r.int(0, 99)}.tgz` }),
  ];
}

// ---------------------------------------------------------------------------------------------
// Mutations

function hugeString(r: Rng): string {
  const n = r.pick([300, 5000, 70_000, 300_000]);
  return r.pick(['x', 'é', '🐘', '\u202e', '\\', '"', '%00', '\u0000']).repeat(Math.ceil(n / 2));
}

function oddValue(r: Rng): unknown {
  return r.pick<() => unknown>([
    () => null,
    () => true,
    () => 0,
    () => -1,
    () => 1.5,
    () => 1e308,
    () => -2147483649,
    () => '',
    () => ' ',
    () => '0x1F',
    () => '6001',
    () => [],
    () => [1, 'a', null],
    () => ({}),
    () => ({ nested: { deeper: [1, 2, { x: 'y' }] } }),
    () => '\u0000\u0001\u0002',
    () => '\ud800',
    () => '../../../../etc/passwd',
    () => '; touch /tmp/fuzz-should-not-exist',
    () => '$(id)',
    () => hugeString(r),
  ])();
}

/** The JSON type of a value, as the schema sees it. */
function jsonType(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/**
 * Applies 0–3 mutations. The result is invalid by construction when the job_type changed, a
 * required field is missing, or a field of the request's schema has another JSON type; any other
 * change (another string, another number, extra fields) may or may not be valid.
 */
function mutate(r: Rng, body: Body): { body: unknown; invalid: boolean; what: string[] } {
  const what: string[] = [];
  const b: Body = { ...body };
  const n = r.pick([0, 1, 1, 1, 2, 3]);
  for (let i = 0; i < n; i++) {
    const keys = Object.keys(b);
    if (keys.length === 0) break;
    switch (r.int(0, 7)) {
      case 0: {
        const k = r.pick(keys);
        b[k] = oddValue(r);
        what.push(`type:${k.slice(0, 20)}`);
        break;
      }
      case 1: {
        const k = r.pick(keys);
        delete b[k];
        what.push(`drop:${k.slice(0, 20)}`);
        break;
      }
      case 2: {
        const k = r.pick(['extra', 'node_ip0', 'constructor', 'prototype', 'toString', 'x'.repeat(r.int(1, 2000)), '', 'job_type ', 'JOB_TYPE']);
        if (!(k in body)) b[k] = oddValue(r);
        what.push(`extra:${k.slice(0, 20)}`);
        break;
      }
      case 3: {
        const k = r.pick(keys);
        if (typeof b[k] === 'string') b[k] = hugeString(r);
        what.push(`huge:${k.slice(0, 20)}`);
        break;
      }
      case 4:
        b.job_type = r.pick(['get_nodes', 'GET_NODE', 'get_node\u0000', 'delete ', '', 'hasOwnProperty', '__proto__', 'constructor', 'toString']);
        what.push('job_type');
        break;
      case 5:
        if (typeof b.cmd === 'string') {
          b.cmd = r.pick([`${b.cmd} ; id`, `${b.cmd} \`id\``, `${b.cmd} $(id)`, `"${b.cmd}`, `${b.cmd}'`, `${b.cmd}\n./stopmysql.sh 1`, '', '   ', `${b.cmd} --defaults-file=/etc/shadow`, b.cmd.replace(/\d+/, '99999999'), b.cmd.replace(/\d+/, '-1')]);
          what.push('cmd');
        }
        break;
      case 6:
        b.job_id = r.pick(['a/b', 'a b', '', 'x'.repeat(200), '..', '../..', '\u0000', 'ok-id', '%2e%2e']);
        what.push('job_id');
        break;
      default:
        what.push('none');
    }
  }
  let invalid = b.job_type !== body.job_type;
  for (const k of Object.keys(body)) {
    if (!(k in b)) invalid ||= !OPTIONAL.has(k);
    else if (jsonType(b[k]) !== jsonType(body[k])) invalid = true;
  }
  return { body: b, invalid, what };
}

/** Wraps the body in a non-object now and then: arrays, strings, numbers, null. */
function reshape(r: Rng, body: unknown): { body: unknown; invalid: boolean } {
  if (!r.chance(0.05)) return { body, invalid: false };
  return { body: r.pick([[body], 'get_node', 42, null, true, [[[]]]]), invalid: true };
}

/** The bytes of the JSON, sometimes framed oddly. */
function encode(r: Rng, value: unknown): { bytes: Buffer; invalid: boolean; changesMeaning?: boolean } {
  const text = JSON.stringify(value) ?? 'null';
  switch (r.int(0, 19)) {
    case 0:
      return { bytes: Buffer.from(text.slice(0, Math.max(1, r.int(0, text.length - 1)))), invalid: true };
    case 1:
      // RFC 8259 lets a parser refuse a byte order mark; node-mgr does.
      return { bytes: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), invalid: true };
    case 2:
      return { bytes: Buffer.from(`${text}garbage`), invalid: true };
    case 3:
      // Invalid UTF-8 inside a string value.
      // Invalid UTF-8 inside the first key (a lone surrogate, a 0xff byte): it decodes to U+FFFD,
      // so that key is now another one.
      return { bytes: Buffer.from(Buffer.from(text.replace(/"([a-z_]+)"/, (_m, k) => `"${k}\udfff"`), 'utf8').map((x, i) => (i === 3 ? 0xff : x))), invalid: false, changesMeaning: true };
    case 4:
      return { bytes: Buffer.from(`  \n\t${text}\n  `), invalid: false };
    case 5:
      // A duplicate key: the last one wins, and a dropped job_type comes back as get_info.
      return { bytes: Buffer.from(text.replace(/^\{/, '{"job_type":"get_info",')), invalid: false, changesMeaning: true };
    case 6:
      return { bytes: Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xf0, 0x28, 0x8c, 0xbc]), invalid: true };
    case 7:
      return { bytes: Buffer.from(''), invalid: true };
    default:
      return { bytes: Buffer.from(text), invalid: false };
  }
}

const CONTENT_TYPES = [
  'application/json',
  'application/x-www-form-urlencoded',
  'text/plain',
  'application/json; charset=latin1',
  'application/octet-stream',
  'x/y',
  '',
  'multipart/mixed',
];

function legacyCase(r: Rng, ctx: CorpusContext): FuzzCase {
  const tpl = r.pick(templates(r, ctx));
  const m = mutate(r, tpl.body);
  const shaped = reshape(r, m.body);
  const enc = encode(r, shaped.body);
  const invalid = m.invalid || shaped.invalid || enc.invalid || enc.bytes.length > ctx.bodyLimitBytes;
  const untouched = m.what.length === 0 || m.what.every((w) => w === 'none' || w.startsWith('extra:'));
  const expect: Expect = enc.changesMeaning ? 'any' : invalid ? '4xx' : tpl.read && untouched && !shaped.invalid && enc.bytes.length > 0 ? '2xx' : 'any';
  const ct = r.pick(CONTENT_TYPES);
  return {
    kind: 'http',
    label: `POST / ${tpl.body.job_type} [${m.what.join(',')}]`,
    method: 'POST',
    path: '/',
    headers: ct ? { 'content-type': ct } : {},
    body: enc.bytes,
    // A bare text/plain or x/y body is still JSON to node-mgr; multipart/mixed is not multipart/form-data.
    expect,
  };
}

// ---------------------------------------------------------------------------------------------
// Multipart

function multipartCase(r: Rng, ctx: CorpusContext): FuzzCase {
  const boundary = r.chance(0.5) ? '----WebKitFormBoundaryZjrentBBjYWJ7gXp' : `fz${r.int(0, 1e9)}`;
  const params = (json: string) => `--${boundary}\r\nContent-Disposition: form-data; name="parameters"\r\n\r\n${json}\r\n`;
  const file = (name: string, content: Buffer, field = 'filename') =>
    Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`), content, Buffer.from('\r\n')]);
  const end = `--${boundary}--\r\n`;
  const ft = r.pick(['mysql', 'pgsql', 'cluster']);
  const content = Buffer.from(r.chance(0.5) ? JSON.stringify({ nodes: [{ ip: '192.0.2.1', port: r.pick(ctx.unknownPorts), data_dir_path: '/nonexistent' }] }) : 'not json at all');
  const name = `fz-${r.int(0, 20)}.json`;
  let body: Buffer;
  let expect: Expect = '4xx';
  let headerBoundary = boundary;
  let label: string;
  switch (r.int(0, 11)) {
    case 0:
    case 1:
      label = 'valid';
      body = Buffer.concat([Buffer.from(params(JSON.stringify({ ver: '0.1', file_type: ft }))), file(name, content), Buffer.from(end)]);
      expect = '2xx';
      break;
    case 2: {
      label = 'truncated';
      const whole = Buffer.concat([Buffer.from(params(JSON.stringify({ ver: '0.1', file_type: ft }))), file(name, content), Buffer.from(end)]);
      body = whole.subarray(0, r.int(10, whole.length - 3));
      break;
    }
    case 3:
      label = 'no parameters';
      body = Buffer.concat([file(name, content), Buffer.from(end)]);
      break;
    case 4:
      label = 'parameters not JSON';
      body = Buffer.concat([Buffer.from(params('{file_type:mysql')), file(name, content), Buffer.from(end)]);
      break;
    case 5:
      label = 'file before parameters';
      body = Buffer.concat([file(name, content), Buffer.from(params(JSON.stringify({ file_type: ft }))), Buffer.from(end)]);
      break;
    case 6:
      label = 'two files';
      body = Buffer.concat([Buffer.from(params(JSON.stringify({ file_type: ft }))), file(name, content), file(`b-${name}`, content, 'other'), Buffer.from(end)]);
      break;
    case 7:
      label = 'too large';
      body = Buffer.concat([Buffer.from(params(JSON.stringify({ file_type: ft }))), file(name, Buffer.alloc(ctx.uploadLimitBytes + 1024, 0x61)), Buffer.from(end)]);
      break;
    case 8:
      label = 'traversal';
      body = Buffer.concat([Buffer.from(params(JSON.stringify({ file_type: ft }))), file(r.pick(['../x.json', '..', '.', '/etc/x', 'a/../../b', '', 'x\\..\\y']), content), Buffer.from(end)]);
      break;
    case 9:
      label = 'boundary mismatch';
      headerBoundary = `${boundary}X`;
      body = Buffer.concat([Buffer.from(params(JSON.stringify({ file_type: ft }))), file(name, content), Buffer.from(end)]);
      break;
    case 10:
      label = 'no boundary';
      headerBoundary = '';
      body = Buffer.from(params(JSON.stringify({ file_type: ft })));
      break;
    default:
      label = 'bad file_type';
      body = Buffer.concat([Buffer.from(params(JSON.stringify({ file_type: r.pick(['etc', '../mysql', '', 1, null]) }))), file(name, content), Buffer.from(end)]);
  }
  return {
    kind: 'http',
    label: `multipart ${label}`,
    method: 'POST',
    path: '/',
    headers: { 'content-type': headerBoundary ? `multipart/form-data; boundary=${headerBoundary}` : 'multipart/form-data' },
    body,
    expect,
  };
}

// ---------------------------------------------------------------------------------------------
// Framing: HTTP/1.0, pipelining, broken request lines and headers

function rawCase(r: Rng, ctx: CorpusContext): FuzzCase {
  const json = (b: Body) => JSON.stringify(b);
  const req = (body: string, version = '1.1', extra = '') =>
    `POST / HTTP/${version}\r\nHost: 127.0.0.1\r\nContent-Type:application/x-www-form-urlencoded\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;
  const read = () => r.pick([json({ ver: '0.1', job_type: 'get_node' }), json({ ver: '0.1', job_type: 'get_info' }), json({ ver: '0.1', job_type: 'get_status', job_id: 'nope' })]);
  switch (r.int(0, 13)) {
    case 0:
      return { kind: 'raw', label: 'HTTP/1.0 (http_post_para)', chunks: [Buffer.from(req(read(), '1.0'))], replies: 1, expect: '2xx' };
    case 1: {
      const n = r.int(2, 6);
      const reqs = Array.from({ length: n }, (_, i) => req(read(), '1.1', i === n - 1 ? 'Connection: close\r\n' : ''));
      return { kind: 'raw', label: `pipelined x${n}`, chunks: [Buffer.from(reqs.join(''))], replies: n, expect: '2xx' };
    }
    case 2: {
      const reqs = [req(read()), req('{"ver":'), req(read(), '1.1', 'Connection: close\r\n')];
      return { kind: 'raw', label: 'pipelined with a bad body', chunks: [Buffer.from(reqs.join(''))], replies: 3, expect: 'any' };
    }
    case 3:
      return { kind: 'raw', label: 'bad request line', chunks: [Buffer.from(r.pick(['GARBAGE\r\n\r\n', 'POST\r\n\r\n', 'POST / HTTP/9.9\r\n\r\n', '\x00\x01\x02\r\n\r\n', 'FOO / HTTP/1.1\r\nHost: x\r\n\r\n']))], replies: 1, expect: '4xx' };
    case 4:
      return { kind: 'raw', label: 'CL and TE', chunks: [Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')], replies: 1, expect: '4xx' };
    case 5:
      return { kind: 'raw', label: 'bad chunk', chunks: [Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n')], replies: 1, expect: '4xx' };
    case 6:
      return { kind: 'raw', label: 'negative Content-Length', chunks: [Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n')], replies: 1, expect: '4xx' };
    case 7:
      return { kind: 'raw', label: 'header overflow', chunks: [Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(r.int(17_000, 70_000))}\r\n\r\n`)], replies: 1, expect: '4xx' };
    case 8: {
      const body = read();
      const bytes = Buffer.from(req(body, '1.1', 'Connection: close\r\n'));
      const cut = [bytes.subarray(0, 10), bytes.subarray(10, 40), bytes.subarray(40)];
      return { kind: 'raw', label: 'slow client (gaps)', chunks: cut, gapMs: r.int(20, 200), replies: 1, expect: '2xx' };
    }
    case 9: {
      const body = read();
      const full = Buffer.from(req(body));
      return { kind: 'raw', label: 'body cut short, then FIN', chunks: [full.subarray(0, full.length - r.int(1, 10))], halfClose: true, replies: 1, expect: 'any', mayGetNoReply: true };
    }
    case 10: {
      // Invalid UTF-8 in a JSON body that is otherwise a valid read.
      const body = Buffer.concat([Buffer.from('{"ver":"0.1","job_type":"get_node","x":"'), Buffer.from([0xff, 0xfe, 0xc0, 0xaf]), Buffer.from('"}')]);
      return {
        kind: 'raw',
        label: 'invalid UTF-8',
        chunks: [Buffer.concat([Buffer.from(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`), body])],
        replies: 1,
        expect: '2xx',
      };
    }
    case 11:
      return { kind: 'raw', label: 'GET job by path, HTTP/1.0', chunks: [Buffer.from(`GET /${r.pick(['nope', '%2e%2e', '..%2f..%2fetc', 'a'.repeat(3000), '%zz', '__proto__'])} HTTP/1.0\r\n\r\n`)], replies: 1, expect: 'any' };
    case 12:
      return { kind: 'raw', label: 'expect 100-continue', chunks: [Buffer.from(req(read(), '1.1', 'Expect: 100-continue\r\nConnection: close\r\n'))], replies: 1, expect: 'any' };
    default:
      return { kind: 'raw', label: 'duplicate Content-Length', chunks: [Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}')], replies: 1, expect: '4xx' };
  }
}

// ---------------------------------------------------------------------------------------------
// The REST face

function restCase(r: Rng, ctx: CorpusContext): FuzzCase {
  const seg = () => r.pick([String(r.pick(ctx.unknownPorts)), 'abc', '-1', '0', '65536', '1e3', '%00', '..', 'x'.repeat(500), String(ctx.realPorts.mysql)]);
  const route = r.pick(ctx.getRoutes.length > 0 ? ctx.getRoutes : ['/v1/nodes']);
  if (r.chance(0.6)) {
    const p = route.replace(/\{[^}]+\}/g, () => encodeURIComponent(seg())).replace(/:(\w+)/g, () => encodeURIComponent(seg()));
    const q = r.chance(0.3) ? `?limit=${r.pick(['0', '1', '1000', '1001', 'x', '-5'])}&status=${r.pick(['running', 'bogus', ''])}` : '';
    return { kind: 'http', label: `GET ${route}`, method: r.pick(['GET', 'GET', 'HEAD']), path: `${p}${q}`, headers: {}, expect: 'any' };
  }
  const unknown = r.pick(ctx.unknownPorts);
  const action = r.pick(['start', 'stop', 'restart', 'pause', 'resume', 'create', 'backup']);
  const choice = r.int(0, 3);
  if (choice === 0) return { kind: 'http', label: `POST /v1/nodes/:unknown/${action}`, method: 'POST', path: `/v1/nodes/${unknown}/${action}`, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ minutes: 5 })), expect: '4xx' };
  if (choice === 1) return { kind: 'http', label: 'DELETE /v1/nodes/:unknown', method: 'DELETE', path: `/v1/nodes/${unknown}`, headers: {}, expect: '4xx' };
  if (choice === 2) {
    // Never a valid entry: the kind is wrong or the dir is missing.
    const entry = r.pick([{ kind: 'oracle', role: 'storage', port: unknown, dir: '/nonexistent' }, { kind: 'mysql', role: 'storage', port: unknown }, { kind: 'postgres', port: 'x', dir: 1 }, [], 'x', null]);
    return { kind: 'http', label: 'POST /v1/nodes (invalid entry)', method: 'POST', path: '/v1/nodes', headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(entry)), expect: '4xx' };
  }
  return { kind: 'http', label: 'OPTIONS/PUT/PATCH', method: r.pick(['OPTIONS', 'PUT', 'PATCH']), path: r.pick(['/', '/v1/nodes', `/v1/nodes/${unknown}`]), headers: {}, expect: '4xx' };
}

/** The next case: mostly the legacy protocol, then multipart, framing and the REST face. */
export function nextCase(r: Rng, ctx: CorpusContext): FuzzCase {
  const x = r.next();
  if (x < 0.6) return legacyCase(r, ctx);
  if (x < 0.72) return multipartCase(r, ctx);
  if (x < 0.87) return rawCase(r, ctx);
  return restCase(r, ctx);
}

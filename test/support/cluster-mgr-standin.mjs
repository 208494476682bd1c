#!/usr/bin/env node
// A stand-in for Kunlun's cluster_mgr, for tests: it answers the seed's `get_node` from a real
// metadata database, like cluster_mgr does, and is a well-behaved supervised process (pidfile,
// GET /health, clean exit on SIGTERM). Plain ESM JavaScript so node-mgr can run it as a node of
// kind `cluster_mgr` with `node cluster-mgr-standin.mjs …`, without tsx.
//
//   node cluster-mgr-standin.mjs --port 57000 --pidfile run.pid \
//        --meta-host 127.0.0.1 --meta-port 6001 --meta-user pgx [--meta-password pw | META_PASSWORD=pw]
//   node cluster-mgr-standin.mjs --debug --pidfile=run.pid cluster_mgr.cnf
//
// The second form is how the seed starts cluster_mgr; the .cnf's `cluster_mgr_http_port`,
// `meta_group_seeds` (first seed), `meta_user` and `meta_pwd` are read. Flags win over the
// environment, which wins over the .cnf.
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mysql from 'mysql2/promise';

const NODE_TYPES = ['meta_node', 'storage_node', 'computer_node'];
const BODY_LIMIT = 1024 * 1024;

// Kunlun's metadata tables; `?` is the list of addresses asked for (absent: every node).
const QUERIES = {
  meta_node: (filter) =>
    `SELECT hostaddr, port, user_name, passwd FROM meta_db_nodes ${filter ? 'WHERE hostaddr IN (?)' : ''} ORDER BY id`,
  storage_node: (filter) =>
    `SELECT sn.hostaddr, sn.port, sn.user_name, sn.passwd, c.name AS cluster, s.name AS shard
       FROM shard_nodes sn JOIN shards s ON s.id = sn.shard_id JOIN db_clusters c ON c.id = sn.db_cluster_id
      ${filter ? 'WHERE sn.hostaddr IN (?)' : ''} ORDER BY sn.id`,
  computer_node: (filter) =>
    `SELECT cn.hostaddr, cn.port, cn.user_name, cn.passwd, c.name AS cluster, cn.name AS comp
       FROM comp_nodes cn JOIN db_clusters c ON c.id = cn.db_cluster_id
      ${filter ? 'WHERE cn.hostaddr IN (?)' : ''} ORDER BY cn.db_cluster_id, cn.id`,
};

class RequestError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function fail(message) {
  process.stderr.write(`cluster_mgr stand-in: ${message}\n`);
  process.exit(2);
}

function readSettings() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        pidfile: { type: 'string' },
        'meta-host': { type: 'string' },
        'meta-port': { type: 'string' },
        'meta-user': { type: 'string' },
        'meta-password': { type: 'string' },
        'meta-database': { type: 'string' },
        debug: { type: 'boolean' },
        stop: { type: 'boolean' },
      },
    });
  } catch (err) {
    fail(err.message);
  }
  const { values, positionals } = parsed;
  if (values.stop) fail('--stop is not supported: send SIGTERM to the pid in the pidfile');

  const cnf = positionals[0] ? readCnf(positionals[0]) : {};
  const [seedHost, seedPort] = (cnf.meta_group_seeds ?? '').split(',')[0].split(':');
  const settings = {
    host: values.host ?? '127.0.0.1',
    port: Number(values.port ?? cnf.cluster_mgr_http_port),
    pidfile: values.pidfile ? path.resolve(values.pidfile) : undefined,
    meta: {
      host: values['meta-host'] ?? (seedHost || '127.0.0.1'),
      port: Number(values['meta-port'] ?? seedPort),
      user: values['meta-user'] ?? cnf.meta_user,
      password: values['meta-password'] ?? process.env.META_PASSWORD ?? cnf.meta_pwd ?? '',
      database: values['meta-database'] ?? 'kunlun_metadata_db',
    },
  };
  if (!Number.isInteger(settings.port) || settings.port < 0 || settings.port > 65535) fail('--port (or cluster_mgr_http_port) is missing or not a port');
  if (!Number.isInteger(settings.meta.port) || settings.meta.port < 1) fail('--meta-port (or meta_group_seeds) is missing or not a port');
  if (!settings.meta.user) fail('--meta-user (or meta_user) is missing');
  return settings;
}

/** cluster_mgr.cnf: `name = value` lines, `#` comments. */
function readCnf(file) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    fail(`cannot read ${file}: ${err.message}`);
  }
  const cnf = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line.replace(/#.*$/, ''));
    if (m) cnf[m[1]] = m[2];
  }
  return cnf;
}

/** The get_node request as the seed and the original node_mgr send it. */
function parseGetNode(text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new RequestError(400, 'request body is not JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RequestError(400, 'request body is not a JSON object');
  if (body.job_type !== 'get_node') {
    throw new RequestError(400, `job_type ${JSON.stringify(body.job_type ?? null)} is not supported here: this cluster_mgr stand-in answers get_node only`);
  }
  if (body.node_type !== undefined && !NODE_TYPES.includes(body.node_type)) {
    throw new RequestError(400, `node_type ${JSON.stringify(body.node_type)} is not one of ${NODE_TYPES.join(', ')}`);
  }
  const ips = [];
  for (const [key, value] of Object.entries(body)) {
    if (!/^node_ip\d+$/.test(key)) continue;
    if (typeof value !== 'string' || value === '') throw new RequestError(400, `${key} must be a non-empty string`);
    ips.push(value);
  }
  return { types: body.node_type ? [body.node_type] : NODE_TYPES, ips };
}

async function getNode(pool, settings, { types, ips }) {
  const reply = {};
  for (const type of types) {
    let rows;
    try {
      [rows] = await pool.query(QUERIES[type](ips.length > 0), ips.length > 0 ? [ips] : []);
    } catch (err) {
      const { host, port, database } = settings.meta;
      throw new RequestError(500, `metadata DB ${database} at ${host}:${port}: ${err.code ? `${err.code}: ` : ''}${err.message}`);
    }
    rows.forEach((row, i) => {
      const node = { ip: row.hostaddr, port: Number(row.port), user: row.user_name, pwd: row.passwd };
      if (type !== 'meta_node') node.cluster = row.cluster;
      if (type === 'storage_node') node.shard = row.shard;
      if (type === 'computer_node') node.comp = row.comp;
      reply[`${type}${i}`] = node;
    });
  }
  return reply;
}

/** Status line, headers and body in one write: the original clients do a single recv(). */
function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > BODY_LIMIT) {
        reject(new RequestError(413, `request body is larger than ${BODY_LIMIT} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function main() {
  const settings = readSettings();
  const pool = mysql.createPool({
    host: settings.meta.host,
    port: settings.meta.port,
    user: settings.meta.user,
    password: settings.meta.password,
    database: settings.meta.database,
    connectionLimit: 4,
    connectTimeout: 5000,
  });

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://standin');
    try {
      if (req.method === 'GET' && url.pathname === '/health') {
        send(res, 200, { status: 'ok', pid: process.pid });
        return;
      }
      if (req.method !== 'POST' || url.pathname !== '/') {
        throw new RequestError(404, `${req.method} ${url.pathname} is not served here: POST / with a JSON body, or GET /health`);
      }
      // Any Content-Type: the original clients label their JSON x-www-form-urlencoded.
      const request = parseGetNode(await readBody(req));
      const reply = await getNode(pool, settings, request);
      process.stdout.write(
        `get_node ${request.types.length === 1 ? request.types[0] : 'all types'}${request.ips.length ? ` on ${request.ips.join(',')}` : ''}: ${Object.keys(reply).length} node(s)\n`,
      );
      send(res, 200, reply);
    } catch (err) {
      const status = err instanceof RequestError ? err.status : 500;
      if (status === 500) process.stderr.write(`cluster_mgr stand-in: ${err.message}\n`);
      if (!res.headersSent) send(res, status, { result: 'error', info: err.message });
    }
  });

  server.on('error', (err) => fail(`cannot listen on ${settings.host}:${settings.port}: ${err.code ?? err.message}`));
  server.listen(settings.port, settings.host, () => {
    const { port } = server.address();
    if (settings.pidfile) writeFileSync(settings.pidfile, `${process.pid}\n`);
    const m = settings.meta;
    process.stdout.write(`cluster_mgr stand-in ${process.pid} listening on http://${settings.host}:${port}, metadata DB ${m.user}@${m.host}:${m.port}/${m.database}\n`);
  });

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`cluster_mgr stand-in ${process.pid}: ${signal}, stopping\n`);
    // A stuck client must not hold the exit hostage.
    setTimeout(() => process.exit(0), 5000).unref();
    server.close();
    server.closeAllConnections();
    pool.end().finally(() => {
      if (settings.pidfile) removeOwnPidfile(settings.pidfile);
      process.exitCode = 0;
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** Removes the pidfile only while it still names this process (a successor may own it already). */
function removeOwnPidfile(file) {
  try {
    if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
  } catch {
    // already gone: nothing to clean
  }
}

main();

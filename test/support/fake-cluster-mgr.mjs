#!/usr/bin/env node
// The smallest well-behaved supervised program, for engine tests of the cluster_mgr kind:
// listens on 127.0.0.1:<port>, answers GET /health with 200 (anything else 404), writes its pid
// to --pidfile once listening, exits 0 on SIGTERM, unless --ignore-sigterm (to test escalation).
//
//   node fake-cluster-mgr.mjs --port 57000 --pidfile run/fake.pid [--ignore-sigterm]
import { unlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    pidfile: { type: 'string' },
    'ignore-sigterm': { type: 'boolean', default: false },
  },
});
if (!values.port) {
  console.error('fake-cluster-mgr: --port is required');
  process.exit(2);
}

const server = http.createServer((req, res) => {
  const ok = req.method === 'GET' && req.url === '/health';
  res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' });
  res.end(JSON.stringify(ok ? { status: 'ok', pid: process.pid } : { error: 'not found' }));
});

server.listen(Number(values.port), '127.0.0.1', () => {
  if (values.pidfile) writeFileSync(values.pidfile, `${process.pid}\n`);
  console.log(`fake-cluster-mgr: listening on 127.0.0.1:${values.port} as pid ${process.pid}`);
});

process.on('SIGTERM', () => {
  if (values['ignore-sigterm']) {
    console.log('fake-cluster-mgr: ignoring SIGTERM');
    return;
  }
  console.log('fake-cluster-mgr: SIGTERM, exiting');
  server.close();
  if (values.pidfile) {
    try {
      unlinkSync(values.pidfile);
    } catch {
      // already gone
    }
  }
  process.exit(0);
});

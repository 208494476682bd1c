// listen.tls: the API over HTTPS (curl with the cluster's CA), and a table sent between two
// node-mgrs (127.0.0.1 and 127.0.0.2, as two hosts) over HTTPS, the sender checking the receiver's
// certificate against listen.tls.ca. The certificate is made here with openssl.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import mysql from 'mysql2/promise';
import { freePort, removeTempDirs, tempNodeDir, TEST_RUN_AS } from '../support/nodes.ts';
import { killProcessGroups, startNodeMgrProcess, type NodeMgrProcess } from '../support/node-mgr-process.ts';

const TOKEN = 'tls-token';
const USER = 'admin';
const PWD = 'admin_pwd';
const ROWS = 5000;

describe('node-mgr over HTTPS (listen.tls)', () => {
  let root: string;
  let ca: Buffer;
  let apiPort: number;
  const port = { s1: 0, s3: 0 };
  let mgrA: NodeMgrProcess;
  let mgrB: NodeMgrProcess;
  const pids: number[] = [];

  /** A request trusting only the test CA. */
  const call = (url: string, method: string, route: string, body?: unknown) =>
    new Promise<{ status: number; body: any; text: string }>((resolve, reject) => {
      const req = https.request(new URL(route, url), { method, ca, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.once('end', () => {
          let parsed: unknown = null;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, text });
        });
      });
      req.once('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });

  before(async () => {
    root = path.dirname(await tempNodeDir());
    const cert = path.join(root, 'cert.pem');
    const key = path.join(root, 'key.pem');
    // Self-signed: the certificate is its own CA. Both "hosts" are in its subjectAltName.
    await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=node-mgr test', '-addext', 'subjectAltName=IP:127.0.0.1,IP:127.0.0.2']);
    ca = readFileSync(cert);
    apiPort = await freePort();
    port.s1 = await freePort();
    port.s3 = await freePort();
    const node = (name: keyof typeof port, ip: string) => ({ kind: 'mysql', role: 'storage', port: port[name], ip, dir: path.join(root, name), user: USER, password: PWD });
    const common = { runAs: TEST_RUN_AS, security: { token: TOKEN } };
    const tls = { cert, key, ca: cert };
    [mgrA, mgrB] = await Promise.all([
      startNodeMgrProcess(path.join(root, 'mgrA'), { ...common, peers: [{ host: '127.0.0.2', token: TOKEN }], listen: { host: '127.0.0.1', port: apiPort, tls }, stateDir: path.join(root, 'stateA'), nodes: [node('s1', '127.0.0.1')] }),
      startNodeMgrProcess(path.join(root, 'mgrB'), { ...common, listen: { host: '127.0.0.2', port: apiPort, tls }, stateDir: path.join(root, 'stateB'), nodes: [node('s3', '127.0.0.2')] }),
    ]);
    const created = await Promise.all([call(mgrA.url, 'POST', `/v1/nodes/${port.s1}/create`), call(mgrB.url, 'POST', `/v1/nodes/${port.s3}/create`)]);
    for (const c of created) {
      assert.equal(c.status, 200, c.text);
      pids.push(c.body.pid);
    }
    const s1 = await mysql.createConnection({ host: '127.0.0.1', port: port.s1, user: USER, password: PWD, multipleStatements: true });
    await s1.query(`CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB; INSERT INTO shop.orders SELECT seq, CONCAT('order ', seq) FROM shop.seq_1_to_${ROWS};`);
    await s1.end();
    const s3 = await mysql.createConnection({ host: '127.0.0.2', port: port.s3, user: USER, password: PWD });
    await s3.query('CREATE DATABASE shop');
    await s3.end();
  });

  after(async () => {
    await mgrA?.stop('SIGKILL');
    await mgrB?.stop('SIGKILL');
    await killProcessGroups(pids);
    await removeTempDirs();
  });

  it('serves the legacy protocol over HTTPS to curl --cacert, and nothing to plain HTTP', async () => {
    assert.match(mgrA.url, /^https:\/\//);
    const ok = await execa('curl', ['-sS', '--cacert', path.join(root, 'cert.pem'), '-d', '{"ver":"0.1","job_type":"get_node"}', `${mgrA.url}/`]);
    const reply = JSON.parse(ok.stdout);
    assert.equal(reply.storage_node0?.port, port.s1, ok.stdout);
    const plain = await execa('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-d', '{"ver":"0.1","job_type":"get_node"}', `http://127.0.0.1:${apiPort}/`], { reject: false });
    assert.notEqual(plain.stdout, '200', 'plain HTTP gets no answer from the HTTPS port');
  });

  it('sends a table to another host\'s node-mgr over HTTPS, checking its certificate against the CA', async () => {
    const r = await call(mgrA.url, 'POST', '/', {
      ver: '0.1', job_type: 'send', file_type: 'table',
      s_ip: '127.0.0.1', s_port: port.s1, s_user: USER, s_pwd: PWD, s_dbname: 'shop', s_table_name: 'orders',
      d_ip: '127.0.0.2', d_port: port.s3, d_user: USER, d_pwd: PWD, d_dbname: 'shop', d_table_name: 'orders',
    });
    assert.equal(r.status, 200, r.text);
    let job: any;
    for (let i = 0; i < 600; i++) {
      job = (await call(mgrA.url, 'POST', '/', { ver: '0.1', job_type: 'get_status', job_id: r.body.job_id })).body;
      if (job.result !== 'busy') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(job.result, 'succeed', JSON.stringify(job));
    assert.equal(job.output.destination.via, `https://127.0.0.2:${apiPort}`);
    const s3 = await mysql.createConnection({ host: '127.0.0.2', port: port.s3, user: USER, password: PWD });
    const [rows] = await s3.query('SELECT COUNT(*) AS n FROM shop.orders');
    await s3.end();
    assert.equal(Number((rows as Array<{ n: number }>)[0]!.n), ROWS);
  });
});

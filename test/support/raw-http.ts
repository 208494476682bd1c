// The exact bytes the original C++ clients send (http_post_para / http_post_file), over a raw socket.
import net from 'node:net';

/** Writes `request` in one send and reads until the server closes; resolves the whole response. */
export function rawRequest(port: number, request: Buffer | string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.connect(port, host, () => sock.write(request));
    sock.setTimeout(30_000, () => sock.destroy(new Error('raw request timed out')));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** http_post_para: HTTP/1.0, `Content-Type:application/x-www-form-urlencoded` with no space. */
export function httpPostPara(port: number, json: string): Promise<string> {
  const req = `POST / HTTP/1.0\r\nHOST: 127.0.0.1:${port}\r\nAccept: */*\r\nContent-Type:application/x-www-form-urlencoded\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`;
  return rawRequest(port, req);
}

const BOUNDARY = '----WebKitFormBoundaryZjrentBBjYWJ7gXp';

/** http_post_file: the multipart layout of the original client, parts `parameters` then `filename`. */
export function httpPostFile(port: number, json: string, filename: string, content: Buffer | string): Promise<string> {
  const head = Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="parameters"\r\n\r\n${json}\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="filename"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  const body = Buffer.concat([head, Buffer.from(content), tail]);
  const req = Buffer.concat([
    Buffer.from(`POST / HTTP/1.0\r\nHOST: 127.0.0.1:${port}\r\nAccept: */*\r\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${body.length}\r\n\r\n`),
    body,
  ]);
  return rawRequest(port, req);
}

/** Splits a raw response into status line, headers and the parsed JSON body. */
export function parseRaw(raw: string): { statusLine: string; headers: string; body: any } {
  const i = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, i);
  const [statusLine, ...headers] = head.split('\r\n');
  return { statusLine: statusLine!, headers: headers.join('\n'), body: JSON.parse(raw.slice(i + 4)) };
}

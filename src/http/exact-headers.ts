// The reply bytes the original clients can read (PROTOCOL §1). `http_post_para` / `http_post_file`
// search what one recv() brought for `200 OK`, `Content-Length:` and `\r\n\r\n`, case-sensitively,
// in at most 2,047 bytes. fastify keeps header names in lower case, so every reply would say
// `content-length:` and those clients would fail on it. The server is built with this response
// class instead of Node's own: header names go out in their usual spelling, whoever sets them.
import { ServerResponse, type IncomingMessage, type OutgoingHttpHeader, type OutgoingHttpHeaders } from 'node:http';

/** `content-length` → `Content-Length`; a name already spelled with capitals is left as given. */
export function exactHeaderName(name: string): string {
  return /[A-Z]/.test(name) ? name : name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

export class ExactHeaderResponse<Req extends IncomingMessage = IncomingMessage> extends ServerResponse<Req> {
  /**
   * A reply of the seed face (POST /, GET /<job_id>): the few bytes the original clients' single
   * read allows go to the JSON, so no `Date` and no `charset` parameter (JSON is UTF-8 by
   * definition; RFC 8259 defines no charset for it). Set by an onRequest hook in app.ts.
   */
  seedFace = false;

  override setHeader(name: string, value: number | string | readonly string[]): this {
    return super.setHeader(exactHeaderName(name), value);
  }

  override appendHeader(name: string, value: string | readonly string[]): this {
    return super.appendHeader(exactHeaderName(name), value);
  }

  // Node's writeHead takes (status, headers), (status, reason, headers), and headers as an object,
  // a flat [name, value, …] list or a list of pairs; passed here they would bypass setHeader.
  override writeHead(
    statusCode: number,
    reasonOrHeaders?: string | OutgoingHttpHeaders | OutgoingHttpHeader[],
    maybeHeaders?: OutgoingHttpHeaders | OutgoingHttpHeader[],
  ): this {
    const reason = typeof reasonOrHeaders === 'string' ? reasonOrHeaders : undefined;
    const headers = typeof reasonOrHeaders === 'string' ? maybeHeaders : reasonOrHeaders;
    if (Array.isArray(headers)) {
      const pairs: unknown[][] = Array.isArray(headers[0]) ? (headers as unknown as unknown[][]) : [];
      if (pairs.length === 0) for (let i = 0; i + 1 < headers.length; i += 2) pairs.push([headers[i], headers[i + 1]]);
      for (const [name, value] of pairs) if (name) this.appendHeader(String(name), value as string | string[]);
    } else if (headers) {
      for (const [name, value] of Object.entries(headers)) if (value !== undefined) this.setHeader(name, value);
    }
    if (this.seedFace) {
      this.sendDate = false;
      const type = this.getHeader('content-type');
      if (typeof type === 'string' && /^application\/json\s*;\s*charset=utf-8$/i.test(type)) this.setHeader('Content-Type', 'application/json');
    }
    return reason === undefined ? super.writeHead(statusCode) : super.writeHead(statusCode, reason);
  }
}

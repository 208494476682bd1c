// The destination side of a cross-host table send (PROTOCOL §6.4): the source host's node-mgr asks
// `POST /v1/recv/table/preflight`, then streams the .cfg/.ibd to `POST /v1/recv/table`, which
// imports them into the local node and answers with the verification. Access 'peer': the sending
// node-mgr presents this host's security.peerToken (or the full token), auth.ts.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { tableImportsFor } from '../jobs/table-jobs.ts';
import { TABLE_STREAM_CONTENT_TYPE } from '../jobs/table-stream.ts';
import { HttpError } from './errors.ts';

const preflightBody = z.object({
  destination: z.object({
    port: z.number().int().min(1).max(65535),
    database: z.string().min(1).max(192),
    table: z.string().min(1).max(192),
    user: z.string().max(256),
    password: z.string().max(256),
  }),
  table: z.object({ createStatement: z.string().min(1).max(1024 * 1024), version: z.string().max(256), pageSize: z.number().int().positive() }),
});

export async function tableRecvRoutes(app: FastifyInstance): Promise<void> {
  const deps = app.services;
  const imports = tableImportsFor(deps.config, deps.supervisor, deps.log.child({ component: 'table-transfer' }));

  // The stream is read as it arrives, never buffered: no body limit applies to it.
  app.addContentTypeParser(TABLE_STREAM_CONTENT_TYPE, (_req, payload, done) => done(null, payload));

  app.post<{ Body: unknown }>(
    '/recv/table/preflight',
    { config: { access: 'peer' }, schema: { summary: 'Table send, destination side: may this node take the table? Changes nothing.' } },
    async (req) => {
      const parsed = preflightBody.safeParse(req.body);
      if (!parsed.success) throw new HttpError(400, `recv preflight: field "${parsed.error.issues[0]?.path.join('.')}" ${parsed.error.issues[0]?.message}`);
      const { destination: d, table } = parsed.data;
      const node = deps.supervisor.byPort(d.port);
      if (!node) throw new HttpError(404, `no node on port ${d.port} on this host`);
      const { condition } = await imports.preflight({ nodeId: node.id, database: d.database, table: d.table, creds: { user: d.user, password: d.password } }, table);
      return { result: 'succeed', node: node.id, condition };
    },
  );

  app.post(
    '/recv/table',
    {
      schema: { summary: `Table send, destination side: a ${TABLE_STREAM_CONTENT_TYPE} body (header, .cfg, .ibd, trailer); imports it and answers with the verification` },
      // A large table takes longer than any fixed request bound; a stalled sender still meets the idle timeout.
      config: { access: 'peer', streamedBody: true },
    },
    async (req) => {
      if (req.headers['content-type'] !== TABLE_STREAM_CONTENT_TYPE) throw new HttpError(415, `recv expects Content-Type ${TABLE_STREAM_CONTENT_TYPE}`);
      // The import and its checksum can outlast the idle timeout of the socket after the last byte:
      // once the body is in, the socket may be quiet.
      const socket = req.raw.socket;
      const idle = socket.timeout;
      if (req.raw.complete) socket.setTimeout(0);
      else req.raw.once('end', () => socket.setTimeout(0));
      try {
        const result = await imports.receive(req.body as AsyncIterable<Buffer>);
        req.log.info({ node: result.node, table: `${result.database}.${result.table}`, bytes: result.bytes }, 'table received and imported');
        return { result: 'succeed', ...result };
      } finally {
        if (!socket.destroyed && idle) socket.setTimeout(idle);
      }
    },
  );
}

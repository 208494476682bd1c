// JSON schemas more than one route plugin uses: the error reply, a node's port in the path, a
// job's acceptance. Shared objects, so a change to one shape changes every route that has it.

/** Every error reply (errors.ts): {"result":"error","info":"<one sentence>"}. */
export const errorSchema = { type: 'object', properties: { result: { type: 'string' }, info: { type: 'string' } } } as const;

/** A TCP port: how node-mgr names a node on the wire. */
export const portSchema = { type: 'integer', minimum: 1, maximum: 65535 } as const;

/** `/nodes/:port`: the route's node, by its port. */
export const portParams = { type: 'object', required: ['port'], properties: { port: portSchema } } as const;

/** The reply to a request that started a job: 202 with its id. */
export const acceptedSchema = {
  type: 'object',
  properties: { result: { type: 'string' }, info: { type: 'string' }, job_id: { type: 'string' } },
} as const;

// What kind of failure an error is, said by the layer that knows it (jobs/, supervisor/, backup/,
// engines/, state/, config/): never an HTTP status. The HTTP edge alone turns a kind into a status
// (http/errors.ts), so the layers below http/ know nothing of HTTP.
//   invalid      the request is wrong: a bad command, name, config or parameter
//   not_found    the request names a node, job or table that is not there
//   conflict     the target's state forbids it now (a node held by a job, a job id reused)
//   unavailable  node-mgr cannot serve it now (shutting down, the state file is unwritable)
//   internal     it failed on our side; the message still says what failed
export type ErrorKind = 'invalid' | 'not_found' | 'conflict' | 'unavailable' | 'internal';

/** An error whose message is a sentence for the caller, and whose kind says what went wrong. */
export interface KindedError extends Error {
  readonly kind: ErrorKind;
}

const KINDS: ReadonlySet<string> = new Set<ErrorKind>(['invalid', 'not_found', 'conflict', 'unavailable', 'internal']);

/** The kind an error declares, if it is one of ours. */
export function errorKind(err: unknown): ErrorKind | undefined {
  const kind = err instanceof Error ? (err as { kind?: unknown }).kind : undefined;
  return typeof kind === 'string' && KINDS.has(kind) ? (kind as ErrorKind) : undefined;
}

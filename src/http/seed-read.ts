// What the original clients can read of a seed reply (PROTOCOL §1): one recv() of at most 2,047
// bytes, status line and headers included. A reply that grows with data (a job's result that lists
// every table or binlog, a long error text) is made to fit here, and says where the whole is.

/**
 * The body bytes a seed reply may have: 2,047 less the status line and headers (about 125 bytes
 * with keep-alive), with room to spare for a longer Content-Length or Keep-Alive value.
 */
export const SEED_BODY_MAX = 1800;

/** Longest string a summarized value keeps (a path, a GTID list, a reason). */
const SUMMARY_TEXT_MAX = 160;

export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value));
}

/** `text` cut to at most `max` characters, saying where the whole text is. */
export function cutText(text: string, max: number, whole: string): string {
  if (text.length <= max) return text;
  const tail = `… (whole text: ${whole})`;
  return text.slice(0, Math.max(0, max - tail.length)) + tail;
}

/**
 * A value's summary for the seed face: every list becomes its length (`"tables":40`), long strings
 * are cut, objects keep their keys. The keys a result has are fixed by its job type, so what is
 * left no longer grows with the data.
 */
export function summarize(value: unknown, whole: string): unknown {
  if (Array.isArray(value)) return value.length;
  if (typeof value === 'string') return cutText(value, SUMMARY_TEXT_MAX, whole);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, summarize(v, whole)]));
}

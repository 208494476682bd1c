// Secrets a job was given (passwords in its params) must not come back in its error text or result:
// a driver's message can quote a DSN, a tool's output can echo its command line.
import { SECRET_KEY, REDACTED } from '../state/store.ts';

/** The string values of secret-keyed params, to scrub from error texts and results (a DSN in a message…). */
export function secretValues(params: unknown, found: Set<string> = new Set()): Set<string> {
  if (Array.isArray(params)) params.forEach((p) => secretValues(p, found));
  else if (params !== null && typeof params === 'object') {
    for (const [key, value] of Object.entries(params)) {
      if (SECRET_KEY.test(key) && typeof value === 'string' && value.length > 0) found.add(value);
      else secretValues(value, found);
    }
  }
  return found;
}

/** Control characters a tool's output can carry (a BEL from mariabackup) have no place in a reply. */
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u0008\u000b-\u001f\u007f]/g;

export function scrubText(text: string, secrets: readonly string[]): string {
  let out = text.replace(CONTROL_CHARS, '');
  for (const secret of secrets) out = out.split(secret).join(REDACTED);
  return out;
}

export function scrubValue(value: unknown, secrets: readonly string[]): unknown {
  if (secrets.length === 0) return value;
  if (typeof value === 'string') return scrubText(value, secrets);
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, secrets));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrubValue(v, secrets)]));
  }
  return value;
}

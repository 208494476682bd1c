// Server options that arrive over the network (POST /v1/nodes, the seed's uploaded install
// configs) are taken only from an allow-list of tuning options, each with a value check. A name is
// first normalised the way the server itself reads it, so no other spelling of a refused option
// (`loose-init-file`, `INIT_FILE`, `--init-file`) slips past; then it must be a full name on the
// list. The operator's own config file is not checked against the list (docs/decisions.md).
import type { NodeKind } from '../config/schema.ts';
import { mysqlApiOptions } from './mysql/options.ts';
import type { ApiOptionPolicy, OptionRule } from './option-rules.ts';
import { postgresApiOptions } from './postgres/options.ts';

export type OptionValue = string | number | boolean;

export class ServerOptionError extends Error {
  constructor(
    /** The name as the caller gave it. */
    readonly option: string,
    message: string,
  ) {
    super(message);
    this.name = 'ServerOptionError';
  }
}

const TRUE_WORDS = new Set(['1', 'on', 'true', 'yes']);
const FALSE_WORDS = new Set(['0', 'off', 'false', 'no']);

function asBool(value: OptionValue): boolean | null {
  if (typeof value === 'boolean') return value;
  const text = String(value).toLowerCase();
  if (TRUE_WORDS.has(text)) return true;
  if (FALSE_WORDS.has(text)) return false;
  return null;
}

/** The value to write, or a reason it is refused. */
function checkValue(rule: OptionRule, value: OptionValue): { value: OptionValue } | { reason: string } {
  switch (rule.type) {
    case 'bool': {
      const b = asBool(value);
      return b === null ? { reason: 'must be a boolean (true/false, on/off, 1/0)' } : { value: b };
    }
    case 'int': {
      const units = rule.units ?? {};
      const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value : '';
      const m = /^(-?\d{1,19})([A-Za-z]{0,3})$/.exec(text);
      const unitKey = m && rule.caseInsensitiveUnits ? Object.keys(units).find((u) => u.toLowerCase() === m[2]!.toLowerCase()) : m?.[2];
      if (!m || (m[2] && (unitKey === undefined || units[unitKey] === undefined))) {
        const suffixes = Object.keys(units);
        return { reason: `must be an integer${suffixes.length ? ` with an optional unit (${suffixes.join(', ')})` : ''}` };
      }
      const amount = Number(m[1]) * (m[2] ? units[unitKey!]! : 1);
      if (!Number.isSafeInteger(Number(m[1])) || amount < rule.min || amount > rule.max) return { reason: `must be between ${rule.min} and ${rule.max}` };
      return { value: m[2] ? `${m[1]}${unitKey}` : Number(m[1]) };
    }
    case 'real': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && /^-?\d{1,12}(\.\d{1,12})?$/.test(value) ? Number(value) : NaN;
      if (!Number.isFinite(n) || n < rule.min || n > rule.max) return { reason: `must be a number between ${rule.min} and ${rule.max}` };
      return { value: n };
    }
    case 'enum': {
      const hit = rule.values.find((v) => v.toLowerCase() === String(value).toLowerCase());
      return hit === undefined || typeof value === 'boolean' ? { reason: `must be one of ${rule.values.join(', ')}` } : { value: hit };
    }
    case 'name':
      return typeof value === 'string' && /^[A-Za-z][A-Za-z0-9_]*([/+-][A-Za-z0-9_]+){0,3}$/.test(value) && value.length <= 64
        ? { value }
        : { reason: 'must be a plain name (letters, digits, _)' };
    case 'words':
      return typeof value === 'string' && /^([A-Za-z_]{1,64}(,[A-Za-z_]{1,64})*)?$/.test(value) ? { value: value.toUpperCase() } : { reason: 'must be a comma-separated list of words' };
  }
}

const POLICIES: Readonly<Record<NodeKind, ApiOptionPolicy | null>> = {
  mysql: mysqlApiOptions,
  postgres: postgresApiOptions,
  // cluster_mgr gets its settings from its own config file, not from node-mgr.
  cluster_mgr: null,
};

/**
 * Checks server options from the network against the kind's allow-list and returns them under
 * their canonical names with checked values (what the engine then writes). Throws
 * ServerOptionError naming the first refused option.
 */
export function checkApiServerOptions(kind: NodeKind, options: Readonly<Record<string, OptionValue>>): Record<string, OptionValue> {
  const policy = POLICIES[kind];
  const out: Record<string, OptionValue> = {};
  const givenAs = new Map<string, string>();
  for (const [name, value] of Object.entries(options)) {
    const refuse = (why: string) => new ServerOptionError(name, `server option ${JSON.stringify(name)} ${why}`);
    if (!policy) throw refuse(`cannot be set: a ${kind} node takes no server options from node-mgr`);
    const r = policy.resolve(name);
    if (!r.ok) throw refuse(r.reason);
    if (r.implied !== undefined) {
      // `skip-x` / `enable-x` carry their value in the name; the value may only confirm it.
      if (asBool(value) !== true) throw refuse(`sets ${r.canonical} by its prefix and takes no other value than true`);
    }
    const checked = r.implied !== undefined ? { value: r.implied } : checkValue(r.rule, value);
    if ('reason' in checked) throw refuse(`(${r.canonical}) ${checked.reason}`);
    const earlier = givenAs.get(r.canonical);
    if (earlier !== undefined) throw refuse(`sets ${r.canonical}, which ${JSON.stringify(earlier)} sets too`);
    givenAs.set(r.canonical, name);
    out[r.canonical] = checked.value;
  }
  return out;
}

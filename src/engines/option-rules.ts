// The shape of an engine's allow-list of network-settable server options (server-options.ts
// checks them): what a value may be, and what a name means to the server.

/** What an allowed option's value may be. Nothing here takes a path or free text. */
export type OptionRule =
  | { type: 'bool' }
  /** An integer, optionally with a unit suffix from `units` (suffix → factor in the option's own unit). */
  | { type: 'int'; min: number; max: number; units?: Readonly<Record<string, number>>; caseInsensitiveUnits?: boolean }
  | { type: 'real'; min: number; max: number }
  /** One of `values`, matched without regard to case and written as listed. */
  | { type: 'enum'; values: readonly string[] }
  /** A character set, collation or time zone name: letters, digits, `_`, and `/`, `+`, `-` inside. */
  | { type: 'name' }
  /** A comma-separated list of upper-case words (sql_mode). */
  | { type: 'words' };

/** Which option a given name means, as the server would read it. */
export type Resolved =
  | { ok: true; canonical: string; rule: OptionRule; /** `skip-`/`disable-`/`enable-` form of a boolean: the value it sets. */ implied?: boolean }
  | { ok: false; reason: string };

/** An engine's list: what a given name means to its server. Booleans are written as booleans (the renderers spell them). */
export interface ApiOptionPolicy {
  resolve(name: string): Resolved;
}

/** The reason used for a name not on a list: one sentence, naming where such options belong. */
export function notAllowed(what: string, canonical: string): { ok: false; reason: string } {
  return {
    ok: false,
    reason: `(${what} ${canonical}) is not among the tuning options node-mgr accepts over the network; only node-mgr's own config file can set it`,
  };
}

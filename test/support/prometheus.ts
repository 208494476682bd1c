// Checks text against the Prometheus exposition format (0.0.4) line by line and parses samples.
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
// Prometheus parses values with Go's ParseFloat: NaN and Inf in any letter case (prom-client writes `Nan`).
const VALUE = '(?:NaN|[+-]?Inf|[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?)';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})? (${VALUE})(?: -?\\d+)?$`, 'i');
const HELP = new RegExp(`^# HELP (${NAME}) .*$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

/** Throws on the first line that is not valid exposition text; returns every sample. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  text.split('\n').forEach((line, i) => {
    if (line === '') return;
    if (line.startsWith('#')) {
      const type = TYPE.exec(line);
      if (type) {
        if (types.has(type[1]!)) throw new Error(`line ${i + 1}: second TYPE for ${type[1]}`);
        types.set(type[1]!, type[2]!);
        return;
      }
      if (HELP.test(line)) return;
      throw new Error(`line ${i + 1}: a comment that is neither HELP nor TYPE: ${line}`);
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`line ${i + 1} is not a valid sample: ${line}`);
    const name = m[1]!;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count|total|created)$/, '');
    if (!types.has(family)) throw new Error(`line ${i + 1}: sample ${name} has no TYPE line before it`);
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
    samples.push({ name, labels, value: Number(m[3]!.replace(/^\+?inf$/i, 'Infinity').replace(/^-inf$/i, '-Infinity')) });
  });
  return samples;
}

export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

// A second test reporter for `npm test`: after the whole run it prints each failed test once, with
// its file and the error's message (and cause), so the end of a long CI log says what failed and why
// even when the log is shown cut. Suites that failed only because a test in them did are left out.
export default async function* failureSummary(source) {
  const failed = [];
  for await (const event of source) {
    if (event.type !== 'test:fail') continue;
    const { name, file, line, details } = event.data;
    const err = details?.error;
    if (err?.failureType === 'subtestsFailed') continue;
    const cause = err?.cause ?? err;
    const message = String(cause?.message ?? cause ?? 'no error given').slice(0, 1500);
    const where = file ? `${file.replace(process.cwd() + '/', '')}${line ? `:${line}` : ''}` : '';
    const stack = typeof cause?.stack === 'string' ? cause.stack.split('\n').filter((l) => l.includes('/test/') || l.includes('/src/')).slice(0, 4).join('\n') : '';
    failed.push(`✖ ${name} (${where}, ${err?.failureType ?? 'failure'})\n  ${message.replace(/\n/g, '\n  ')}${stack ? `\n${stack}` : ''}`);
  }
  yield failed.length ? `\n# failures (${failed.length}):\n${failed.join('\n\n')}\n` : '\n# failures: none\n';
}

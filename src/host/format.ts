// `du -h` / `df -h` style sizes, as the original get_node and get_info replies carry them.
export function humanSize(bytes: number): string {
  const units = ['B', 'K', 'M', 'G', 'T', 'P'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${v}B`;
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[i]}`;
}

export function megabytes(bytes: number): string {
  return `${Math.round(bytes / 1024 / 1024)}M`;
}

// Terminal output of the CLI: aligned tables, sizes, durations, progress bars, and colour only
// on a terminal (NO_COLOR turns it off, FORCE_COLOR on).
import { styleText } from 'node:util';
import type { JobSummary, NodeSummary } from './client.ts';

export function useColour(stream: NodeJS.WriteStream = process.stdout): boolean {
  if (process.env.NO_COLOR) return false;
  if (process.env.FORCE_COLOR && process.env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true;
}

type Style = Parameters<typeof styleText>[0];

const STATE_STYLE: Record<string, Style> = {
  running: 'green',
  stopped: 'gray',
  crashed: 'red',
  failed: ['red', 'bold'],
  backoff: 'yellow',
};

function paint(text: string, style: Style | undefined, colour: boolean): string {
  return colour && style ? styleText(style, text) : text;
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '-';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

/** Columns padded to the widest cell; the last column is not padded. Styles apply after padding. */
export function table(header: string[], rows: Array<Array<{ text: string; style?: Style } | string>>, colour: boolean): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'string' ? { text: c } : c)));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.text.length)));
  const line = (r: Array<{ text: string; style?: Style }>) =>
    r.map((c, i) => paint(i === r.length - 1 ? c.text : c.text.padEnd(widths[i]!), c.style, colour)).join('  ').trimEnd();
  return [line(header.map((h) => ({ text: h, style: 'bold' as Style }))), ...cells.map(line)].join('\n');
}

export function nodesTable(nodes: NodeSummary[], opts: { colour: boolean; now?: number }): string {
  const now = opts.now ?? Date.now();
  const rows = nodes.map((n) => {
    const up = n.state === 'running' && n.pid !== null ? duration((now - Date.parse(n.since)) / 1000) : '-';
    const cpu = n.usage?.cpuPct === null || n.usage?.cpuPct === undefined ? '-' : `${n.usage.cpuPct.toFixed(1)}%`;
    const where = [n.cluster, n.shard].filter(Boolean).join('/') || '-';
    return [
      n.id,
      n.role,
      String(n.port),
      { text: n.state + (n.paused ? ' (paused)' : ''), style: STATE_STYLE[n.state] ?? 'yellow' },
      n.wanted,
      n.pid === null ? '-' : String(n.pid),
      up,
      cpu,
      bytes(n.usage?.memRss),
      where,
      String(n.restarts),
      { text: n.lastError ?? '', style: 'red' as Style },
    ];
  });
  return table(['NODE', 'ROLE', 'PORT', 'STATE', 'WANTED', 'PID', 'UPTIME', 'CPU', 'MEM', 'CLUSTER/SHARD', 'RESTARTS', 'LAST ERROR'], rows, opts.colour);
}

const JOB_STYLE: Record<string, Style> = { succeeded: 'green', failed: 'red', cancelled: 'gray', interrupted: 'red', running: 'cyan', queued: 'yellow' };

/** `[#####.....]  42%  1.2 GiB/2.9 GiB  35 MiB/s  ETA 48s`, or the phase alone when a job reports no bytes. */
export function progressText(job: Pick<JobSummary, 'status' | 'phase' | 'progress'>, width = 20): string {
  const p = job.progress;
  if (!p) return job.phase ?? '';
  const parts = [p.phase];
  if (p.pct !== undefined) {
    const filled = Math.round((Math.min(100, Math.max(0, p.pct)) / 100) * width);
    parts.push(`[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(p.pct)).padStart(3)}%`);
  }
  if (p.bytes_done !== undefined) parts.push(p.bytes_total ? `${bytes(p.bytes_done)}/${bytes(p.bytes_total)}` : bytes(p.bytes_done));
  if (p.files_total !== undefined) parts.push(`${p.files_done ?? 0}/${p.files_total} files`);
  if (p.events !== undefined) parts.push(`${p.events} events`);
  if (p.rate_bps !== undefined && job.status === 'running') parts.push(`${bytes(p.rate_bps)}/s`);
  if (p.eta_s !== undefined && job.status === 'running') parts.push(`ETA ${duration(p.eta_s)}`);
  return parts.join('  ');
}

export function jobsTable(jobs: JobSummary[], opts: { colour: boolean; now?: number }): string {
  const now = opts.now ?? Date.now();
  const rows = jobs.map((j) => [
    j.id,
    j.type,
    j.nodeId ?? '-',
    { text: j.status, style: JOB_STYLE[j.status] },
    duration(((j.finishedAt ?? now) - j.createdAt) / 1000),
    j.status === 'running' || j.status === 'queued' ? progressText(j) : (j.info ?? ''),
  ]);
  return table(['JOB', 'TYPE', 'NODE', 'STATUS', 'TIME', 'PROGRESS / INFO'], rows, opts.colour);
}

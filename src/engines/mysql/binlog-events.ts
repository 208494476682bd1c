// Follows the text mariadb-binlog writes while it streams into the client: which event it is at
// (for progress), and the last *transaction* it wrote in full (for the job's result and the GTID
// state of the restored server). It reads only the comment lines mariadb-binlog puts before each
// event (`# at 256`, `#261204  0:19:49 server id 7  end_log_pos 421 … GTID 0-7-6 trans`) and the
// one-word lines that open or close a transaction; the row images (base64) pass through untouched.
//
// A transaction is complete at its Xid event, at a COMMIT query, or — for a group without
// START TRANSACTION (DDL) — at its one query event. mariadb-binlog stops at an event boundary and
// ends with ROLLBACK, so a group it cut off is not applied, and not reported either.

/** One event that ended a transaction. */
export interface BinlogEventMark {
  /** The binlog file it is in. */
  file: string;
  /** The position after it (end_log_pos): where replication would continue. */
  position: number;
  gtid: string | null;
  /** The event's timestamp (whole seconds), ISO 8601 UTC. */
  time: string;
}

interface Header {
  time: string;
  endPos: number;
  kind: 'gtid' | 'query' | 'xid' | 'start' | 'gtidlist' | 'other';
  gtid?: string;
  /** Gtid list events: the GTIDs before the file's first transaction. */
  list?: string[];
}

// `#261204  0:19:49 server id 7  end_log_pos 421 CRC32 0x8f7c82c0 	GTID 0-7-6 trans`
const HEADER = /^#(\d{2})(\d{2})(\d{2}) +(\d{1,2}):(\d{2}):(\d{2}) server id \d+ +end_log_pos (\d+)(?: CRC32 0x[0-9a-f]+)?\s+(.*)$/;

/** Parses an event's header comment; null for any other line. Times are read as UTC (mariadb-binlog runs with TZ=UTC). */
export function parseEventHeader(line: string): Header | null {
  const m = HEADER.exec(line);
  if (!m) return null;
  const [, yy, mo, dd, hh, mi, ss, end, rest] = m;
  const time = `20${yy}-${mo}-${dd}T${hh!.padStart(2, '0')}:${mi}:${ss}.000Z`;
  const body = rest!;
  let kind: Header['kind'] = 'other';
  let gtid: string | undefined;
  const g = /^GTID (\d+-\d+-\d+)/.exec(body);
  if (g) {
    kind = 'gtid';
    gtid = g[1];
  } else if (body.startsWith('Query')) kind = 'query';
  else if (body.startsWith('Xid')) kind = 'xid';
  else if (body.startsWith('Start: binlog')) kind = 'start';
  const l = /^Gtid list \[([^\]]*)\]/.exec(body);
  if (l) return { time, endPos: Number(end), kind: 'gtidlist', list: l[1]!.split(',').map((x) => x.trim()).filter(Boolean) };
  return { time, endPos: Number(end), kind, ...(gtid ? { gtid } : {}) };
}

export interface ScanState {
  /** Index into the files given, advanced at each file's format description event. */
  fileIndex: number;
  /** Position (`# at N`) of the event being written, within the current file. */
  at: number;
  /** Event headers seen. */
  events: number;
  /** Last complete transaction; null before the first. */
  last: BinlogEventMark | null;
  /** Per GTID domain, the last complete transaction's GTID. */
  lastByDomain: Map<string, string>;
  /**
   * Set when a file does not continue the ones before it: its Gtid list is behind what was applied
   * in some domain, so it belongs to another history (the server was restored in between).
   */
  fork: string | null;
}

/**
 * A byte-level scanner: `push` every chunk of mariadb-binlog's output in order. Lines are found
 * with indexOf; only short lines that start with `#` or are a transaction keyword are decoded.
 */
export class BinlogOutputScanner {
  readonly state: ScanState = { fileIndex: -1, at: 0, events: 0, last: null, lastByDomain: new Map(), fork: null };
  private carry: Buffer | null = null;
  private group: { gtid: string; standalone: boolean; time: string } | null = null;
  private current: Header | null = null;

  constructor(private readonly files: readonly string[]) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.carry) {
      buf = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) break;
      this.line(buf, start, nl);
      start = nl + 1;
    }
    // The rest is the beginning of a line; only a short one can matter, so a long base64 tail is not kept whole.
    if (start < buf.length) this.carry = Buffer.from(buf.subarray(start, Math.min(buf.length, start + 512)));
  }

  private line(buf: Buffer, from: number, to: number): void {
    const first = buf[from];
    if (first === 0x23 /* # */) {
      const text = buf.toString('latin1', from, Math.min(to, from + 400));
      if (text.startsWith('# at ')) {
        this.state.at = Number(text.slice(5));
        return;
      }
      const h = parseEventHeader(text);
      if (h) this.header(h);
      return;
    }
    // Transaction keywords: START TRANSACTION (17 bytes) after a GTID event, COMMIT (6) in a query event.
    const len = to - from;
    if (len === 17 && this.current?.kind === 'gtid' && buf.toString('latin1', from, to) === 'START TRANSACTION') {
      if (this.group) this.group.standalone = false;
    } else if (len === 6 && this.current?.kind === 'query' && this.group && !this.group.standalone && buf.toString('latin1', from, to) === 'COMMIT') {
      this.complete(this.current);
    }
  }

  private header(h: Header): void {
    this.state.events++;
    // A group whose single query event has been written in full is complete once the next event begins.
    if (this.current?.kind === 'query' && this.group?.standalone) this.complete(this.current);
    this.current = h;
    switch (h.kind) {
      case 'start':
        this.state.fileIndex++;
        this.group = null;
        break;
      case 'gtid':
        this.group = { gtid: h.gtid!, standalone: true, time: h.time };
        break;
      case 'xid':
        this.complete(h);
        break;
      case 'gtidlist':
        if (this.state.fileIndex >= 1 && this.state.fork === null) this.checkContinues(h.list ?? []);
        break;
      default:
    }
  }

  private checkContinues(list: string[]): void {
    const startSeq = new Map<string, number>();
    for (const g of list) {
      const [d, , n] = g.split('-');
      startSeq.set(d!, Math.max(startSeq.get(d!) ?? 0, Number(n)));
    }
    for (const [domain, gtid] of this.state.lastByDomain) {
      const applied = Number(gtid.split('-')[2]);
      const begins = startSeq.get(domain);
      if (begins === undefined || begins < applied) {
        const file = this.files[this.state.fileIndex] ?? '?';
        this.state.fork = `${file} does not continue the binlogs before it: it begins at GTID list [${list.join(',')}], but ${gtid} was already applied from ${this.state.last?.file ?? 'an earlier file'}; the archive holds two histories (the server was restored in between)`;
        return;
      }
    }
  }

  /** Call once the stream has ended normally: a standalone query at the very end is complete too. */
  end(): void {
    if (this.current?.kind === 'query' && this.group?.standalone) this.complete(this.current);
    this.current = null;
  }

  private complete(h: Header): void {
    if (!this.group) return;
    const gtid = this.group.gtid;
    this.state.last = { file: this.files[Math.max(0, this.state.fileIndex)] ?? '?', position: h.endPos, gtid, time: h.time };
    this.state.lastByDomain.set(gtid.split('-')[0]!, gtid);
    this.group = null;
  }
}

/**
 * The GTID position after a replay: the backup's, with each domain the replay wrote in replaced by
 * the last GTID it applied there.
 */
export function mergeGtidPositions(base: string | undefined, applied: ReadonlyMap<string, string>): string {
  const byDomain = new Map<string, string>();
  for (const g of (base ?? '').split(',').map((s) => s.trim()).filter(Boolean)) byDomain.set(g.split('-')[0]!, g);
  for (const [domain, g] of applied) byDomain.set(domain, g);
  return [...byDomain.entries()].sort((a, b) => Number(a[0]) - Number(b[0])).map(([, g]) => g).join(',');
}

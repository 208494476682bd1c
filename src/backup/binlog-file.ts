// What the binlog archive needs to know about a MariaDB/MySQL binary log file, read from its event
// headers as the bytes stream by (no second pass, no mariadb-binlog): the first and last event
// times, the GTID list the file starts with, and whether it holds any transaction at all.
//
// Format (binlog v4): the 4-byte magic `\xfebin`, then events, each with a 19-byte header:
//   timestamp u32 LE | type u8 | server_id u32 | event_size u32 | next_pos u32 | flags u16
// `event_size` counts the header and the trailing CRC32 (when binlog_checksum is on).

export const BINLOG_MAGIC = Buffer.from([0xfe, 0x62, 0x69, 0x6e]);
const HEADER = 19;

/** Event type codes the scanner looks at (MySQL's log_event.h, MariaDB's 160+ range). */
export const EVENT = {
  STOP: 3,
  ROTATE: 4,
  FORMAT_DESCRIPTION: 15,
  /** MySQL 8's list of the GTIDs before the file (MariaDB writes GTID_LIST instead). */
  PREVIOUS_GTIDS: 35,
  BINLOG_CHECKPOINT: 161,
  GTID: 162,
  GTID_LIST: 163,
  START_ENCRYPTION: 164,
} as const;

/**
 * Events a server writes into every file by itself, with no transaction behind them: a file with
 * only these has nothing a point-in-time restore would replay (a rotation of it is pointless).
 */
const BOOKKEEPING: ReadonlySet<number> = new Set([
  EVENT.STOP,
  EVENT.ROTATE,
  EVENT.FORMAT_DESCRIPTION,
  EVENT.PREVIOUS_GTIDS,
  EVENT.BINLOG_CHECKPOINT,
  EVENT.GTID_LIST,
  EVENT.START_ENCRYPTION,
]);

export class BinlogFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BinlogFormatError';
  }
}

export interface BinlogSummary {
  /** Events read (whole ones). */
  events: number;
  /** Bytes of whole events read, the magic included: where a reader of a growing file stopped. */
  end: number;
  /** Unix seconds of the first and last event; null with no event. */
  firstEventTime: number | null;
  lastEventTime: number | null;
  /** `domain-server-seq,…` from the file's GTID_LIST event (MariaDB); null when it has none. */
  gtidList: string | null;
  /** Events that are not the server's own bookkeeping (transactions, DDL, …). */
  contentEvents: number;
  /** Unix seconds of the first such event; null with none. */
  firstContentTime: number | null;
  /** Byte offset of the first such event; null with none. */
  firstContentOffset: number | null;
  /** Type code of the last event (ROTATE for a file closed by a rotation, STOP by a shutdown). */
  lastEventType: number | null;
  /**
   * The GTID list at the file's end: its GTID_LIST with the last GTID of each domain and server
   * seen in the file; null without a GTID_LIST. The next file of the same history starts with it.
   */
  gtidEnd: string | null;
}

/**
 * Reads a binlog's event headers from its chunks. `push` every chunk in order, then `finish`.
 * Event bodies are skipped without being buffered (only the GTID list's is kept, it is small).
 */
export class BinlogScanner {
  #magic = Buffer.alloc(0);
  #header = Buffer.alloc(0);
  /** Bytes of the current event's body still to skip (after its header). */
  #skip = 0;
  #gtidBody: Buffer[] | null = null;
  #gtidLeft = 0;
  #offset = 0;
  #event: { type: number; time: number; at: number; server: number } | null = null;
  readonly summary: BinlogSummary = {
    events: 0,
    end: 0,
    firstEventTime: null,
    lastEventTime: null,
    gtidList: null,
    contentEvents: 0,
    firstContentTime: null,
    firstContentOffset: null,
    lastEventType: null,
    gtidEnd: null,
  };
  /** Last seq_no per `domain-server` seen in GTID events. */
  readonly #gtids = new Map<string, bigint>();
  #gtidEventBody: Buffer[] | null = null;
  #gtidEventLeft = 0;

  constructor(private readonly name = 'the binlog') {}

  push(chunk: Uint8Array): void {
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (buf.length > 0) {
      if (this.#offset < BINLOG_MAGIC.length) {
        const take = Math.min(BINLOG_MAGIC.length - this.#offset, buf.length);
        this.#magic = Buffer.concat([this.#magic, buf.subarray(0, take)]);
        buf = buf.subarray(take);
        this.#offset += take;
        if (this.#offset === BINLOG_MAGIC.length) {
          if (!this.#magic.equals(BINLOG_MAGIC)) throw new BinlogFormatError(`${this.name} does not start with the binlog magic \\xfebin (it starts with 0x${this.#magic.toString('hex')})`);
          this.summary.end = BINLOG_MAGIC.length;
        }
        continue;
      }
      if (this.#skip > 0) {
        const take = Math.min(this.#skip, buf.length);
        if (this.#gtidBody && this.#gtidLeft > 0) {
          const keep = Math.min(this.#gtidLeft, take);
          this.#gtidBody.push(Buffer.from(buf.subarray(0, keep)));
          this.#gtidLeft -= keep;
        }
        if (this.#gtidEventBody && this.#gtidEventLeft > 0) {
          const keep = Math.min(this.#gtidEventLeft, take);
          this.#gtidEventBody.push(Buffer.from(buf.subarray(0, keep)));
          this.#gtidEventLeft -= keep;
        }
        buf = buf.subarray(take);
        this.#skip -= take;
        this.#offset += take;
        if (this.#skip === 0) this.#endEvent();
        continue;
      }
      const take = Math.min(HEADER - this.#header.length, buf.length);
      this.#header = Buffer.concat([this.#header, buf.subarray(0, take)]);
      buf = buf.subarray(take);
      this.#offset += take;
      if (this.#header.length === HEADER) this.#startEvent();
    }
  }

  /** The summary; throws when the bytes end inside an event (`partialOk`: a file still being written). */
  finish(opts: { partialOk?: boolean } = {}): BinlogSummary {
    if (this.#offset < BINLOG_MAGIC.length) throw new BinlogFormatError(`${this.name} is shorter than the binlog magic (${this.#offset} bytes)`);
    if (!opts.partialOk && this.#offset !== this.summary.end) {
      throw new BinlogFormatError(`${this.name} ends inside an event: the event at byte ${this.summary.end} is cut after ${this.#offset - this.summary.end} bytes`);
    }
    return this.summary;
  }

  #startEvent(): void {
    const h = this.#header;
    const at = this.#offset - HEADER;
    const size = h.readUInt32LE(9);
    if (size < HEADER) throw new BinlogFormatError(`${this.name}: the event at byte ${at} claims a size of ${size} bytes, less than its own header`);
    const type = h[4]!;
    const time = h.readUInt32LE(0);
    const s = this.summary;
    // Counted once the whole event has passed: a file still being written may end inside it.
    this.#event = { type, time, at, server: h.readUInt32LE(5) };
    if (type === EVENT.START_ENCRYPTION) {
      // What follows is encrypted, headers included: nothing more can be read from it.
      throw new BinlogFormatError(`${this.name} is encrypted (a START_ENCRYPTION event at byte ${at}): node-mgr cannot read its event times`);
    }
    if (type === EVENT.GTID_LIST && s.gtidList === null) {
      this.#gtidBody = [];
      this.#gtidLeft = size - HEADER;
    }
    if (type === EVENT.GTID) {
      this.#gtidEventBody = [];
      this.#gtidEventLeft = Math.min(12, size - HEADER);
    }
    this.#skip = size - HEADER;
    this.#header = Buffer.alloc(0);
    if (this.#skip === 0) this.#endEvent();
  }

  #endEvent(): void {
    const s = this.summary;
    const { type, time, at } = this.#event!;
    s.events++;
    s.end = this.#offset;
    if (s.firstEventTime === null) s.firstEventTime = time;
    s.lastEventTime = time;
    s.lastEventType = type;
    if (!BOOKKEEPING.has(type)) {
      s.contentEvents++;
      if (s.firstContentTime === null) {
        s.firstContentTime = time;
        s.firstContentOffset = at;
      }
    }
    if (this.#gtidBody) {
      s.gtidList = parseGtidList(Buffer.concat(this.#gtidBody));
      this.#gtidBody = null;
      for (const g of s.gtidList?.split(',').filter(Boolean) ?? []) {
        const [d, srv, n] = g.split('-');
        this.#gtids.set(`${d}-${srv}`, BigInt(n!));
      }
    }
    if (this.#gtidEventBody) {
      // MariaDB's GTID event: seq_no u64, domain_id u32, …; the server id is the header's.
      const body = Buffer.concat(this.#gtidEventBody);
      this.#gtidEventBody = null;
      if (body.length >= 12) this.#gtids.set(`${body.readUInt32LE(8)}-${this.#event!.server}`, body.readBigUInt64LE(0));
    }
    if (s.gtidList !== null) s.gtidEnd = [...this.#gtids].map(([k, n]) => `${k}-${n}`).join(',');
  }
}

/**
 * MariaDB's GTID_LIST body: u32 count (the low 28 bits; the top 4 are flags), then per GTID
 * domain_id u32, server_id u32, seq_no u64. A trailing CRC32 may follow; it is not part of the list.
 */
export function parseGtidList(body: Buffer): string | null {
  if (body.length < 4) return null;
  const count = body.readUInt32LE(0) & 0x0fffffff;
  if (body.length < 4 + count * 16) return null;
  const gtids: string[] = [];
  for (let i = 0; i < count; i++) {
    const at = 4 + i * 16;
    gtids.push(`${body.readUInt32LE(at)}-${body.readUInt32LE(at + 4)}-${body.readBigUInt64LE(at + 8)}`);
  }
  return gtids.join(',');
}

/** Scans a whole binlog from an iterable of chunks (tests, and files already in memory). */
export async function scanBinlog(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, name?: string, opts: { partialOk?: boolean } = {}): Promise<BinlogSummary> {
  const scanner = new BinlogScanner(name);
  for await (const chunk of source) scanner.push(chunk);
  return scanner.finish(opts);
}

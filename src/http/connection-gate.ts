// Who may hold a connection (docs/security.md, "Connection handling"). One address cannot take
// the connections everyone else needs (security.maxConnectionsPerSource), all ordinary addresses
// together cannot take more than security.maxConnections, and this host's own callers (127.0.0.1,
// ::1) and allow-listed ones (cluster_mgr's) each have a budget of their own that nobody else's
// connections use up: a flood never shuts out get_node from loopback.
import type { Server, Socket } from 'node:net';
import type { Config } from '../config/schema.ts';
import { rawErrorResponse } from './errors.ts';
import { normaliseAddress } from './security.ts';

/** The addresses whose connections no other address can crowd out. Other 127/8 addresses are ordinary. */
const PRIVILEGED_LOOPBACK = new Set(['127.0.0.1', '::1']);

/** A refused connection gets its reply and this long to take it before the socket is closed. */
const REFUSED_LINGER_MS = 2_000;

/** What the gate counted a connection under, kept on the socket for its one shared close handler. */
const HELD = Symbol('nodeMgrGateHeld');
type HeldSocket = Socket & { [HELD]?: { gate: ConnectionGate; source: string; privileged: boolean } };

/** The close handler of every admitted socket: one function, no closure per connection. */
function releaseHeld(this: HeldSocket): void {
  const held = this[HELD];
  if (!held) return;
  this[HELD] = undefined;
  held.gate.release(held.source, held.privileged);
}

interface GateLog {
  warn(obj: object, msg: string): void;
}

export class ConnectionGate {
  private readonly held = new Map<string, number>();
  private ordinary = 0;
  private lingering = 0;
  private refusedSinceLog = 0;
  private readonly refusedSources = new Set<string>();
  private lastLog = 0;
  /** security.allowFrom normalised, for the security object it was made from (the config may be reloaded). */
  private allowed: { from: Config['security'] | null; set: Set<string> } = { from: null, set: new Set() };

  constructor(
    private readonly security: () => Config['security'],
    private readonly opts: { plainHttp: boolean; log: GateLog },
  ) {}

  /** Puts the gate in front of the server's own connection handling (HTTP parser, or TLS handshake first). */
  install(server: Server): void {
    const inner = server.listeners('connection') as Array<(socket: Socket) => void>;
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      if (this.admit(socket)) for (const listener of inner) listener.call(server, socket);
    });
  }

  /** Connections held now: per address, and the ordinary ones together. */
  counts(): { ordinary: number; bySource: Record<string, number> } {
    return { ordinary: this.ordinary, bySource: Object.fromEntries(this.held) };
  }

  private admit(socket: HeldSocket): boolean {
    const source = normaliseAddress(socket.remoteAddress ?? '');
    const security = this.security();
    const privileged = PRIVILEGED_LOOPBACK.has(source) || this.allowSet(security).has(source);
    const mine = this.held.get(source) ?? 0;
    let refusal: [number, string] | undefined;
    if (privileged) {
      if (mine >= security.maxConnections) refusal = [503, `too many connections from ${source} (${mine} open; security.maxConnections)`];
    } else if (mine >= security.maxConnectionsPerSource) {
      refusal = [429, `too many connections from ${source} (${mine} open; security.maxConnectionsPerSource)`];
    } else if (this.ordinary >= security.maxConnections) {
      refusal = [503, `node-mgr has ${this.ordinary} connections open, its limit for ordinary addresses (security.maxConnections); try again shortly`];
    }
    if (refusal) {
      this.refuse(socket, source, ...refusal);
      return false;
    }
    this.held.set(source, mine + 1);
    if (!privileged) this.ordinary++;
    socket[HELD] = { gate: this, source, privileged };
    socket.on('close', releaseHeld);
    return true;
  }

  /** A held connection has closed (releaseHeld). */
  release(source: string, privileged: boolean): void {
    const n = (this.held.get(source) ?? 1) - 1;
    if (n > 0) this.held.set(source, n);
    else this.held.delete(source);
    if (!privileged) this.ordinary--;
  }

  private allowSet(security: Config['security']): Set<string> {
    if (this.allowed.from !== security) this.allowed = { from: security, set: new Set(security.allowFrom.map(normaliseAddress)) };
    return this.allowed.set;
  }

  /**
   * Answers in the JSON error shape (readable by the original clients too) and closes. The
   * request that may follow is read and dropped meanwhile: closing with unread bytes would send
   * a reset that can destroy the reply before the client reads it. A TLS connection cannot take
   * a plain reply and is just closed, as is any connection once too many refused ones linger.
   */
  private refuse(socket: Socket, source: string, status: number, info: string): void {
    socket.on('error', () => {});
    this.noteRefusal(source, status, info);
    if (!this.opts.plainHttp || this.lingering >= this.security().maxConnections) {
      socket.destroy();
      return;
    }
    this.lingering++;
    const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
    socket.once('close', () => {
      this.lingering--;
      clearTimeout(timer);
    });
    socket.once('end', () => socket.destroy());
    socket.resume();
    socket.end(rawErrorResponse(status, info));
  }

  /** A flood must not become a flood of log lines: one line per 10 s at most, with the counts. */
  private noteRefusal(source: string, status: number, info: string): void {
    this.refusedSinceLog++;
    this.refusedSources.add(source);
    const now = Date.now();
    if (now - this.lastLog < 10_000) return;
    this.opts.log.warn(
      { status, refused: this.refusedSinceLog, sources: [...this.refusedSources].slice(0, 10), ordinary: this.ordinary },
      `connections refused: ${info}`,
    );
    this.lastLog = now;
    this.refusedSinceLog = 0;
    this.refusedSources.clear();
  }
}

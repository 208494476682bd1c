// One interface for every process kind node-mgr supervises. A difference between MySQL,
// PostgreSQL and cluster_mgr lives behind it, never in an `if (kind === …)` elsewhere.
import type { NodeKind } from '../config/schema.ts';
import type { NodeSpec } from './node-spec.ts';
import type { PhysicalBackup } from './physical-backup.ts';

/** How to launch a server as node-mgr's direct child. */
export interface LaunchPlan {
  file: string;
  args: string[];
  cwd: string;
  env?: Record<string, string>;
}

export type ExitCause =
  | 'bad_config_option'
  | 'port_in_use'
  | 'data_dir_locked'
  | 'disk_full'
  | 'permission'
  | 'killed_by_signal'
  | 'health_probe_failed'
  | 'start_timeout'
  | 'unknown';

export interface ExitDiagnosis {
  cause: ExitCause;
  /** One sentence an operator can act on, e.g. "unknown option '--bogus-option'". */
  detail: string;
  /** The last lines of the server's error log. */
  logTail: string[];
}

/**
 * A long-lived monitoring session with a server: health probes run on it without logging in
 * again, and its loss is the first sign that the server may have died.
 */
export interface MonitorSession {
  /** One cheap query; rejects with a sentence when the server does not answer within timeoutMs (the session is then unusable). */
  check(timeoutMs: number): Promise<void>;
  /** Called once if the server side closes the session; never after close() or destroy(). */
  onLost(listener: () => void): void;
  /** Ends the session the polite way (MySQL COM_QUIT, PostgreSQL Terminate), so the server logs no aborted client. */
  close(): Promise<void>;
  /** Drops the socket at once (a server that stopped answering). */
  destroy(): void;
  /**
   * False when a fresh session proves nothing more than this one (an HTTP connection: there is no
   * login path to prove), so it is never replaced by a periodic renewal. Absent means true.
   */
  readonly renewable?: boolean;
}

export interface Engine {
  readonly kind: NodeKind;
  /** Creates the data dir (mariadb-install-db / initdb as runAs) and sets the admin password. Idempotent: refuses a non-empty data dir that is not a finished init. */
  initDataDir(spec: NodeSpec, signal?: AbortSignal): Promise<void>;
  /** Writes the server's own config file (my.cnf / postgresql.auto settings) under the node dir. */
  writeServerConfig(spec: NodeSpec): Promise<void>;
  /** True when the data dir holds an initialised server. */
  isInitialised(spec: NodeSpec): Promise<boolean>;
  /**
   * Waits, bounded, until a previous server of this node is truly gone before a new one starts.
   * A killed server stays a zombie until its parent reaps it (for an adopted server, init, in its
   * own time); PostgreSQL takes a zombie's pid in postmaster.pid for a live postmaster and refuses
   * to start. Absent where a zombie is harmless.
   */
  awaitPreviousServer?(spec: NodeSpec, signal?: AbortSignal): Promise<void>;
  /** argv to start the server in the foreground (no daemonising), to be spawned as runAs. */
  launchPlan(spec: NodeSpec): LaunchPlan;
  /** Resolves once the server accepts SQL (or, for cluster_mgr, its HTTP port answers). */
  waitReady(spec: NodeSpec, pid: number, signal: AbortSignal): Promise<void>;
  /** One health probe; throws with a sentence when the server does not answer. */
  probe(spec: NodeSpec, signal: AbortSignal): Promise<void>;
  /**
   * Logs in once for health monitoring (bounded by timeoutMs); probes then run on that session
   * (for cluster_mgr, a kept-alive HTTP connection). Absent: the monitor uses probe() each time.
   */
  openMonitor?(spec: NodeSpec, timeoutMs: number): Promise<MonitorSession>;
  /** The pid of a server already running on this node's data dir, after proving its identity; null if none. */
  findRunning(spec: NodeSpec): Promise<number | null>;
  /** Proves that pid is this node's server (host/process-identity.ts: argv, data dir, start time vs pidfile). */
  isOwnProcess(spec: NodeSpec, pid: number): Promise<boolean>;
  /** The stop ladder. Resolves when the process is gone; escalates by spec.policy.stop timeouts. */
  stop(spec: NodeSpec, pid: number, signal?: AbortSignal): Promise<void>;
  /** Reads the error log and classifies why the server exited. */
  diagnoseExit(spec: NodeSpec, exit: { code: number | null; signal: string | null }): Promise<ExitDiagnosis>;
  /**
   * Rotates the logs the server writes itself (beyond server.log, which node-mgr rotates for
   * every kind) once one is larger than maxBytes, and makes the server reopen it. Returns the
   * rotated files. Absent where the server writes only to its captured output.
   */
  rotateOwnLogs?(spec: NodeSpec, limits: { maxBytes: number; keep: number }): Promise<string[]>;
  /** Files and dirs that belong to the node (moved to the trash on DROP). */
  ownedPaths(spec: NodeSpec): string[];
  /**
   * True when node-mgr lays out the node dir itself (databases): other files in it are the
   * operator's, so CREATE refuses such a dir and DROP leaves them in place. False when the node
   * dir is the program's own install dir (cluster_mgr).
   */
  readonly laysOutNodeDir: boolean;
  /** Hot physical backup and restore of the data dir (cold-backup jobs); absent for kinds without data. */
  readonly backup?: PhysicalBackup;
}

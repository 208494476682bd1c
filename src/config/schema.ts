// The one config file of node-mgr, parsed once at the edge into typed values.
import { z } from 'zod';

export const NODE_KINDS = ['mysql', 'postgres', 'cluster_mgr'] as const;
export const NODE_ROLES = ['meta', 'storage', 'computer', 'cluster_mgr'] as const;

export const restartPolicySchema = z.strictObject({
  /** First backoff delay after a crash. */
  initialDelayMs: z.number().int().positive().default(1000),
  /** Upper bound of the exponential backoff. */
  maxDelayMs: z.number().int().positive().default(60_000),
  /** Jitter as a fraction of the delay (0.2 = ±20 %). */
  jitter: z.number().min(0).max(1).default(0.2),
  /** A run at least this long resets the backoff and the restart window. */
  stableAfterMs: z.number().int().positive().default(60_000),
  /** More than this many restarts within windowMs → `failed`. */
  maxRestarts: z.number().int().nonnegative().default(5),
  windowMs: z.number().int().positive().default(300_000),
});

export const stopPolicySchema = z.strictObject({
  /** Time allowed to each rung of the stop ladder before the next, harsher one. */
  gracefulTimeoutMs: z.number().int().positive().default(30_000),
  forcefulTimeoutMs: z.number().int().positive().default(10_000),
});

export const probePolicySchema = z.strictObject({
  intervalMs: z.number().int().positive().default(5000),
  timeoutMs: z.number().int().positive().default(3000),
  /** This many failed probes in a row make a running node a crash (the hung process is killed). */
  failureThreshold: z.number().int().positive().default(3),
  /** Time a starting server gets to accept SQL before it counts as a failed start. */
  startTimeoutMs: z.number().int().positive().default(60_000),
});

export const policySchema = z.strictObject({
  restart: restartPolicySchema.prefault({}),
  stop: stopPolicySchema.prefault({}),
  probe: probePolicySchema.prefault({}),
});

const partialPolicySchema = z.strictObject({
  restart: restartPolicySchema.partial().optional(),
  stop: stopPolicySchema.partial().optional(),
  probe: probePolicySchema.partial().optional(),
});

export const nodeEntrySchema = z.strictObject({
  kind: z.enum(NODE_KINDS),
  role: z.enum(NODE_ROLES),
  /** The port the server listens on; also the node's identity on this host. */
  port: z.number().int().min(1).max(65535),
  ip: z.string().default('127.0.0.1'),
  /** Node directory: data dir, config, socket, logs live under it unless given. */
  dir: z.string().min(1),
  dataDir: z.string().optional(),
  cluster: z.string().optional(),
  shard: z.string().optional(),
  user: z.string().default('root'),
  password: z.string().default(''),
  /** Extra server options written into the generated config file (name → value). */
  serverOptions: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
  /** cluster_mgr only: the program and its arguments (no shell), pidfile and health URL. */
  command: z.array(z.string()).optional(),
  pidFile: z.string().optional(),
  healthUrl: z
    .string()
    .refine((u) => URL.canParse(u) && ['http:', 'https:'].includes(new URL(u).protocol), 'must be an http:// or https:// URL')
    .optional(),
  policy: partialPolicySchema.optional(),
});

export const binariesSchema = z.strictObject({
  /** `mariadb` or `mysql8`: the differences live in the MySQL engine, chosen here. */
  mysqlFlavor: z.enum(['mariadb', 'mysql8']).default('mariadb'),
  mysqld: z.string().default('/usr/sbin/mariadbd'),
  mysqlInstallDb: z.string().default('/usr/bin/mariadb-install-db'),
  mysqlBackup: z.string().default('/usr/bin/mariabackup'),
  mysqlStreamUnpack: z.string().default('/usr/bin/mbstream'),
  /** Point-in-time restore: reads archived binlogs (mysqlbinlog for MySQL 8 builds) … */
  mysqlBinlog: z.string().default('/usr/bin/mariadb-binlog'),
  /** … and the client that applies them (mysql for MySQL 8 builds). */
  mysqlClient: z.string().default('/usr/bin/mariadb'),
  mysqlBaseDir: z.string().default('/usr'),
  postgresBinDir: z.string().default('/usr/lib/postgresql/15/bin'),
});

export const configSchema = z.strictObject({
  listen: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(9998),
      /**
       * HTTPS instead of HTTP: PEM files read at start. `ca` (the cluster's CA) is what node-mgr
       * trusts when it calls another host's node-mgr (a table send); every node-mgr of a cluster
       * speaks the same scheme.
       */
      tls: z.strictObject({ cert: z.string(), key: z.string(), ca: z.string().optional() }).optional(),
    })
    .prefault({}),
  /** SQLite state, trash, uploads; default ./var/node-mgr. */
  stateDir: z.string().default('./var/node-mgr'),
  /** Where nodes created from uploaded install configs live when their paths are relative. */
  nodesDir: z.string().default('./var/nodes'),
  /**
   * Directories under which nodes created over the API (POST /v1/nodes, seed install configs) may
   * live, beside nodesDir, discovery.baseDir and the parent dirs of the nodes in this file.
   */
  nodeRoots: z.array(z.string()).default([]),
  /** Uploaded install configs (PROTOCOL §7): <uploadDir>/<file_type>/<name>. */
  uploadDir: z.string().optional(),
  /** Admin credentials given to nodes created from the seed's install configs. */
  createDefaults: z
    .strictObject({
      user: z.string().default('pgx'),
      password: z.string().default('pgx_pwd'),
    })
    .prefault({}),
  /** OS user the database processes run as (postgres refuses root). */
  runAs: z.string().default('nodemgr'),
  binaries: binariesSchema.prefault({}),
  policy: policySchema.prefault({}),
  nodes: z.array(nodeEntrySchema).default([]),
  /** Dropped nodes' directories stay in <stateDir>/trash this long before they are deleted. */
  trashGraceDays: z.number().nonnegative().default(7),
  /** Stop the databases when node-mgr itself stops (default: they outlive it). */
  stopNodesOnExit: z.boolean().default(false),
  serverLog: z
    .strictObject({
      maxBytes: z.number().int().positive().default(10 * 1024 * 1024),
      keep: z.number().int().nonnegative().default(3),
    })
    .prefault({}),
  security: z
    .strictObject({
      token: z.string().optional(),
      /**
       * A second bearer token for the other hosts' node-mgrs (their peers[].token): it opens the /v1
       * reads and the receiving of a table, and nothing else, so a peer host holds no full credential.
       */
      peerToken: z.string().min(16, 'must be at least 16 characters').optional(),
      allowFrom: z.array(z.string()).default([]),
      openReads: z.boolean().default(true),
      exposeSecrets: z.boolean().default(false),
      bodyLimitBytes: z.number().int().positive().default(1024 * 1024),
      uploadLimitBytes: z.number().int().positive().default(16 * 1024 * 1024),
      /** A connection with nothing moving for this long is closed (a stalled header or body). */
      idleTimeoutMs: z.number().int().positive().default(60_000),
      /** A request must have arrived in full this long after it began (not a table stream: see recv). */
      requestTimeoutMs: z.number().int().positive().default(120_000),
      /**
       * Connections at once from all ordinary addresses together; beyond it a new one gets a 503 and
       * is closed. 127.0.0.1, ::1 and allowFrom addresses each have this many of their own besides.
       */
      maxConnections: z.number().int().positive().default(512),
      /** Connections at once from one ordinary address; beyond it a new one gets a 429 and is closed. */
      maxConnectionsPerSource: z.number().int().positive().default(64),
      /** A connection must deliver a whole request head this long after it opens (408 and closed otherwise). */
      headersTimeoutMs: z.number().int().positive().default(10_000),
    })
    .refine((s) => s.peerToken === undefined || Boolean(s.token) || s.allowFrom.length > 0, {
      message: 'needs security.token or security.allowFrom: without them every caller may already do everything',
      path: ['peerToken'],
    })
    .refine((s) => s.peerToken === undefined || s.peerToken !== s.token, { message: 'must differ from security.token', path: ['peerToken'] })
    .prefault({}),
  discovery: z
    .strictObject({
      source: z.enum(['static', 'cluster_mgr', 'metadata_db']).default('static'),
      clusterMgrUrl: z.string().optional(),
      metadataDb: z
        .strictObject({
          host: z.string(),
          port: z.number().int(),
          user: z.string(),
          password: z.string().default(''),
          database: z.string().default('kunlun_metadata_db'),
        })
        .optional(),
      /** Where nodes discovered remotely live on this host (data dirs are <baseDir>/<port>). */
      baseDir: z.string().optional(),
    })
    .prefault({}),
  /** Programs an operator allows `*_cmd` to run (absolute paths), beyond the recognised commands. */
  commandAllowList: z.array(z.string()).default([]),
  /**
   * The other hosts' node-mgrs of this cluster: a table send goes to a `d_ip` only when it is a
   * node of this host or listed here, never to an arbitrary address (docs/security.md).
   */
  peers: z
    .array(
      z.strictObject({
        /** The address a send names in `d_ip` (as cluster_mgr knows the host). */
        host: z.string().min(1),
        /** The peer's API; default `<scheme>://<host>:<listen.port>` (every node-mgr on one port). */
        url: z
          .string()
          .refine((u) => URL.canParse(u) && ['http:', 'https:'].includes(new URL(u).protocol), 'must be an http:// or https:// URL')
          .optional(),
        /** The bearer token that peer accepts (its own security.token); node-mgr never sends its own. */
        token: z.string().optional(),
      }),
    )
    .default([]),
  jobs: z
    .strictObject({
      maxConcurrent: z.number().int().positive().default(4),
      keepDays: z.number().positive().default(30),
      keepCount: z.number().int().positive().default(10_000),
    })
    .prefault({}),
  backup: z
    .strictObject({
      store: z.enum(['local', 'webhdfs']).default('local'),
      localDir: z.string().default('./var/backups'),
      webhdfs: z.strictObject({ url: z.string(), user: z.string().default('root') }).optional(),
      stagingDir: z.string().optional(),
      /** Retention (prune_backups): keep the newest N backups per node and/or those younger than D days; unset keeps all. */
      keep: z.number().int().positive().optional(),
      keepDays: z.number().positive().optional(),
    })
    .prefault({}),
  /**
   * Binlog archiving (point-in-time restore): every closed binlog of each MySQL storage and meta
   * node is copied to the backup store, beside the node's backups (docs/decisions.md).
   */
  binlogArchive: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** A closed binlog is in the archive this many seconds after it was closed, plus its upload time: the pause between passes. */
      delaySeconds: z.number().min(0.1).default(10),
      /**
       * Rotate the current binlog (FLUSH BINARY LOGS) once its first event is this old and it holds a
       * transaction, so the archive is never further behind than this; 0 never rotates.
       */
      rotateEverySeconds: z.number().nonnegative().default(300),
    })
    .prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type NodeEntry = z.infer<typeof nodeEntrySchema>;
export type Policy = z.infer<typeof policySchema>;
export type RestartPolicy = z.infer<typeof restartPolicySchema>;
export type NodeKind = (typeof NODE_KINDS)[number];
export type NodeRole = (typeof NODE_ROLES)[number];

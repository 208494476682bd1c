// The actor system: one node actor per supervised process, its state journaled and persisted.
// Nothing here knows about HTTP; callers send commands and read views.
import { EventEmitter } from 'node:events';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { createActor, waitFor, type Actor, type InspectionEvent, type Observer, type SnapshotFrom } from 'xstate';
import type { Logger } from 'pino';
import type { Config, NodeEntry } from '../config/schema.ts';
import { holderOf, stateName, type NodeClaim, type NodeEvent, type NodeTag, type NodeWork, type Wanted } from '../../machines/node.machine.ts';
import type { Engine } from '../engines/engine.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import type { RunAs } from '../host/run-as.ts';
import { engineFor } from '../engines/index.ts';
import { foreignNodeDirEntries } from '../engines/node-layout.ts';
import { nodeRoots, resolveSpec } from '../engines/node-spec.ts';
import { lookupRunAs } from '../host/run-as.ts';
import { StateStoreError, type NodeSource, type StateStore } from '../state/store.ts';
import { nodeMachineFor } from './node-actor.ts';
import type { ErrorKind, KindedError } from '../error-kind.ts';

type NodeActor = Actor<ReturnType<typeof nodeMachineFor>>;
type NodeSnapshot = SnapshotFrom<ReturnType<typeof nodeMachineFor>>;

export type { NodeSource };

export interface Transition {
  nodeId: string;
  port: number;
  from: string;
  to: string;
  event: string;
  at: number;
  detail: string | null;
}

/** What callers see of a node: its config identity plus the actor's snapshot. */
export interface NodeView {
  id: string;
  kind: NodeSpec['kind'];
  role: NodeSpec['role'];
  port: number;
  ip: string;
  user: string;
  password: string;
  dir: string;
  dataDir: string;
  cluster?: string;
  shard?: string;
  source: NodeSource;
  state: string;
  wanted: Wanted;
  pid: number | null;
  adopted: boolean;
  since: string;
  restarts: number;
  paused: boolean;
  backoffMs: number | null;
  backoffUntil: number | null;
  lastExit: NodeSnapshot['context']['lastExit'];
  lastError: string | null;
  /** The job working on the node, if any. */
  work: NodeSnapshot['context']['work'];
  /** The effective restart / stop / probe policy (config defaults overlaid by the node's own). */
  policy: NodeSpec['policy'];
}

interface Supervised {
  spec: NodeSpec;
  entry: NodeEntry;
  source: NodeSource;
  actor: NodeActor;
  state: string;
  since: number;
  /** The wanted state and restart count as last written to the state store. */
  persisted: { wanted: Wanted; restarts: number };
}

/** A refused or failed node command; its message is for the operator. */
export class NodeCommandError extends Error implements KindedError {
  constructor(
    message: string,
    readonly kind: ErrorKind = 'conflict',
  ) {
    super(message);
    this.name = 'NodeCommandError';
  }
}

/** What applyConfig did, by node id. */
export interface ConfigChange {
  /** Effective policy changed, applied in place. */
  policy: string[];
  /** New static entries, registered. */
  added: string[];
  /** Changed static entries, re-registered (the running server adopted). */
  replaced: string[];
  /** Changed static entries of busy or moving nodes: not applied; reload again later. */
  deferred: string[];
  /** Static nodes no longer in the file: still supervised, as at a restart. */
  unlisted: string[];
  /** Entries that could not be applied, with the reason. */
  refused: string[];
}

export interface SupervisorOptions {
  config: Config;
  store: StateStore;
  log: Logger;
  /** Overrides for tests (e.g. a faster adoption poll). */
  adoptPollMs?: number;
  engines?: (kind: NodeSpec['kind']) => Engine;
  /** Also receives every inspection event of the node actors (e.g. Stately's inspector with --inspect). */
  inspect?: Observer<InspectionEvent>;
}

export class Supervisor extends EventEmitter {
  private readonly nodes = new Map<string, Supervised>();
  private readonly runAs: RunAs;
  private readonly config: Config;
  private readonly store: StateStore;
  private readonly log: Logger;
  /** True once load() has registered every known node and each has settled (or timed out). */
  loaded = false;
  /**
   * Counts every change of what list() shows: a snapshot of any node's actor (state, pid,
   * restarts, last exit…) and a node added or removed. Replies prepared from the node views
   * (get_node, get_info) are current while it has not moved.
   */
  changes = 0;

  constructor(private readonly opts: SupervisorOptions) {
    super();
    this.config = opts.config;
    this.store = opts.store;
    this.log = opts.log;
    this.runAs = lookupRunAs(this.config.runAs);
  }

  /** Registers every node of the config and of the state store, and lets each adopt or start. */
  async load(): Promise<void> {
    const known = new Map<number, { entry: NodeEntry; source: NodeSource }>();
    for (const row of this.store.listNodes()) known.set(row.port, { entry: row.entry, source: row.source });
    for (const entry of this.config.nodes) known.set(entry.port, { entry, source: 'static' });
    for (const { entry, source } of known.values()) this.register(entry, source);
    await this.settled([...this.nodes.keys()], 120_000).catch(() => {});
    this.loaded = true;
  }

  /** Adds a node and starts its actor (which adopts a running server or starts per `wanted`). */
  register(entry: NodeEntry, source: NodeSource, wantedOverride?: Wanted): Supervised {
    const spec = resolveSpec(this.config, entry, this.runAs);
    const existing = this.nodes.get(spec.id);
    if (existing) return existing;
    const clash = this.byPort(spec.port);
    if (clash) throw new NodeCommandError(`port ${spec.port} already belongs to node ${clash.id}`, 'conflict');
    const stored = this.store.getNode(spec.id);
    const wanted: Wanted = wantedOverride ?? stored?.wanted ?? 'running';
    this.store.upsertNode({ id: spec.id, port: spec.port, entry, wanted, source });
    const engine = (this.opts.engines ?? engineFor)(spec.kind);
    const machine = nodeMachineFor({
      spec,
      engine,
      log: this.log,
      trashDir: path.join(this.config.stateDir, 'trash'),
      serverLog: this.config.serverLog,
      adoptPollMs: this.opts.adoptPollMs,
    });
    const actor = createActor(machine, {
      id: spec.id,
      input: { nodeId: spec.id, policy: spec.policy, wanted, restarts: stored?.restarts ?? 0 },
      inspect: (ev) => {
        if (ev.type === '@xstate.snapshot' && ev.actorRef === actor) this.observe(spec.id, ev.snapshot as NodeSnapshot, ev.event.type);
        this.opts.inspect?.next?.(ev);
      },
    });
    const node: Supervised = { spec, entry, source, actor, state: 'adopting', since: Date.now(), persisted: { wanted, restarts: stored?.restarts ?? 0 } };
    this.nodes.set(spec.id, node);
    this.changes++;
    actor.start();
    return node;
  }

  /** Journals a state change and persists what must outlive node-mgr (wanted, restart count). */
  private observe(id: string, snap: NodeSnapshot, eventType: string): void {
    const node = this.nodes.get(id);
    if (!node) return;
    this.changes++;
    const to = stateName(snap.value);
    const ctx = snap.context;
    // What is persisted is mirrored on the node, so a snapshot (every probe result is one) reads no SQLite.
    if (node.persisted.wanted !== ctx.wanted && this.persist(id, () => this.store.setWanted(id, ctx.wanted))) {
      node.persisted.wanted = ctx.wanted;
    }
    if (node.persisted.restarts !== ctx.restarts && this.persist(id, () => this.store.setRestarts(id, ctx.restarts))) {
      node.persisted.restarts = ctx.restarts;
    }
    if (to === node.state) return;
    const from = node.state;
    node.state = to;
    node.since = Date.now();
    const detail = to === 'crashed' || to === 'failed' || to === 'stopped' || to === 'backoff' ? (ctx.lastError ?? ctx.lastExit?.detail ?? null) : null;
    const transition: Transition = { nodeId: id, port: node.spec.port, from, to, event: eventType, at: node.since, detail };
    this.persist(id, () => this.store.recordTransition({ nodeId: id, from, to, event: eventType, at: node.since, detail }));
    this.log.info({ node: id, from, to, event: eventType, ...(detail ? { detail } : {}) }, 'node transition');
    this.emit('transition', transition);
  }

  private readonly persistFailureLoggedAt = new Map<string, number>();

  /**
   * A state file that takes no writes (full disk, read-only file) must not stop supervision: this
   * runs inside the actor's inspection, and a throw there would leave the node's chart stuck. The
   * actor goes on from memory; the failure is logged (once a minute per node); wanted and the
   * restart count are written again at the next change.
   */
  private persist(id: string, write: () => unknown): boolean {
    try {
      write();
      return true;
    } catch (err) {
      if (!(err instanceof StateStoreError)) throw err;
      const last = this.persistFailureLoggedAt.get(id) ?? 0;
      if (Date.now() - last > 60_000) {
        this.persistFailureLoggedAt.set(id, Date.now());
        this.log.error({ node: id, err: err.message }, 'could not record a change of the node in the state file; supervision goes on');
      }
      return false;
    }
  }

  list(): NodeView[] {
    return [...this.nodes.values()].map((n) => this.view(n));
  }

  get(id: string): NodeView | undefined {
    const n = this.nodes.get(id);
    return n && this.view(n);
  }

  byPort(port: number): NodeView | undefined {
    for (const n of this.nodes.values()) if (n.spec.port === port) return this.view(n);
    return undefined;
  }

  spec(id: string): NodeSpec | undefined {
    return this.nodes.get(id)?.spec;
  }

  entryOf(id: string): NodeEntry | undefined {
    return this.nodes.get(id)?.entry;
  }

  actorOf(id: string): NodeActor | undefined {
    return this.nodes.get(id)?.actor;
  }

  /** Asks the node's chart a question (see NodeTag); false for a node not on this host. */
  is(id: string, tag: NodeTag): boolean {
    return this.nodes.get(id)?.actor.getSnapshot().hasTag(tag) ?? false;
  }

  /** The server serves and its last health probe passed: what /v1/nodes/:port/health answers 200 for. */
  isReady(id: string): boolean {
    const snap = this.nodes.get(id)?.actor.getSnapshot();
    return !!snap && snap.hasTag('serving') && snap.context.probeFailures === 0;
  }

  /** Whether the node's chart would take `event` now (false for a node not on this host). */
  accepts(id: string, event: NodeEvent): boolean {
    return this.nodes.get(id)?.actor.getSnapshot().can(event) ?? false;
  }

  /** The job holding the node, queued or running (see NodeClaim): the chart keeps it. */
  holder(id: string): NodeClaim | null {
    const n = this.nodes.get(id);
    return n ? holderOf(n.actor.getSnapshot()) : null;
  }

  /** Records that an accepted job holds the node until release(); a node not on this host has no chart to hold. */
  claim(id: string, claim: NodeClaim): void {
    this.nodes.get(id)?.actor.send({ type: 'CLAIM', claim });
  }

  release(id: string, jobId: string): void {
    this.nodes.get(id)?.actor.send({ type: 'RELEASE', jobId });
  }

  private view(n: Supervised): NodeView {
    const ctx = n.actor.getSnapshot().context;
    return {
      id: n.spec.id,
      kind: n.spec.kind,
      role: n.spec.role,
      port: n.spec.port,
      ip: n.spec.ip,
      user: n.spec.user,
      password: n.spec.password,
      dir: n.spec.dir,
      dataDir: n.spec.dataDir,
      cluster: n.spec.cluster,
      shard: n.spec.shard,
      source: n.source,
      state: n.state,
      wanted: ctx.wanted,
      pid: ctx.pid,
      adopted: ctx.adopted,
      since: new Date(n.since).toISOString(),
      restarts: ctx.restarts,
      paused: ctx.paused,
      backoffMs: ctx.backoffMs,
      backoffUntil: ctx.backoffUntil,
      lastExit: ctx.lastExit,
      lastError: ctx.lastError,
      work: ctx.work,
      policy: n.spec.policy,
    };
  }

  /** 409 while a job owns the node: STOP during an import must not pull the server from under it. */
  private refuseWhileBusy(n: Supervised, what: string): void {
    if (!n.actor.getSnapshot().hasTag('busy')) return;
    const work = n.actor.getSnapshot().context.work;
    throw new NodeCommandError(`cannot ${what} node ${n.spec.id}: it is ${n.state}${work ? ` for job ${work.jobId}` : ''}; retry when that job is done`, 'conflict');
  }

  /** Marks a running node as worked on by a job (backup, table export/import). */
  beginWork(id: string, work: NodeWork, jobId: string): NodeView {
    const n = this.require(id);
    this.refuseWhileBusy(n, `start ${work} on`);
    if (!n.actor.getSnapshot().can({ type: 'WORK_STARTED', work, jobId })) throw new NodeCommandError(`node ${id} is ${n.state}, not running`, 'conflict');
    n.actor.send({ type: 'WORK_STARTED', work, jobId });
    return this.view(n);
  }

  endWork(id: string, jobId: string): void {
    this.nodes.get(id)?.actor.send({ type: 'WORK_FINISHED', jobId });
  }

  /** Takes the node down for a restore (through its stop ladder) and resolves once it is `restoring`. */
  async beginRestore(id: string, jobId: string, timeoutMs = 120_000): Promise<NodeView> {
    const n = this.require(id);
    this.refuseWhileBusy(n, 'restore');
    n.actor.send({ type: 'RESTORE_STARTED', jobId });
    // Settled anywhere but serving: the stop ladder is over and the chart did not take the restore.
    const down = await waitFor(n.actor, (s) => s.matches('restoring') || (s.hasTag('settled') && !s.hasTag('serving')), { timeout: timeoutMs });
    if (!down.matches('restoring')) throw new NodeCommandError(`node ${id} could not be taken down for the restore: it is ${n.state}`, 'conflict');
    return this.view(n);
  }

  /** Ends a restore: the node starts on whatever data dir is now in place; resolves when it is running. */
  async finishRestore(id: string, jobId: string, timeoutMs = 300_000): Promise<NodeView> {
    const n = this.require(id);
    n.actor.send({ type: 'RESTORE_FINISHED', jobId });
    const snap = await this.waitSettled(n, timeoutMs);
    if (!snap.hasTag('serving')) {
      throw new NodeCommandError(`node ${id} did not come back after the restore: ${this.view(n).lastError ?? n.state}`, 'conflict');
    }
    return this.view(n);
  }

  private require(id: string): Supervised {
    const n = this.nodes.get(id);
    if (!n) throw new NodeCommandError(`no node ${id} on this host`, 'not_found');
    return n;
  }

  /** Sends an operator command and waits until the node settles; rejects with the node's reason when it did not get there. */
  async command(id: string, type: 'START' | 'STOP' | 'RESTART', timeoutMs = 120_000): Promise<NodeView> {
    const n = this.require(id);
    this.refuseWhileBusy(n, type.toLowerCase());
    const before = n.actor.getSnapshot();
    // busy was refused above: a serving node is running.
    if (type === 'START' && before.hasTag('serving')) return this.view(n);
    if (type === 'STOP' && before.matches('stopped')) return this.view(n);
    if (before.status !== 'active') throw new NodeCommandError(`node ${id} was dropped`, 'conflict');
    n.actor.send({ type } as NodeEvent);
    const goal = type === 'STOP' ? 'stopped' : 'running';
    const snap = await this.waitSettled(n, timeoutMs);
    const view = this.view(n);
    if (type === 'STOP' ? !snap.matches('stopped') : !snap.hasTag('serving')) {
      throw new NodeCommandError(`${type} of node ${id} did not reach ${goal}: it is ${view.state}${view.lastError ? ` (${view.lastError})` : ''}`, 'conflict');
    }
    return view;
  }

  /** Registers a new node from its entry, initialises its data dir and starts it. */
  async create(entry: NodeEntry, timeoutMs = 300_000): Promise<NodeView> {
    const spec = resolveSpec(this.config, entry, this.runAs);
    const id = spec.id;
    const refuseTaken = () => {
      if (this.nodes.has(id) || this.byPort(entry.port)) throw new NodeCommandError(`a node on port ${entry.port} already exists`, 'conflict');
      this.refuseSharedDirs(spec);
    };
    refuseTaken();
    this.refuseOutsideRoots(spec);
    await this.refuseForeignDir(spec);
    // Again, with no await before register(): another create may have taken the port meanwhile.
    refuseTaken();
    const n = this.register(entry, 'created', 'stopped');
    const found = await this.waitSettled(n, 60_000);
    if (!found.matches('stopped')) {
      throw new NodeCommandError(`cannot create node ${id}: a server is already running on it (state ${n.state})`, 'conflict');
    }
    return this.initialize(id, timeoutMs);
  }

  /**
   * Two nodes never share a directory: a node dir or data dir equal to, inside or around another
   * node's would start a second server on its data (or let a DROP move it to the trash).
   */
  private refuseSharedDirs(spec: NodeSpec): void {
    const overlaps = (a: string, b: string) => a === b || a.startsWith(`${b}${path.sep}`) || b.startsWith(`${a}${path.sep}`);
    const mine = [spec.dir, spec.dataDir].map((d) => path.resolve(d));
    for (const other of this.nodes.values()) {
      for (const theirs of [other.spec.dir, other.spec.dataDir].map((d) => path.resolve(d))) {
        const clash = mine.find((d) => overlaps(d, theirs));
        if (clash) throw new NodeCommandError(`cannot create node ${spec.id}: its directory ${clash} overlaps ${theirs} of node ${other.spec.id}`, 'conflict');
      }
    }
  }

  /**
   * Nodes created over the API live only under the directories the operator named for them
   * (nodesDir, discovery.baseDir, nodeRoots, and where the config file's own nodes live): a CREATE
   * aimed at /etc/mysql would otherwise write my.cnf there, and its DROP move the system dir.
   */
  private refuseOutsideRoots(spec: NodeSpec): void {
    const roots = nodeRoots(this.config);
    const inside = (p: string) => roots.some((r) => p.startsWith(`${r}${path.sep}`));
    for (const p of new Set([spec.dir, spec.dataDir].map((d) => path.resolve(d)))) {
      if (!inside(p)) {
        throw new NodeCommandError(
          `cannot create node ${spec.id}: ${p} is not under a directory configured for nodes (${roots.join(', ')}); use one of them, or add its parent to nodeRoots in the config`,
          'invalid',
        );
      }
    }
  }

  /**
   * A database node's dir holds only what node-mgr puts there: creating one in a directory that
   * already holds other files (say /etc) would write my.cnf over theirs, and a DROP would move them.
   */
  private async refuseForeignDir(spec: NodeSpec): Promise<void> {
    if (!engineFor(spec.kind).laysOutNodeDir) return;
    const foreign = await foreignNodeDirEntries(spec);
    if (!foreign.length) {
      // Even entries with node-mgr's names (a `log` link planted there) mean someone else prepared it.
      const present = await readdir(spec.dir).catch(() => [] as string[]);
      if (present.length) {
        throw new NodeCommandError(`cannot create node ${spec.id}: its directory ${spec.dir} already exists and is not empty (${present.slice(0, 3).join(', ')}); give a new or empty directory`, 'conflict');
      }
      return;
    }
    const shown = foreign.slice(0, 3).join(', ') + (foreign.length > 3 ? `, … (${foreign.length} in all)` : '');
    throw new NodeCommandError(`cannot create node ${spec.id}: its directory ${spec.dir} already holds files node-mgr did not create (${shown}); give a new or empty directory`, 'conflict');
  }

  /** Initialises and starts a configured node whose data dir does not exist yet. */
  async initialize(id: string, timeoutMs = 300_000): Promise<NodeView> {
    const n = this.require(id);
    if (!n.actor.getSnapshot().can({ type: 'CREATE' })) throw new NodeCommandError(`node ${id} is ${n.state}; only a stopped node can be created`, 'conflict');
    n.actor.send({ type: 'CREATE' });
    const snap = await this.waitSettled(n, timeoutMs);
    if (snap.status === 'done') throw new NodeCommandError(`node ${id} was dropped while it was being created`, 'conflict');
    const view = this.view(n);
    // A STOP that came while the data dir was being made is honoured: created, and stopped as asked.
    if (snap.hasTag('serving') || (view.state === 'stopped' && snap.context.wanted === 'stopped' && !view.lastError)) return view;
    throw new NodeCommandError(`create of node ${id} failed: ${view.lastError ?? view.state}`, 'conflict');
  }

  /** Stops the node, moves its directories to the trash and forgets it. */
  async drop(id: string, timeoutMs = 120_000): Promise<void> {
    const n = this.require(id);
    this.refuseWhileBusy(n, 'drop');
    n.actor.send({ type: 'DROP' });
    const snap = await this.waitSettled(n, timeoutMs);
    if (snap.status !== 'done') {
      throw new NodeCommandError(`drop of node ${id} failed: ${this.view(n).lastError ?? this.view(n).state}`, 'conflict');
    }
    n.actor.stop();
    this.nodes.delete(id);
    this.changes++;
    this.store.removeNode(id);
  }

  /** auto_pullup: pause (-1 until resumed, n minutes) or resume (0) automatic restarts. */
  pause(minutes: number, id?: string): void {
    const targets = id ? [this.require(id)] : [...this.nodes.values()];
    for (const n of targets) n.actor.send({ type: 'PAUSE', minutes });
  }

  /**
   * Applies a reloaded config (SIGHUP) whose `policy` and `nodes` the caller has already put into
   * the shared config object. A changed effective policy reaches the node's actor at once; a
   * changed static entry (credentials, options, dir) re-registers the node, whose new actor adopts
   * the running server, but only while the node is settled and no job owns it; a new static entry
   * is registered like at start-up. As at a restart, a node dropped from the config file stays
   * supervised (the state file knows it): DELETE /v1/nodes/:port drops it.
   */
  applyConfig(): ConfigChange {
    const change: ConfigChange = { policy: [], added: [], replaced: [], deferred: [], unlisted: [], refused: [] };
    const listed = new Map(this.config.nodes.map((e) => [e.port, e]));
    for (const n of [...this.nodes.values()]) {
      const id = n.spec.id;
      const fromFile = n.source === 'static' ? listed.get(n.spec.port) : undefined;
      if (n.source === 'static' && !fromFile) change.unlisted.push(id);
      const entry = fromFile ?? n.entry;
      if (JSON.stringify(entry) !== JSON.stringify(n.entry)) {
        const snap = n.actor.getSnapshot();
        if (!snap.hasTag('replaceable') || snap.context.work) {
          change.deferred.push(id);
          continue;
        }
        try {
          this.replace(n, entry);
          change.replaced.push(id);
        } catch (err) {
          change.refused.push(`${id}: ${(err as Error).message}`);
        }
        continue;
      }
      const policy = resolveSpec(this.config, entry, this.runAs).policy;
      if (JSON.stringify(policy) !== JSON.stringify(n.spec.policy)) {
        // The engines read spec.policy at each use (probe timeouts, the stop ladder); the chart keeps its own copy.
        n.spec.policy = policy;
        n.actor.send({ type: 'SET_POLICY', policy });
        change.policy.push(id);
      }
    }
    for (const entry of this.config.nodes) {
      if (this.byPort(entry.port)) continue;
      try {
        change.added.push(this.register(entry, 'static').spec.id);
      } catch (err) {
        change.refused.push(`port ${entry.port}: ${(err as Error).message}`);
      }
    }
    return change;
  }

  /** A new actor for a changed entry, keeping what the operator wanted; it adopts the running server. */
  private replace(n: Supervised, entry: NodeEntry): void {
    const { wanted, claim } = n.actor.getSnapshot().context;
    const spec = resolveSpec(this.config, entry, this.runAs);
    if (spec.id !== n.spec.id) {
      this.forget(n.spec.id);
    } else {
      n.actor.stop();
      this.nodes.delete(n.spec.id);
      this.changes++;
    }
    const next = this.register(entry, n.source, wanted);
    // A queued job that holds the node still holds it on the new actor.
    if (claim && next.spec.id === n.spec.id) next.actor.send({ type: 'CLAIM', claim });
  }

  /** Stops supervising a node without touching its process (a node removed by discovery). */
  forget(id: string): void {
    const n = this.require(id);
    n.actor.stop();
    this.nodes.delete(id);
    this.changes++;
    this.store.removeNode(id);
  }

  private async waitSettled(n: Supervised, timeoutMs: number): Promise<NodeSnapshot> {
    return waitFor(n.actor, (s) => s.status !== 'active' || s.hasTag('settled'), { timeout: timeoutMs });
  }

  async settled(ids: string[], timeoutMs: number): Promise<void> {
    await Promise.all(ids.map((id) => this.waitSettled(this.require(id), timeoutMs)));
  }

  /** Waits until the node reaches `state` (tests and operators' scripts). */
  async waitForState(id: string, state: string, timeoutMs = 60_000): Promise<NodeView> {
    const n = this.require(id);
    await waitFor(n.actor, (s) => stateName(s.value) === state, { timeout: timeoutMs });
    return this.view(n);
  }

  /** Stops the actors. The databases keep running unless stopNodes is true. */
  async shutdown(stopNodes = this.config.stopNodesOnExit): Promise<void> {
    if (stopNodes) {
      await Promise.allSettled([...this.nodes.values()].filter((n) => !n.actor.getSnapshot().matches('stopped')).map((n) => this.stopKeepingWanted(n)));
    }
    for (const n of this.nodes.values()) n.actor.stop();
    this.nodes.clear();
    this.changes++;
  }

  /** Stops a node for node-mgr's own shutdown without recording that the operator wants it stopped. */
  private async stopKeepingWanted(n: Supervised): Promise<void> {
    const wanted = n.actor.getSnapshot().context.wanted;
    n.actor.send({ type: 'STOP' });
    await this.waitSettled(n, 120_000);
    this.store.setWanted(n.spec.id, wanted);
    n.persisted.wanted = wanted;
  }
}

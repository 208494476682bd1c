// Periodic chores that keep a long-running node-mgr tidy: server logs (the captured output and
// the servers' own, such as MariaDB's error log) rotated by size, the transition journal bounded,
// dropped nodes' directories deleted once their grace period is over.
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { StateStore } from '../state/store.ts';
import { engineFor } from '../engines/index.ts';
import type { NodeSpec } from '../engines/node-spec.ts';
import { rotateServerLog } from './spawn.ts';

export interface HousekeepingOptions {
  store: StateStore;
  log: Logger;
  specs: () => NodeSpec[];
  trashDir: string;
  trashGraceMs: number;
  serverLog: { maxBytes: number; keep: number };
  journalKeepPerNode?: number;
}

/** Deletes trash entries (dropped nodes' directories) older than graceMs; returns what it deleted. */
export async function purgeTrash(trashDir: string, graceMs: number, now = Date.now()): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(trashDir);
  } catch {
    return [];
  }
  const deleted: string[] = [];
  for (const name of entries) {
    const p = path.join(trashDir, name);
    const s = await stat(p).catch(() => null);
    if (s && now - s.mtimeMs > graceMs) {
      await rm(p, { recursive: true, force: true });
      deleted.push(name);
    }
  }
  return deleted;
}

/** One pass of every chore; errors are logged, never thrown: housekeeping must not stop node-mgr. */
export async function houseKeep(opts: HousekeepingOptions): Promise<void> {
  for (const spec of opts.specs()) {
    await rotateServerLog(spec, opts.serverLog.maxBytes, opts.serverLog.keep).catch((err) =>
      opts.log.warn({ node: spec.id, err: String(err) }, 'server log rotation failed'),
    );
    const rotated = await engineFor(spec.kind)
      .rotateOwnLogs?.(spec, opts.serverLog)
      .catch((err) => {
        opts.log.warn({ node: spec.id, err: String(err) }, 'log rotation failed');
        return [];
      });
    if (rotated?.length) opts.log.info({ node: spec.id, rotated }, 'rotated the server\'s own logs');
  }
  try {
    opts.store.pruneTransitions(opts.journalKeepPerNode ?? 1000);
  } catch (err) {
    opts.log.warn({ err: String(err) }, 'journal pruning failed');
  }
  const purged = await purgeTrash(opts.trashDir, opts.trashGraceMs).catch((err) => {
    opts.log.warn({ err: String(err) }, 'trash purge failed');
    return [];
  });
  if (purged.length) opts.log.info({ purged }, 'deleted dropped nodes past their grace period');
}

/** Runs houseKeep every intervalMs; returns a stop function. */
export function startHousekeeping(opts: HousekeepingOptions, intervalMs = 60_000): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    void houseKeep(opts).finally(() => (running = false));
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

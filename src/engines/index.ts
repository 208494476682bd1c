// The engine for each process kind. Callers ask for an engine by kind and never branch on it.
import type { NodeKind } from '../config/schema.ts';
import { clusterMgrEngine } from './cluster-mgr.ts';
import type { Engine } from './engine.ts';
import { mysqlEngine } from './mysql/engine.ts';
import { postgresEngine } from './postgres/engine.ts';

export const engines: Readonly<Record<NodeKind, Engine>> = Object.freeze({
  mysql: mysqlEngine,
  postgres: postgresEngine,
  cluster_mgr: clusterMgrEngine,
});

export function engineFor(kind: NodeKind): Engine {
  const engine = engines[kind];
  if (!engine) throw new Error(`no engine for node kind '${kind}'`);
  return engine;
}

export type { Engine };

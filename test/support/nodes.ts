// Shared helpers for tests that run real servers: free ports, temp node dirs the runAs user can
// reach, and NodeSpecs resolved through the real config path.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import type { NodeEntry, NodeKind } from '../../src/config/schema.ts';
import type { NodeSpec } from '../../src/engines/node-spec.ts';
import { endedOrEndingNow } from '../../src/host/process-info.ts';
import { lookupRunAs } from '../../src/host/run-as.ts';
import { resolveSpec } from '../../src/engines/node-spec.ts';

/** The OS user test servers run as (postgres refuses root). */
export const TEST_RUN_AS = process.env.NODE_MGR_TEST_RUN_AS ?? 'nodemgr';

// The stock servers of this machine: never hand these out.
const FORBIDDEN_PORTS = new Set([3306, 5432]);

/**
 * Ports handed out lie below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768 and
 * up): a port the kernel chose for `listen(0)` comes from the range it also takes client sockets'
 * local ports from, so between "free" and a server binding it an outgoing connection of a test
 * running alongside could take it (and a node meant not to answer could be answered).
 */
const PORT_LOW = 20_000;
const PORT_HIGH = 32_000;

/**
 * Ports handed out by a live test process, one file each: the suite runs two test files at once, and
 * a port found free is bound only seconds later (after node-mgr starts and the data dir is made), so
 * without this the other file could be handed the same port meanwhile. A file whose writer has
 * exited is taken over.
 */
const RESERVED_DIR = path.join(os.tmpdir(), 'node-mgr-test-ports');

function reserve(port: number): boolean {
  mkdirSync(RESERVED_DIR, { recursive: true });
  const file = path.join(RESERVED_DIR, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(file, 'utf8').trim());
      if (!endedOrEndingNow(holder)) return false;
      rmSync(file, { force: true });
    }
  }
  return false;
}

/** A TCP port free on 127.0.0.1 right now, picked at random below the ephemeral range, reserved for this process. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = PORT_LOW + Math.floor(Math.random() * (PORT_HIGH - PORT_LOW));
    if (FORBIDDEN_PORTS.has(port)) continue;
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.unref();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free && reserve(port)) return port;
  }
}

const tempRoots: string[] = [];

/**
 * A path for a node dir (not created) inside a fresh temp dir (under `base`, default the system's
 * temp dir). mkdtemp makes the temp dir 0700 root, which the runAs user could not traverse: it is
 * opened to 0755.
 */
export async function tempNodeDir(label = 'node', base = os.tmpdir()): Promise<string> {
  const root = await mkdtemp(path.join(base, 'nm-'));
  await chmod(root, 0o755);
  tempRoots.push(root);
  return path.join(root, label);
}

/** Removes every temp dir tempNodeDir made. */
export async function removeTempDirs(): Promise<void> {
  for (const root of tempRoots.splice(0)) await rm(root, { recursive: true, force: true });
}

const ROLE_OF: Record<NodeKind, NodeEntry['role']> = { mysql: 'storage', postgres: 'computer', cluster_mgr: 'cluster_mgr' };

export type SpecOverrides = Partial<Omit<NodeEntry, 'kind'>>;

/**
 * A NodeSpec for a test node: a free port, a temp node dir, runAs TEST_RUN_AS, and policies short
 * enough for tests (overridable through `policy`). Goes through parseConfig + resolveSpec, so
 * the defaults are the real ones.
 */
export async function makeSpec(kind: NodeKind, overrides: SpecOverrides = {}): Promise<NodeSpec> {
  const entry = {
    kind,
    role: ROLE_OF[kind],
    port: overrides.port ?? (await freePort()),
    dir: overrides.dir ?? (await tempNodeDir(kind)),
    ...overrides,
    policy: {
      stop: { gracefulTimeoutMs: 10_000, forcefulTimeoutMs: 5_000, ...overrides.policy?.stop },
      probe: { intervalMs: 1000, timeoutMs: 2000, startTimeoutMs: 30_000, ...overrides.policy?.probe },
      restart: overrides.policy?.restart,
    },
  };
  const config = parseConfig({ runAs: TEST_RUN_AS, nodes: [entry] });
  return resolveSpec(config, config.nodes[0], lookupRunAs(TEST_RUN_AS));
}

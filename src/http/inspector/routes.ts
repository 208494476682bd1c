// The inspector: a page served by node-mgr itself (no CDN, no build step: plain JS, CSS and an SVG
// drawn here from the machine definitions) and the machine descriptions it draws from.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { AnyStateMachine } from 'xstate';
import { HttpError } from '../errors.ts';
import { nodeMachine, stateName } from '../../../machines/node.machine.ts';
import { jobMachine } from '../../../machines/job.machine.ts';
import { machineGraph, type MachineGraph } from './machine-graph.ts';
import { drawStatechart } from './statechart-svg.ts';

/**
 * Beside this module in the sources; the build bundles this module into a file of dist/src/ and
 * copies the page to dist/src/http/inspector/page (scripts/build.mjs).
 */
const PAGE_DIR = ((here) => ['page', 'http/inspector/page'].map((dir) => path.join(here, dir)).find((dir) => existsSync(path.join(dir, 'index.html'))) ?? path.join(here, 'page'))(
  path.dirname(fileURLToPath(import.meta.url)),
);

const MACHINES: Record<string, { machine: AnyStateMachine; wire?: (value: unknown) => string }> = {
  node: { machine: nodeMachine, wire: stateName },
  job: { machine: jobMachine },
};

const ASSETS: Record<string, string> = {
  'inspector.js': 'text/javascript; charset=utf-8',
  'inspector.css': 'text/css; charset=utf-8',
};

export async function inspectorRoutes(app: FastifyInstance): Promise<void> {
  // Read once: the files ship with node-mgr and a running node-mgr serves what it started with.
  const page = readFileSync(path.join(PAGE_DIR, 'index.html'), 'utf8');
  const assets = new Map(Object.keys(ASSETS).map((name) => [name, readFileSync(path.join(PAGE_DIR, name), 'utf8')]));
  const graphs = new Map<string, MachineGraph>();
  const drawings = new Map<string, string>();
  const graphOf = (name: string): MachineGraph => {
    const entry = MACHINES[name];
    if (!entry) throw new HttpError(404, `no machine "${name}"; known: ${Object.keys(MACHINES).join(', ')}`);
    let graph = graphs.get(name);
    if (!graph) graphs.set(name, (graph = machineGraph(entry.machine, entry.wire)));
    return graph;
  };

  app.get('/inspect', { config: { access: 'read' }, schema: { hide: true } }, async (_req, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(page),
  );
  app.get<{ Params: { file: string } }>('/inspect/:file', { config: { access: 'read' }, schema: { hide: true } }, async (req, reply) => {
    const body = assets.get(req.params.file);
    if (body === undefined) throw new HttpError(404, `no inspector file ${req.params.file}`);
    return reply.type(ASSETS[req.params.file]!).header('cache-control', 'no-cache').send(body);
  });

  app.get<{ Params: { name: string } }>(
    '/v1/machines/:name',
    { config: { access: 'read' }, schema: { summary: 'A statechart as JSON, read from its machine definition (states, transitions, guards, invokes)' } },
    async (req) => graphOf(req.params.name),
  );
  app.get<{ Params: { name: string } }>(
    '/v1/machines/:name/svg',
    { config: { access: 'read' }, schema: { summary: 'The statechart laid out as SVG; each state is a <g data-wire="running">' } },
    async (req, reply) => {
      let svg = drawings.get(req.params.name);
      if (svg === undefined) drawings.set(req.params.name, (svg = drawStatechart(graphOf(req.params.name)).svg));
      return reply.type('image/svg+xml; charset=utf-8').send(svg);
    },
  );
}

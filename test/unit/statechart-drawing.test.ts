// The inspector's picture of the node statechart is generated from machines/node.machine.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createMachine } from 'xstate';
import { nodeMachine, stateName } from '../../machines/node.machine.ts';
import { machineGraph } from '../../src/http/inspector/machine-graph.ts';
import { drawStatechart } from '../../src/http/inspector/statechart-svg.ts';

describe('the node statechart as data', () => {
  const graph = machineGraph(nodeMachine, stateName);
  const find = (source: string, label: string, target: string | null) =>
    graph.transitions.find((t) => t.source === source && t.label === label && t.target === target);

  it('lists every state of the machine with the name the API reports for it', () => {
    const wire = graph.states.filter((s) => s.wire).map((s) => s.wire).sort();
    assert.deepEqual(wire, [
      'adopting', 'backing_up', 'backoff', 'crashed', 'deciding', 'dropped', 'dropping', 'exporting', 'failed', 'held',
      'importing', 'initializing', 'preflight', 'restoring', 'running', 'starting', 'stopped', 'stopping',
    ]);
    const up = graph.states.find((s) => s.id === 'node.up')!;
    assert.equal(up.type, 'compound');
    assert.equal(up.initial, 'node.up.starting');
    assert.deepEqual(up.invokes, ['process']);
    assert.equal(graph.states.find((s) => s.id === 'node.up.serving.running')!.wire, 'running');
  });

  it('names on/after/always and invoke onDone/onError transitions as the author wrote them', () => {
    assert.ok(find('node.stopped', 'START', 'node.preflight'));
    assert.equal(find('node.backoff', 'after backoff', 'node.preflight')?.kind, 'after');
    assert.equal(find('node.backoff', 'after backoff', 'node.held')?.guard, 'isPaused');
    assert.equal(find('node.deciding', 'always', 'node.failed')?.guard, 'tooManyRestarts');
    assert.equal(find('node.crashed', 'done: diagnose', 'node.deciding')?.kind, 'done');
    assert.equal(find('node.preflight', 'error: preflight', 'node.deciding')?.guard, 'isAutoRestart');
    assert.equal(find('node.up', 'PROCESS_EXITED', 'node.stopped')?.guard, 'intentIs stop');
    assert.equal(find('node.adopting', 'done: adopt', 'node.up.serving')?.guard, 'hasPid');
    // Targetless transitions (actions only) are kept, with a null target.
    assert.ok(find('node.up.serving', 'PROBE_OK', null));
  });

  it('follows a change of the machine: a new state shows up without redrawing anything by hand', () => {
    const m = createMachine({ id: 'm', initial: 'a', states: { a: { on: { GO: 'b' } }, b: { after: { 100: 'a' } } } });
    const g = machineGraph(m);
    assert.deepEqual(g.states.map((s) => s.id), ['m', 'm.a', 'm.b']);
    assert.equal(g.transitions.find((t) => t.source === 'm.b')!.label, 'after 100');
    const svg = drawStatechart(g).svg;
    assert.match(svg, /data-wire="b"/);
  });
});

describe('the statechart drawing', () => {
  const drawing = drawStatechart(machineGraph(nodeMachine, stateName));
  const boxes = drawing.boxes;
  const overlap = (a: { x: number; y: number; w: number; h: number }, b: typeof a) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

  it('gives each state a group the page can highlight by its wire name', () => {
    for (const wire of ['adopting', 'running', 'crashed', 'backoff', 'failed', 'dropped']) assert.match(drawing.svg, new RegExp(`data-wire="${wire}"`));
    assert.match(drawing.svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  });

  it('puts children inside their compound state and never overlaps two sibling states', () => {
    const inside = (c: string, p: string) => boxes[c]!.x >= boxes[p]!.x && boxes[c]!.y >= boxes[p]!.y && boxes[c]!.x + boxes[c]!.w <= boxes[p]!.x + boxes[p]!.w && boxes[c]!.y + boxes[c]!.h <= boxes[p]!.y + boxes[p]!.h;
    assert.ok(inside('node.up.starting', 'node.up'));
    assert.ok(inside('node.up.serving.running', 'node.up.serving'));
    assert.ok(inside('node.up.serving', 'node.up'));
    const siblings = ['node.adopting', 'node.stopped', 'node.initializing', 'node.preflight', 'node.up', 'node.crashed', 'node.deciding', 'node.backoff', 'node.held', 'node.failed', 'node.restoring', 'node.dropping', 'node.dropped'];
    for (const a of siblings) for (const b of siblings) if (a < b) assert.equal(overlap(boxes[a]!, boxes[b]!), false, `${a} overlaps ${b}`);
  });

  it('reads top to bottom in the order the states are declared', () => {
    assert.ok(boxes['node.adopting']!.y < boxes['node.stopped']!.y);
    assert.ok(boxes['node.preflight']!.y < boxes['node.up']!.y);
    assert.ok(boxes['node.up']!.y < boxes['node.crashed']!.y);
    assert.ok(boxes['node.crashed']!.y < boxes['node.backoff']!.y);
  });

  it('draws one edge per pair of states that a transition joins', () => {
    const pairs = new Set(drawing.edges.map((e) => `${e.source}>${e.target}`));
    assert.ok(pairs.has('node.backoff>node.preflight'));
    assert.ok(pairs.has('node.crashed>node.deciding'));
    assert.equal(pairs.size, drawing.edges.length);
  });
});

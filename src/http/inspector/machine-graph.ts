// The shape of a statechart as plain JSON, read from the machine definition itself (never drawn
// by hand): the inspector lays it out and highlights the live state on it, so a change to
// machines/*.ts shows up in the picture without anyone redrawing it.
import type { AnyStateMachine, AnyStateNode } from 'xstate';

export interface StateInfo {
  /** XState's id, e.g. `node.up.serving.running`. */
  id: string;
  key: string;
  /** Path below the root, e.g. ['up', 'serving', 'running']; [] for the root. */
  path: string[];
  parent: string | null;
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  /** Id of the initial child of a compound state. */
  initial: string | null;
  /** The flat name the API reports for this state (`running`), for atomic and final states. */
  wire: string | null;
  /** Logic the state runs while active (`adopt`, `process`, …). */
  invokes: string[];
  /** Declaration order among its siblings: the author's reading order, used by the layout. */
  order: number;
  description: string | null;
}

export type TransitionKind = 'event' | 'done' | 'error' | 'after' | 'always';

export interface TransitionInfo {
  source: string;
  /** Null for a transition that only runs actions and stays put. */
  target: string | null;
  kind: TransitionKind;
  /** The event as the author wrote it: `START`, `after backoff`, `done: adopt`, `always`. */
  label: string;
  /** The raw event type XState matches (`xstate.done.actor.…` for invoke results). */
  eventType: string;
  guard: string | null;
  actions: string[];
}

export interface MachineGraph {
  id: string;
  initial: string | null;
  states: StateInfo[];
  transitions: TransitionInfo[];
}

/** Walks `machine.root` and lists every state node and every transition with its origin. */
export function machineGraph(machine: AnyStateMachine, wireName: (value: unknown) => string = defaultWireName): MachineGraph {
  const states: StateInfo[] = [];
  const transitions: TransitionInfo[] = [];

  const visit = (node: AnyStateNode, path: string[], order: number): void => {
    const children = Object.values(node.states as Record<string, AnyStateNode>);
    const invokes = node.invoke.map((inv) => ({ id: inv.id, src: typeof inv.src === 'string' ? inv.src : inv.id }));
    states.push({
      id: node.id,
      key: node.key,
      path,
      parent: node.parent ? node.parent.id : null,
      type: node.type,
      initial: node.type === 'compound' ? (node.initial.target[0]?.id ?? null) : null,
      wire: children.length === 0 && path.length > 0 ? wireName(valueOfPath(path)) : null,
      invokes: invokes.map((i) => i.src),
      order,
      description: node.description ?? null,
    });

    for (const [eventType, defs] of node.transitions as Map<string, AnyTransition[]>) {
      const { kind, label } = describeEvent(eventType, node.id, invokes);
      for (const def of defs) transitions.push(transitionInfo(node.id, def, kind, label, eventType));
    }
    for (const def of (node.always ?? []) as AnyTransition[]) transitions.push(transitionInfo(node.id, def, 'always', 'always', ''));

    children.forEach((child, i) => visit(child, [...path, child.key], i));
  };
  visit(machine.root, [], 0);
  return { id: machine.root.id, initial: machine.root.initial?.target[0]?.id ?? null, states, transitions };
}

interface AnyTransition {
  target?: ReadonlyArray<{ id: string }>;
  guard?: unknown;
  actions?: ReadonlyArray<unknown>;
}

function transitionInfo(source: string, def: AnyTransition, kind: TransitionKind, label: string, eventType: string): TransitionInfo {
  return {
    source,
    target: def.target?.[0]?.id ?? null,
    kind,
    label,
    eventType,
    guard: nameOf(def.guard),
    actions: (def.actions ?? []).map(nameOf).filter((a): a is string => a !== null),
  };
}

/** XState encodes invoke results and delays in event types; turn them back into what the author wrote. */
function describeEvent(eventType: string, stateId: string, invokes: Array<{ id: string; src: string }>): { kind: TransitionKind; label: string } {
  const invokeResult = /^xstate\.(done|error)\.actor\.(.+)$/.exec(eventType);
  if (invokeResult) {
    const src = invokes.find((i) => i.id === invokeResult[2])?.src ?? invokeResult[2]!;
    return { kind: invokeResult[1] as 'done' | 'error', label: `${invokeResult[1]}: ${src}` };
  }
  if (eventType.startsWith('xstate.after.') && eventType.endsWith(`.${stateId}`)) {
    const delay = eventType.slice('xstate.after.'.length, eventType.length - stateId.length - 1);
    return { kind: 'after', label: `after ${delay}` };
  }
  return { kind: 'event', label: eventType };
}

/** Guards and actions are strings, `{ type, params }` objects, or inline functions. */
function nameOf(thing: unknown): string | null {
  if (typeof thing === 'string') return thing;
  if (typeof thing === 'function') return thing.name || 'inline';
  if (thing && typeof thing === 'object' && 'type' in thing) {
    const { type, params } = thing as { type: unknown; params?: unknown };
    if (typeof type !== 'string') return null;
    if (params && typeof params === 'object' && !Array.isArray(params)) {
      const shown = Object.values(params as Record<string, unknown>).filter((v) => typeof v === 'string' || typeof v === 'number');
      if (shown.length) return `${type} ${shown.join(' ')}`;
    }
    return type;
  }
  return null;
}

/** {up: {serving: 'running'}} for ['up', 'serving', 'running']: a state value XState would report. */
function valueOfPath(path: string[]): unknown {
  return path.reduceRight<unknown>((inner, key) => (inner === undefined ? key : { [key]: inner }), undefined);
}

function defaultWireName(value: unknown): string {
  if (typeof value === 'string') return value;
  const [parent, child] = Object.entries(value as Record<string, unknown>)[0]!;
  return `${parent}.${defaultWireName(child)}`;
}

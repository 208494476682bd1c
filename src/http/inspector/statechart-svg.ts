// Lays a MachineGraph out top to bottom and draws it as SVG, once, on the server: the browser only
// toggles classes on `[data-wire]` groups to show the live state.
//
// Layout: each compound state lays out its own children (recursively) in rows. A child's row is the
// longest chain of "forward" transitions leading to it, forward meaning towards a state declared
// later: the author's declaration order is the reading order of the lifecycle (adopting, stopped,
// …, dropped), which no graph heuristic recovers as well. Transitions between neighbouring rows
// with nothing in between are drawn straight; the others run in vertical lanes beside the chart,
// one lane per target (left for forward, right for backward), so that they never cross a state.
import type { MachineGraph, StateInfo, TransitionInfo } from './machine-graph.ts';

const CHAR_W = 7.2;
const LABEL_CHAR_W = 5.9;
const BOX_H = 26;
const ROW_GAP = 26;
/** More room between rows joined by more than two edges, per edge, for their labels. */
const ROW_GAP_PER_EDGE = 12;
const COL_GAP = 26;
const PAD = 10;
const HEADER = 17;
const PORT_GAP = 14;
const LANE_MARGIN = 22;
const LANE_GAP = 12;

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

interface DrawnEdge {
  source: string;
  target: string;
  label: string;
  /** The label without guards, used where the full one would cover another. */
  shortLabel: string;
  detail: string;
  kinds: string[];
  route: 'direct' | 'left' | 'right';
}

export interface StatechartDrawing {
  svg: string;
  width: number;
  height: number;
  /** Absolute boxes by state id (for tests and for the page's scroll-into-view). */
  boxes: Record<string, Box>;
  edges: Array<{ source: string; target: string; label: string; route: string }>;
}

export function drawStatechart(graph: MachineGraph): StatechartDrawing {
  const byId = new Map(graph.states.map((s) => [s.id, s]));
  const children = new Map<string, StateInfo[]>();
  for (const s of graph.states) {
    if (s.parent === null) continue;
    const list = children.get(s.parent) ?? [];
    list.push(s);
    children.set(s.parent, list);
  }
  for (const list of children.values()) list.sort((a, b) => a.order - b.order);
  const rootId = graph.states.find((s) => s.parent === null)!.id;

  const ancestors = (id: string): string[] => {
    const out: string[] = [];
    for (let p = byId.get(id)?.parent ?? null; p !== null; p = byId.get(p)?.parent ?? null) out.push(p);
    return out;
  };
  /** The child of `compound` that contains (or is) `id`, or null when `id` is not below it. */
  const liftTo = (id: string, compound: string): string | null => {
    let cur: string | null = id;
    while (cur !== null) {
      const parent: string | null = byId.get(cur)?.parent ?? null;
      if (parent === compound) return cur;
      cur = parent;
    }
    return null;
  };

  const edges = mergeEdges(graph.transitions);

  // Two passes: the first finds how many lane exits each state has on its sides, the second
  // makes those states tall enough for their ports.
  let extraHeight = new Map<string, number>();
  let laid = layout();
  let routed = route(laid);
  const sidePorts = new Map<string, number>();
  for (const e of routed.lanes) {
    const key = `${e.source}:${e.route}`;
    sidePorts.set(key, (sidePorts.get(key) ?? 0) + 1);
  }
  extraHeight = new Map();
  for (const [key, n] of sidePorts) {
    const id = key.slice(0, key.lastIndexOf(':'));
    const base = baseSize(byId.get(id)!).h;
    const need = n * PORT_GAP + 8;
    if (byId.get(id)!.type !== 'compound' && need > base) extraHeight.set(id, Math.max(extraHeight.get(id) ?? 0, need - base));
  }
  laid = layout();
  routed = route(laid);
  return render(laid, routed);

  // -------------------------------------------------------------------------------------------

  function baseSize(s: StateInfo): { w: number; h: number } {
    // What a state invokes follows its name on the same line: rows stay low, the chart fits its panel.
    const text = s.key.length * CHAR_W + (s.invokes.length ? 5 + (s.invokes.join(', ').length + 2) * LABEL_CHAR_W : 0);
    return { w: Math.max(92, Math.round(text + 22)), h: BOX_H + (extraHeight.get(s.id) ?? 0) };
  }

  /** Boxes of every state, in the root's coordinates. */
  function layout(): Map<string, Box> {
    const rel = new Map<string, Box>();
    /** Moves the descendants of `id` (not `id` itself). */
    const shiftBelow = (id: string, dx: number, dy: number) => {
      for (const k of children.get(id) ?? []) {
        const b = rel.get(k.id)!;
        b.x += dx;
        b.y += dy;
        shiftBelow(k.id, dx, dy);
      }
    };

    /** Lays out the children of `id` relative to its own origin and returns its size. */
    const sizeOf = (id: string): { w: number; h: number } => {
      const s = byId.get(id)!;
      const kids = children.get(id) ?? [];
      if (kids.length === 0) return baseSize(s);
      const inner = layoutChildren(id, kids);
      const isRoot = s.parent === null;
      const head = isRoot ? 0 : HEADER;
      const pad = isRoot ? 0 : PAD;
      shiftBelow(id, pad, pad + head);
      return { w: Math.max(inner.w + 2 * pad, baseSize(s).w), h: inner.h + 2 * pad + head };
    };

    const layoutChildren = (compound: string, kids: StateInfo[]): { w: number; h: number } => {
      const sizes = new Map(kids.map((k) => [k.id, sizeOf(k.id)]));
      const order = new Map(kids.map((k) => [k.id, k.order]));
      const preds = new Map<string, string[]>(kids.map((k) => [k.id, []]));
      for (const e of edges) {
        const s = liftTo(e.source, compound);
        const t = liftTo(e.target, compound);
        if (!s || !t || s === t) continue;
        if (order.get(s)! < order.get(t)!) preds.get(t)!.push(s);
      }
      const rank = new Map<string, number>();
      for (const k of kids) rank.set(k.id, Math.max(0, ...preds.get(k.id)!.map((p) => rank.get(p)! + 1)));
      const rows: StateInfo[][] = [];
      for (const k of kids) (rows[rank.get(k.id)!] ??= []).push(k);
      // Rows joined by many edges get more room for their labels.
      const between = new Map<number, number>();
      for (const e of edges) {
        const s = liftTo(e.source, compound);
        const t = liftTo(e.target, compound);
        if (!s || !t || s === t || Math.abs(rank.get(s)! - rank.get(t)!) !== 1) continue;
        const r = Math.min(rank.get(s)!, rank.get(t)!);
        between.set(r, (between.get(r) ?? 0) + 1);
      }

      const centre = new Map<string, number>();
      let y = 0;
      let minX = Infinity;
      let maxX = -Infinity;
      for (const [r, row] of rows.entries()) {
        if (!row) continue;
        // Each state wants to sit under the states that lead to it; overlaps are pushed right.
        let fallback = 0;
        const wanted = row.map((k) => {
          const from = preds.get(k.id)!.filter((p) => centre.has(p)).map((p) => centre.get(p)!);
          const w = sizes.get(k.id)!.w;
          const x = from.length ? from.reduce((a, b) => a + b, 0) / from.length : fallback + w / 2;
          fallback += w + COL_GAP;
          return { k, x };
        });
        wanted.sort((a, b) => a.x - b.x || a.k.order - b.k.order);
        const placed: Array<{ k: StateInfo; left: number }> = [];
        let right = -Infinity;
        for (const { k, x } of wanted) {
          const w = sizes.get(k.id)!.w;
          const left = Math.max(x - w / 2, right + COL_GAP);
          placed.push({ k, left });
          right = left + w;
        }
        // Pushing right drifts the row; centre it back on what its states wanted.
        const drift = (placed.reduce((a, p) => a + p.left + sizes.get(p.k.id)!.w / 2, 0) - wanted.reduce((a, p) => a + p.x, 0)) / placed.length;
        const rowH = Math.max(...row.map((k) => sizes.get(k.id)!.h));
        for (const { k, left } of placed) {
          const { w, h } = sizes.get(k.id)!;
          const x = left - drift;
          const top = y + (rowH - h) / 2;
          centre.set(k.id, x + w / 2);
          rel.set(k.id, { x, y: top, w, h });
          shiftBelow(k.id, x, top);
          minX = Math.min(minX, x);
          maxX = Math.max(maxX, x + w);
        }
        y += rowH + ROW_GAP + ROW_GAP_PER_EDGE * Math.max(0, (between.get(r) ?? 0) - 2);
      }
      for (const k of kids) {
        rel.get(k.id)!.x -= minX;
        shiftBelow(k.id, -minX, 0);
      }
      return { w: maxX - minX, h: y - ROW_GAP - ROW_GAP_PER_EDGE * Math.max(0, (between.get(rows.length - 1) ?? 0) - 2) };
    };

    const rootSize = sizeOf(rootId);
    rel.set(rootId, { x: 0, y: 0, w: rootSize.w, h: rootSize.h });
    return rel;
  }

  function route(boxes: Map<string, Box>) {
    const root = boxes.get(rootId)!;
    const related = (a: string, b: string) => a === b || ancestors(a).includes(b) || ancestors(b).includes(a);
    const obstacles = (e: { source: string; target: string }) =>
      [...boxes.entries()].filter(([id]) => id !== rootId && !related(id, e.source) && !related(id, e.target)).map(([, b]) => b);

    const direct: DrawnEdge[] = [];
    const lanes: DrawnEdge[] = [];
    for (const e of edges) {
      const s = boxes.get(e.source)!;
      const t = boxes.get(e.target)!;
      if (e.source === e.target) continue;
      const down = t.y >= s.y + s.h;
      const up = t.y + t.h <= s.y;
      const blockers = obstacles(e);
      if (down || up) {
        const y1 = down ? s.y + s.h : s.y;
        const y2 = down ? t.y : t.y + t.h;
        const x1 = s.x + s.w / 2;
        const x2 = t.x + t.w / 2;
        const clear = !blockers.some((b) => segmentHitsBox(x1, y1, x2, y2, b));
        if (clear) {
          direct.push({ ...e, route: 'direct' });
          continue;
        }
      }
      // Forward edges run on the left, backward ones on the right, unless a state sits between the
      // lane and where the edge leaves or enters on that side.
      let side: 'left' | 'right' = down ? 'left' : 'right';
      const blockedBeside = (box: Box, dir: 'left' | 'right') =>
        blockers.some((b) => box.y + box.h > b.y && box.y < b.y + b.h && (dir === 'left' ? b.x + b.w <= box.x : b.x >= box.x + box.w));
      const blockedOn = (dir: 'left' | 'right') => blockedBeside(s, dir) || blockedBeside(t, dir);
      if (blockedOn(side) && !blockedOn(side === 'left' ? 'right' : 'left')) side = side === 'left' ? 'right' : 'left';
      lanes.push({ ...e, route: side });
    }
    return { direct, lanes, root };
  }

  function render(boxes: Map<string, Box>, routed: ReturnType<typeof route>): StatechartDrawing {
    const out: string[] = [];
    const bounds = { minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity };
    const grow = (x: number, y: number) => {
      bounds.minX = Math.min(bounds.minX, x);
      bounds.minY = Math.min(bounds.minY, y);
      bounds.maxX = Math.max(bounds.maxX, x);
      bounds.maxY = Math.max(bounds.maxY, y);
    };
    for (const [id, b] of boxes) if (id !== rootId) (grow(b.x, b.y), grow(b.x + b.w, b.y + b.h));
    const contentLeft = bounds.minX;
    const contentRight = bounds.maxX;

    // Ports: where each edge leaves and enters a box, spread along the side it uses.
    const bottom = new Map<string, DrawnEdge[]>();
    const top = new Map<string, DrawnEdge[]>();
    const push = (m: Map<string, DrawnEdge[]>, k: string, e: DrawnEdge) => m.set(k, [...(m.get(k) ?? []), e]);
    for (const e of routed.direct) {
      const s = boxes.get(e.source)!;
      const t = boxes.get(e.target)!;
      const down = t.y >= s.y + s.h;
      push(down ? bottom : top, e.source, e);
      push(down ? top : bottom, e.target, e);
    }
    const portX = (m: Map<string, DrawnEdge[]>, id: string, e: DrawnEdge): number => {
      const list = m.get(id)!;
      const b = boxes.get(id)!;
      const other = (x: DrawnEdge) => {
        const o = boxes.get(x.source === id ? x.target : x.source)!;
        return o.x + o.w / 2;
      };
      const sorted = [...list].sort((a, c) => other(a) - other(c));
      return b.x + (b.w * (sorted.indexOf(e) + 1)) / (sorted.length + 1);
    };

    // Lanes: one per (side, target); shorter lanes closer to the chart.
    const laneKey = (e: DrawnEdge) => `${e.route}:${e.target}`;
    const laneGroups = new Map<string, DrawnEdge[]>();
    for (const e of routed.lanes) laneGroups.set(laneKey(e), [...(laneGroups.get(laneKey(e)) ?? []), e]);
    const span = (group: DrawnEdge[]) => {
      const t = boxes.get(group[0]!.target)!;
      const ys = group.map((e) => boxes.get(e.source)!).map((s) => s.y + s.h / 2);
      return Math.max(...ys, t.y) - Math.min(...ys, t.y);
    };
    const laneX = new Map<string, number>();
    for (const side of ['left', 'right'] as const) {
      const groups = [...laneGroups.entries()].filter(([k]) => k.startsWith(`${side}:`)).sort((a, b) => span(a[1]) - span(b[1]));
      groups.forEach(([k], i) => laneX.set(k, side === 'left' ? contentLeft - LANE_MARGIN - i * LANE_GAP : contentRight + LANE_MARGIN + i * LANE_GAP));
    }
    const exits = new Map<string, DrawnEdge[]>();
    for (const e of routed.lanes) push(exits, `${e.source}:${e.route}`, e);
    const entries = new Map<string, string[]>();
    for (const [k, group] of laneGroups) {
      const key = `${group[0]!.target}:${group[0]!.route}`;
      entries.set(key, [...(entries.get(key) ?? []), k]);
    }
    const sideY = (id: string, index: number, count: number) => {
      const b = boxes.get(id)!;
      // Compounds keep their ports below the header, so arrows never hit the name.
      const topY = (children.get(id) ?? []).length ? b.y + HEADER : b.y;
      return topY + ((b.y + b.h - topY) * (index + 1)) / (count + 1);
    };

    const edgeSvg: string[] = [];
    const labelSvg: string[] = [];
    const drawn: StatechartDrawing['edges'] = [];
    const directLabels: Array<{ e: DrawnEdge; curve: number[] }> = [];
    // Labels avoid the states and each other: lane labels sit where their edge leaves its state;
    // a straight edge's label tries a few spots along its curve, then drops its guards.
    const taken: Box[] = [...boxes.entries()].filter(([id]) => id !== rootId && (children.get(id) ?? []).length === 0).map(([, b]) => b);
    for (const [id, b] of boxes) if (id !== rootId && (children.get(id) ?? []).length > 0) taken.push({ x: b.x, y: b.y, w: b.w, h: HEADER });
    const labelBox = (text: string, x: number, y: number, anchor: 'start' | 'end'): Box => {
      const w = labelWidth(text);
      return { x: anchor === 'start' ? x : x - w, y: y - 9, w, h: 11 };
    };
    const overlap = (b: Box) =>
      taken.reduce((sum, o) => sum + Math.max(0, Math.min(b.x + b.w, o.x + o.w) - Math.max(b.x, o.x)) * Math.max(0, Math.min(b.y + b.h, o.y + o.h) - Math.max(b.y, o.y)), 0);
    const free = (b: Box) => !taken.some((o) => b.x < o.x + o.w && b.x + b.w > o.x && b.y < o.y + o.h && b.y + b.h > o.y);
    const placeLabel = (text: string, x: number, y: number, anchor: 'start' | 'end') => {
      const b = labelBox(text, x, y, anchor);
      taken.push(b);
      grow(b.x, b.y);
      grow(b.x + b.w, b.y + b.h);
      labelSvg.push(`<text class="edge-label" x="${n(x)}" y="${n(y)}"${anchor === 'end' ? ' text-anchor="end"' : ''}>${esc(text)}</text>`);
    };
    const edgeAttrs = (e: DrawnEdge) =>
      `class="edge ${e.kinds.map((k) => `kind-${k}`).join(' ')}" data-source="${esc(e.source)}" data-target="${esc(e.target)}" data-source-wire="${esc(byId.get(e.source)!.wire ?? '')}" data-target-wire="${esc(byId.get(e.target)!.wire ?? '')}"`;
    for (const e of routed.direct) {
      const s = boxes.get(e.source)!;
      const t = boxes.get(e.target)!;
      const down = t.y >= s.y + s.h;
      const x1 = portX(down ? bottom : top, e.source, e);
      const y1 = down ? s.y + s.h : s.y;
      const x2 = portX(down ? top : bottom, e.target, e);
      const y2 = down ? t.y : t.y + t.h;
      const dy = (y2 - y1) / 2;
      const d = `M${n(x1)},${n(y1)} C${n(x1)},${n(y1 + dy)} ${n(x2)},${n(y2 - dy)} ${n(x2)},${n(y2)}`;
      edgeSvg.push(`<g ${edgeAttrs(e)}><path d="${d}" marker-end="url(#sc-arrow)"/><title>${esc(e.detail)}</title></g>`);
      directLabels.push({ e, curve: [x1, y1, x1, y1 + dy, x2, y2 - dy, x2, y2] });
    }
    for (const [key, group] of laneGroups) {
      const side = group[0]!.route as 'left' | 'right';
      const lx = laneX.get(key)!;
      const target = group[0]!.target;
      const t = boxes.get(target)!;
      const entryList = entries.get(`${target}:${side}`)!;
      const ty = sideY(target, entryList.indexOf(key), entryList.length);
      const tx = side === 'left' ? t.x : t.x + t.w;
      grow(lx - 4, ty);
      for (const e of group) {
        const s = boxes.get(e.source)!;
        const list = exits.get(`${e.source}:${side}`)!;
        const sy = sideY(e.source, list.indexOf(e), list.length);
        const sx = side === 'left' ? s.x : s.x + s.w;
        const d = orthogonal([
          [sx, sy],
          [lx, sy],
          [lx, ty],
          [tx, ty],
        ]);
        edgeSvg.push(`<g ${edgeAttrs(e)}><path d="${d}" marker-end="url(#sc-arrow)"/><title>${esc(e.detail)}</title></g>`);
        const anchor = side === 'left' ? 'end' : 'start';
        const lxText = side === 'left' ? sx - 5 : sx + 5;
        const text = free(labelBox(e.label, lxText, sy - 3, anchor)) ? e.label : e.shortLabel;
        placeLabel(text, lxText, sy - 3, anchor);
        drawn.push({ source: e.source, target: e.target, label: text, route: side });
      }
    }

    for (const { e, curve } of directLabels) {
      const spots: Array<[number, number, 'start' | 'end']> = [];
      for (const t of [0.5, 0.35, 0.65, 0.2, 0.8, 0.1, 0.9]) {
        const [x, y] = bezierPoint(curve, t);
        spots.push([x + 5, y + 3, 'start'], [x - 5, y + 3, 'end']);
      }
      // Rows sit close together: when the curve has no room, a little beside it.
      for (const t of [0.5, 0.3, 0.7]) {
        const [x, y] = bezierPoint(curve, t);
        for (const dy of [-7, 9]) spots.push([x + 5, y + 3 + dy, 'start'], [x - 5, y + 3 + dy, 'end']);
      }
      let chosen: { text: string; spot: [number, number, 'start' | 'end'] } | null = null;
      for (const text of [e.label, e.shortLabel]) {
        const spot = spots.find(([x, y, a]) => free(labelBox(text, x, y, a)));
        if (spot) {
          chosen = { text, spot };
          break;
        }
      }
      // No free spot: the one that covers the least.
      chosen ??= { text: e.shortLabel, spot: spots.reduce((best, spot) => (overlap(labelBox(e.shortLabel, ...spot)) < overlap(labelBox(e.shortLabel, ...best)) ? spot : best)) };
      placeLabel(chosen.text, ...chosen.spot);
      drawn.push({ source: e.source, target: e.target, label: chosen.text, route: 'direct' });
    }

    // States: compounds (outermost first), then atomic states on top of the edges.
    const compounds: string[] = [];
    const atomics: string[] = [];
    for (const s of graph.states) {
      if (s.id === rootId) continue;
      const b = boxes.get(s.id)!;
      const isCompound = (children.get(s.id) ?? []).length > 0;
      const classes = ['state', isCompound ? 'compound' : 'atomic', s.type === 'final' ? 'final' : ''].filter(Boolean).join(' ');
      const attrs = `class="${classes}" data-id="${esc(s.id)}" data-path="${esc(s.path.join('.'))}"${s.wire ? ` data-wire="${esc(s.wire)}"` : ''}`;
      const invoke = s.invokes.length ? `<tspan class="state-invoke" dx="5">↻ ${esc(s.invokes.join(', '))}</tspan>` : '';
      const title = `<title>${esc(s.id)}${s.invokes.length ? ` — invokes ${esc(s.invokes.join(', '))}` : ''}</title>`;
      if (isCompound) {
        compounds.push(
          `<g ${attrs}>${title}<rect x="${n(b.x)}" y="${n(b.y)}" width="${n(b.w)}" height="${n(b.h)}" rx="10"/><text class="state-name" x="${n(b.x + 10)}" y="${n(b.y + 13)}">${esc(s.key)}${invoke}</text></g>`,
        );
      } else {
        const nameY = b.y + b.h / 2 + 4;
        const inner = s.type === 'final' ? `<rect class="final-ring" x="${n(b.x + 3)}" y="${n(b.y + 3)}" width="${n(b.w - 6)}" height="${n(b.h - 6)}" rx="6"/>` : '';
        atomics.push(
          `<g ${attrs}>${title}<rect x="${n(b.x)}" y="${n(b.y)}" width="${n(b.w)}" height="${n(b.h)}" rx="8"/>${inner}<text class="state-name" x="${n(b.x + b.w / 2)}" y="${n(nameY)}" text-anchor="middle">${esc(s.key)}${invoke}</text></g>`,
        );
      }
    }
    // The initial state of each compound (and of the machine) gets the usual dot and arrow.
    const initials: string[] = [];
    for (const s of graph.states) {
      if (!s.initial) continue;
      const b = boxes.get(s.initial)!;
      const y = b.y - 12;
      const x = b.x + 12;
      initials.push(`<g class="initial"><circle cx="${n(x - 8)}" cy="${n(y - 4)}" r="3.5"/><path d="M${n(x - 8)},${n(y - 4)} L${n(x)},${n(b.y)}" marker-end="url(#sc-arrow-small)"/></g>`);
      grow(x - 14, y - 10);
    }

    const m = 8;
    const vx = Math.floor(bounds.minX - m);
    const vy = Math.floor(bounds.minY - m);
    const width = Math.ceil(bounds.maxX - bounds.minX + 2 * m);
    const height = Math.ceil(bounds.maxY - bounds.minY + 2 * m);
    out.push(
      `<svg xmlns="http://www.w3.org/2000/svg" class="statechart" viewBox="${vx} ${vy} ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="statechart of ${esc(graph.id)}">`,
      '<defs><marker id="sc-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>',
      '<marker id="sc-arrow-small" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="5" markerHeight="5" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
      `<g class="compounds">${compounds.join('')}</g>`,
      `<g class="edges">${edgeSvg.join('')}</g>`,
      `<g class="initials">${initials.join('')}</g>`,
      `<g class="atomics">${atomics.join('')}</g>`,
      `<g class="edge-labels">${labelSvg.join('')}</g>`,
      '</svg>',
    );
    const abs: Record<string, Box> = {};
    for (const [id, b] of boxes) abs[id] = { ...b };
    return { svg: out.join(''), width, height, boxes: abs, edges: drawn };
  }
}

/** One drawn edge per (source, target): its label lists the events that take it. */
function mergeEdges(transitions: TransitionInfo[]): Array<Omit<DrawnEdge, 'route'>> {
  const pairs = new Map<string, TransitionInfo[]>();
  for (const t of transitions) {
    if (t.target === null) continue;
    const key = `${t.source}→${t.target}`;
    pairs.set(key, [...(pairs.get(key) ?? []), t]);
  }
  return [...pairs.values()].map((list) => {
    const byLabel = new Map<string, TransitionInfo[]>();
    for (const t of list) byLabel.set(t.label, [...(byLabel.get(t.label) ?? []), t]);
    const label = [...byLabel.entries()].map(([l, ts]) => (ts.length === 1 && ts[0]!.guard ? `${l} [${ts[0]!.guard}]` : l)).join(', ');
    const detail = list.map((t) => `${t.label}${t.guard ? ` [${t.guard}]` : ''}${t.actions.length ? ` / ${t.actions.join(', ')}` : ''}`).join('\n');
    const shortLabel = [...byLabel.keys()].join(', ');
    return { source: list[0]!.source, target: list[0]!.target!, label, shortLabel, detail, kinds: [...new Set(list.map((t) => t.kind))] };
  });
}

/** About how wide a 10 px label is in DejaVu Sans: capitals (event names) are wider than the rest. */
function labelWidth(text: string): number {
  let w = 0;
  for (const ch of text) w += /[A-Z_]/.test(ch) ? 7 : /[ ,.:\[\]il]/.test(ch) ? 3.6 : 6;
  return w;
}

/** The point at t of a cubic Bézier given as [x0,y0,x1,y1,x2,y2,x3,y3]. */
function bezierPoint(c: number[], t: number): [number, number] {
  const u = 1 - t;
  const at = (i: number) => u * u * u * c[i]! + 3 * u * u * t * c[i + 2]! + 3 * u * t * t * c[i + 4]! + t * t * t * c[i + 6]!;
  return [at(0), at(1)];
}

/** A polyline with rounded corners. */
function orthogonal(points: Array<[number, number]>, r = 6): string {
  let d = `M${n(points[0]![0])},${n(points[0]![1])}`;
  for (let i = 1; i < points.length - 1; i++) {
    const [px, py] = points[i - 1]!;
    const [x, y] = points[i]!;
    const [nx, ny] = points[i + 1]!;
    const r1 = Math.min(r, Math.hypot(x - px, y - py) / 2, Math.hypot(nx - x, ny - y) / 2);
    const ax = x - Math.sign(x - px) * r1;
    const ay = y - Math.sign(y - py) * r1;
    const bx = x + Math.sign(nx - x) * r1;
    const by = y + Math.sign(ny - y) * r1;
    d += ` L${n(ax)},${n(ay)} Q${n(x)},${n(y)} ${n(bx)},${n(by)}`;
  }
  const last = points[points.length - 1]!;
  return `${d} L${n(last[0])},${n(last[1])}`;
}

/** Whether the segment (x1,y1)–(x2,y2) passes through the box (a few pixels of slack). */
function segmentHitsBox(x1: number, y1: number, x2: number, y2: number, b: Box): boolean {
  const steps = 24;
  for (let i = 1; i < steps; i++) {
    const x = x1 + ((x2 - x1) * i) / steps;
    const y = y1 + ((y2 - y1) * i) / steps;
    if (x > b.x - 4 && x < b.x + b.w + 4 && y > b.y - 2 && y < b.y + b.h + 2) return true;
  }
  return false;
}

const n = (v: number) => String(Math.round(v * 10) / 10);

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

// The node-mgr inspector page. Plain JS, no framework: one EventSource for everything, state kept
// in maps, and the DOM touched only for what changed, at most every RENDER_INTERVAL_MS.
const RENDER_INTERVAL_MS = 100;
const MAX_TRANSITIONS = 60;
const MAX_JOBS = 30;

const $ = (sel) => document.querySelector(sel);

/** What the page knows; the DOM is drawn from this. */
const model = {
  nodes: new Map(), // id -> node view (as /v1/nodes returns it)
  jobs: new Map(), // id -> job record
  selected: null, // node id
  transitions: [], // of the selected node, newest first
  archive: null, // the selected node's binlog archive (GET /v1/nodes/:port), null when it has none
  structureDirty: true, // rows added/removed: rebuild the table
  dirtyNodes: new Set(),
  jobsDirty: true,
  detailDirty: true,
  filter: '',
};

/** Figures for tests and bench/inspector-50.ts. */
const stats = {
  startedAt: performance.now(),
  firstRenderMs: null, // from script start to the first render with nodes in it
  renders: 0,
  renderMsTotal: 0,
  renderMsMax: 0,
  renderMs: [],
  events: { hello: 0, transition: 0, job: 0 },
  lastEventAt: null,
};
window.__inspector = stats;

const rows = new Map(); // node id -> { tr, cells }
let chart = null; // { svg, byWire: Map, states: [] }

// ---------------------------------------------------------------------------------------------
// Rendering, throttled

let renderPending = false;
let lastRenderAt = 0;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  const wait = Math.max(0, RENDER_INTERVAL_MS - (performance.now() - lastRenderAt));
  setTimeout(() => requestAnimationFrame(render), wait);
}

function render() {
  renderPending = false;
  const t0 = performance.now();
  if (model.structureDirty) rebuildNodes();
  else for (const id of model.dirtyNodes) updateRow(id);
  if (model.dirtyNodes.size || model.structureDirty) renderSummary();
  if (model.selected && (model.detailDirty || model.dirtyNodes.has(model.selected))) renderDetail();
  if (model.jobsDirty) renderJobs();
  model.structureDirty = false;
  model.dirtyNodes.clear();
  model.jobsDirty = false;
  model.detailDirty = false;
  const ms = performance.now() - t0;
  lastRenderAt = performance.now();
  stats.renders++;
  stats.renderMsTotal += ms;
  stats.renderMsMax = Math.max(stats.renderMsMax, ms);
  if (stats.renderMs.length < 2000) stats.renderMs.push(ms);
  if (stats.firstRenderMs === null && model.nodes.size > 0) stats.firstRenderMs = lastRenderAt - stats.startedAt;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ''));
  return e;
}

const badge = (state) => el('span', { class: `badge st-${state}` }, state);

function sortedNodes() {
  return [...model.nodes.values()].sort((a, b) => a.port - b.port);
}

function matchesFilter(n) {
  if (!model.filter) return true;
  const f = model.filter.toLowerCase();
  return [n.id, n.kind, n.role, String(n.port), n.state, n.cluster ?? '', n.shard ?? ''].some((s) => s.toLowerCase().includes(f));
}

function rebuildNodes() {
  const tbody = $('#nodes tbody');
  const frag = document.createDocumentFragment();
  rows.clear();
  for (const n of sortedNodes()) {
    const cells = { state: el('td', { class: 'state' }), pid: el('td'), restarts: el('td') };
    const tr = el(
      'tr',
      { class: 'node-row', dataset: { node: n.id, port: String(n.port) }, title: n.dir },
      el('td', {}, n.id, el('div', { class: 'muted small' }, n.role)),
      el('td', {}, String(n.port)),
      cells.state,
      cells.pid,
      cells.restarts,
    );
    tr.addEventListener('click', () => select(n.id));
    rows.set(n.id, { tr, cells, shown: null });
    frag.append(tr);
    updateRow(n.id, true);
  }
  tbody.replaceChildren(frag);
  $('#node-count').textContent = `(${model.nodes.size})`;
}

function updateRow(id, fresh = false) {
  const row = rows.get(id);
  const n = model.nodes.get(id);
  if (!row || !n) {
    model.structureDirty = true;
    return;
  }
  if (row.shown !== n.state) {
    row.cells.state.replaceChildren(badge(n.state));
    // The Web Animations API restarts the flash without forcing a layout per row (a class toggle
    // plus offsetWidth would reflow the page once per changed row: 50 rows, 50 layouts).
    if (!fresh) row.tr.animate([{ backgroundColor: '#fff3c4' }, { backgroundColor: 'transparent' }], { duration: 800, easing: 'ease-out' });
    row.shown = n.state;
  }
  row.cells.pid.textContent = n.pid ?? '–';
  row.cells.restarts.textContent = String(n.restarts);
  row.tr.classList.toggle('selected', id === model.selected);
  row.tr.hidden = !matchesFilter(n);
}

function renderSummary() {
  const counts = new Map();
  for (const n of model.nodes.values()) counts.set(n.state, (counts.get(n.state) ?? 0) + 1);
  const chips = [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([s, c]) => el('span', { class: `chip`, dataset: { state: s } }, `${s} ${c}`));
  $('#summary').replaceChildren(...chips);
}

function renderJobs() {
  const jobs = [...model.jobs.values()].sort((a, b) => b.createdAt - a.createdAt).slice(0, MAX_JOBS);
  const active = jobs.filter((j) => j.status === 'running' || j.status === 'queued').length;
  $('#job-count').textContent = `(${active} active)`;
  const tbody = $('#jobs tbody');
  if (jobs.length === 0) {
    tbody.replaceChildren(el('tr', {}, el('td', { class: 'empty', colspan: '4' }, 'no jobs yet')));
    return;
  }
  tbody.replaceChildren(
    ...jobs.map((j) => {
      const node = model.nodes.get(j.nodeId);
      return el(
        'tr',
        { dataset: { job: j.id }, title: `${j.id}${j.info ? `\n${j.info}` : ''}` },
        el('td', { class: 'job' }, j.type, el('div', { class: 'muted small' }, j.id.length > 14 ? `${j.id.slice(0, 13)}…` : j.id)),
        el('td', {}, node ? String(node.port) : (j.nodeId ?? '')),
        el('td', {}, badge(j.status)),
        el('td', { class: 'progress' }, ...progressCell(j)),
      );
    }),
  );
}

/** Phase, a bar, bytes, rate and ETA: what /v1/jobs says in `progress` (PROTOCOL §2). */
function progressCell(j) {
  const p = j.progress;
  // A finished job: its outcome, not the last phase it was in.
  if (j.status === 'succeeded') return [el('span', { class: 'phase' }, 'done'), ...(p?.bytes_done ? [el('div', { class: 'figures' }, fmtBytes(p.bytes_done))] : [])];
  if (j.status !== 'running' && j.status !== 'queued') return [el('span', { class: 'figures' }, j.info ?? j.status)];
  if (!p) return [j.phase ?? ''];
  const out = [el('span', { class: 'phase' }, p.phase)];
  if (p.pct !== undefined) {
    out.push(` ${p.pct}%`);
    if (j.status === 'running') out.push(el('div', { class: 'bar' }, el('div', { style: `width:${Math.min(100, p.pct)}%` })));
  }
  const figures = [];
  if (p.bytes_done !== undefined) figures.push(el('span', { class: 'bytes' }, p.bytes_total ? `${fmtBytes(p.bytes_done)} of ${fmtBytes(p.bytes_total)}` : fmtBytes(p.bytes_done)));
  if (p.rate_bps !== undefined && j.status === 'running') figures.push(el('span', { class: 'rate' }, `${fmtBytes(p.rate_bps)}/s`));
  if (p.eta_s !== undefined && j.status === 'running') figures.push(el('span', { class: 'eta' }, `ETA ${fmtDuration(p.eta_s)}`));
  if (figures.length) out.push(el('div', { class: 'figures' }, ...figures.flatMap((f, i) => (i ? [' · ', f] : [f]))));
  return out;
}

function fmtDuration(s) {
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

// ---------------------------------------------------------------------------------------------
// The selected node: chart, context, transitions

function renderDetail() {
  const n = model.nodes.get(model.selected);
  if (!n) return;
  $('#detail-title').replaceChildren(`${n.id} `, badge(n.state), el('span', { class: 'muted' }, ` ${n.kind} · ${n.role} · port ${n.port}`));
  for (const r of rows.values()) r.tr.classList.toggle('selected', r.tr.dataset.node === model.selected);
  highlightChart(n.state, model.transitions[0]);
  renderControls(n);
  renderContext(n);
  renderTransitions();
}

function highlightChart(wire, last) {
  if (!chart) return;
  const svg = chart.svg;
  svg.querySelectorAll('.active, .active-ancestor, .previous, .edge.last').forEach((e) => e.classList.remove('active', 'active-ancestor', 'previous', 'last'));
  const active = chart.byWire.get(wire);
  svg.dataset.active = wire;
  if (!active) return;
  active.classList.add('active');
  const path = active.dataset.path;
  for (const g of chart.compounds) if (path.startsWith(`${g.dataset.path}.`)) g.classList.add('active-ancestor');
  if (last && last.to === wire) {
    const prev = chart.byWire.get(last.from);
    if (prev) {
      prev.classList.add('previous');
      // The drawn edge that took the node here: from the previous state (or a parent) to this one (or a parent).
      const prevIds = idsWithAncestors(prev.dataset.id);
      const nextIds = idsWithAncestors(active.dataset.id);
      for (const edge of chart.edges) {
        if (prevIds.has(edge.dataset.source) && nextIds.has(edge.dataset.target)) edge.classList.add('last');
      }
    }
  }
  // Measuring forces a layout: only when the highlighted state moved.
  if (chart.scrolledTo !== active) {
    chart.scrolledTo = active;
    scrollChartTo(active);
  }
}

function idsWithAncestors(id) {
  const out = new Set();
  const parts = id.split('.');
  for (let i = parts.length; i > 0; i--) out.add(parts.slice(0, i).join('.'));
  return out;
}

function scrollChartTo(g) {
  const box = $('#chart');
  const r = g.getBoundingClientRect();
  const c = box.getBoundingClientRect();
  if (r.top < c.top + 20 || r.bottom > c.bottom - 20) box.scrollTop += r.top - c.top - c.height / 2 + r.height / 2;
}

function fmtTime(ms) {
  const d = new Date(ms);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** The time with a line-break opportunity before the milliseconds, for narrow columns. */
function timeParts(ms) {
  const [hms, frac] = fmtTime(ms).split('.');
  return [hms, el('wbr'), `.${frac}`];
}

function fmtBytes(b) {
  if (b === null || b === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) (b /= 1024), i++;
  return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** One line: state, newest archived file, lag; the failure on a line of its own. */
function archiveText(a) {
  if (!a.enabled) return `off · ${a.detail ?? ''}`;
  const last = a.last_archived ? a.last_archived.file : 'nothing archived yet';
  const pending = a.pending_files.length ? ` · ${a.pending_files.length} file(s) pending` : '';
  const line = `${a.state} · ${last} · lag ${a.lag_seconds} s / ${fmtBytes(a.lag_bytes)}${pending}`;
  return a.state === 'error' || a.state === 'waiting' ? el('span', {}, line, el('br'), el('span', { class: 'muted' }, a.detail ?? '')) : line;
}

function backoffText(n) {
  if (n.state !== 'backoff' || !n.backoffUntil) return n.backoffMs ? `last delay ${n.backoffMs} ms` : '–';
  const left = Math.max(0, n.backoffUntil - Date.now());
  return `${(left / 1000).toFixed(1)} s left of ${(n.backoffMs / 1000).toFixed(1)} s`;
}

function renderContext(n) {
  const e = n.lastExit;
  const items = [
    ['state', badge(n.state)],
    ['since', `${fmtTime(Date.parse(n.since))}`],
    ['wanted', n.wanted],
    ['pid', n.pid === null ? '–' : `${n.pid}${n.adopted ? ' (adopted)' : ''}`],
    ['restarts', String(n.restarts)],
    ['backoff', el('span', { id: 'backoff-remaining' }, backoffText(n))],
    ['auto restart', n.paused ? 'paused (auto_pullup)' : 'on'],
    ['last exit', e ? `${e.cause}${e.signal ? ` · signal ${e.signal}` : ''}${e.code !== null ? ` · code ${e.code}` : ''} · ${fmtTime(e.at)}` : '–'],
  ];
  if (n.lastError) items.push(['last error', n.lastError]);
  if (n.work) items.push(['work', `${n.work.kind} (job ${n.work.jobId})`]);
  if (n.usage) items.push(['cpu / rss', `${n.usage.cpuPct === null ? '–' : `${n.usage.cpuPct.toFixed(1)} %`} / ${fmtBytes(n.usage.memRss)}`], ['disk used', fmtBytes(n.usage.diskUsed)]);
  if (model.archive) items.push(['binlog archive', archiveText(model.archive)]);
  items.push(['data dir', n.dataDir]);
  const frag = document.createDocumentFragment();
  for (const [k, v] of items) frag.append(el('dt', {}, k), el('dd', { dataset: { field: k } }, v));
  if (e?.logTail?.length) frag.append(el('dt', {}, 'log tail'), el('dd', {}, el('div', { class: 'logtail' }, e.logTail.slice(-6).join('\n'))));
  $('#context').replaceChildren(frag);
}

function renderTransitions() {
  const tbody = $('#transitions tbody');
  if (model.transitions.length === 0) {
    tbody.replaceChildren(el('tr', {}, el('td', { class: 'empty', colspan: '3' }, 'no transitions recorded')));
    return;
  }
  tbody.replaceChildren(
    ...model.transitions.map((t) =>
      el(
        'tr',
        { title: t.detail ?? '' },
        el('td', { class: 'at' }, ...timeParts(t.at)),
        el('td', {}, `${t.from ?? '∅'} → `, badge(t.to)),
        el('td', { class: 'wrap', title: t.event }, shortEvent(t.event)),
      ),
    ),
  );
}

/** XState's internal event names (`xstate.done.actor.0.node.crashed`) as the chart labels them (`done: diagnose`). */
const eventLabels = new Map();
function shortEvent(type) {
  return eventLabels.get(type) ?? type;
}

async function select(id) {
  if (!model.nodes.has(id)) return;
  if (model.selected !== id && !actionInFlight) showActionMessage('', '');
  model.selected = id;
  model.transitions = [];
  model.archive = null;
  model.detailDirty = true;
  const n = model.nodes.get(id);
  history.replaceState(null, '', `#node=${n.port}`);
  scheduleRender();
  // The journal is in SQLite: history from before this page (or this node-mgr) was opened.
  const res = await fetch(`/v1/nodes/${n.port}`);
  if (!res.ok || model.selected !== id) return;
  const body = await res.json();
  model.archive = body.binlog_archive ?? null;
  const seen = new Set(model.transitions.map(key));
  const journal = (body.transitions ?? []).filter((t) => !seen.has(key(t)));
  model.transitions = [...model.transitions, ...journal].sort((a, b) => b.at - a.at).slice(0, MAX_TRANSITIONS);
  model.detailDirty = true;
  scheduleRender();
}

const key = (t) => `${t.at}|${t.from}|${t.to}`;

// ---------------------------------------------------------------------------------------------
// Event stream

function connect() {
  const es = new EventSource('/v1/events');
  const conn = $('#conn');
  es.addEventListener('open', () => {
    conn.className = 'conn live';
    conn.textContent = 'live';
  });
  es.addEventListener('error', () => {
    conn.className = 'conn lost';
    conn.textContent = 'reconnecting…';
  });
  es.addEventListener('hello', (ev) => {
    stats.events.hello++;
    const hello = JSON.parse(ev.data);
    model.nodes = new Map(hello.nodes.map((n) => [n.id, n]));
    model.jobs = new Map(hello.jobs.map((j) => [j.id, j]));
    model.structureDirty = true;
    model.jobsDirty = true;
    model.detailDirty = true;
    if (!model.selected) {
      const port = Number(/node=(\d+)/.exec(location.hash)?.[1]);
      const wanted = [...model.nodes.values()].find((n) => n.port === port);
      if (wanted) select(wanted.id);
    } else if (model.nodes.has(model.selected)) {
      select(model.selected); // after a reconnect: what happened meanwhile is in the journal
    }
    scheduleRender();
  });
  es.addEventListener('transition', (ev) => {
    stats.events.transition++;
    stats.lastEventAt = performance.now();
    const t = JSON.parse(ev.data);
    const known = model.nodes.has(t.nodeId);
    if (t.node) model.nodes.set(t.nodeId, t.node);
    else if (known) model.nodes.set(t.nodeId, { ...model.nodes.get(t.nodeId), state: t.to });
    if (!known) model.structureDirty = true;
    model.dirtyNodes.add(t.nodeId);
    if (t.nodeId === model.selected) {
      model.transitions = [{ nodeId: t.nodeId, from: t.from, to: t.to, event: t.event, at: t.at, detail: t.detail }, ...model.transitions].slice(0, MAX_TRANSITIONS);
      model.detailDirty = true;
    }
    scheduleRender();
  });
  es.addEventListener('job', (ev) => {
    stats.events.job++;
    const job = JSON.parse(ev.data);
    model.jobs.set(job.id, job);
    if (model.jobs.size > MAX_JOBS * 4) {
      const oldest = [...model.jobs.values()].sort((a, b) => a.createdAt - b.createdAt).slice(0, model.jobs.size - MAX_JOBS * 2);
      for (const j of oldest) if (j.status !== 'running' && j.status !== 'queued') model.jobs.delete(j.id);
    }
    model.jobsDirty = true;
    scheduleRender();
  });
}

// ---------------------------------------------------------------------------------------------
// Node controls: the same REST calls as curl or the CLI, with the token typed into the header

const TOKEN_KEY = 'node-mgr-token';
const ACTIONS = {
  start: { confirm: null, busy: 'starting…' },
  stop: { confirm: (n) => `Stop ${n.id}? The database server on port ${n.port} shuts down and stays down (no automatic restart) until started again.`, busy: 'stopping…' },
  restart: { confirm: (n) => `Restart ${n.id}? The database server on port ${n.port} shuts down and starts again; its clients are disconnected.`, busy: 'restarting…' },
  backup: { confirm: null, busy: 'asking for a backup…' },
};
let actionInFlight = null; // the action being sent, one at a time

const tokenInput = $('#token');
tokenInput.value = sessionStorage.getItem(TOKEN_KEY) ?? '';
tokenInput.addEventListener('input', () => {
  const v = tokenInput.value.trim();
  if (v) sessionStorage.setItem(TOKEN_KEY, v);
  else sessionStorage.removeItem(TOKEN_KEY);
});

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { authorization: `Bearer ${token}` } : {};
}

function renderControls(n) {
  for (const b of document.querySelectorAll('.controls button')) b.disabled = !n || actionInFlight !== null;
}

let messageTimer = null;
/** What the last button did; a success fades after a while, a refusal stays until the next action or node. */
function showActionMessage(text, kind) {
  const msg = $('#action-msg');
  msg.textContent = text;
  msg.className = `action-msg ${kind}`;
  msg.title = text;
  clearTimeout(messageTimer);
  if (kind === 'ok' || kind === 'info') messageTimer = setTimeout(() => showActionMessage('', ''), 15_000);
}

/** Opens the confirmation dialog; resolves true when the operator confirms. */
function confirmAction(text, okLabel) {
  const dialog = $('#confirm');
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = okLabel;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

async function runAction(action) {
  const n = model.nodes.get(model.selected);
  if (!n || actionInFlight) return;
  const spec = ACTIONS[action];
  if (spec.confirm && !(await confirmAction(spec.confirm(n), action))) {
    showActionMessage(`${action} cancelled`, 'info');
    return;
  }
  actionInFlight = action;
  renderControls(n);
  showActionMessage(`${n.id}: ${spec.busy}`, 'busy');
  try {
    // start/stop/restart answer once the node settled; backup answers 202 with the job at once.
    const res = await fetch(`/v1/nodes/${n.port}/${action}`, { method: 'POST', headers: { 'content-type': 'application/json', ...authHeaders() }, body: '{}' });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      showActionMessage(`${action} refused (${res.status}): ${body?.info ?? res.statusText}`, 'error');
    } else if (action === 'backup') {
      showActionMessage(`backup job ${body?.job_id} accepted`, 'ok');
    } else {
      showActionMessage(`${n.id} ${action}: now ${body?.state ?? 'done'}`, 'ok');
    }
  } catch (err) {
    showActionMessage(`${action} failed: ${err.message}`, 'error');
  } finally {
    actionInFlight = null;
    renderControls(model.nodes.get(model.selected));
  }
}

for (const b of document.querySelectorAll('.controls button')) b.addEventListener('click', () => runAction(b.dataset.action));

async function loadChart() {
  const [res, graph] = await Promise.all([fetch('/v1/machines/node/svg'), fetch('/v1/machines/node').then((r) => r.json())]);
  for (const t of graph.transitions) if (t.eventType) eventLabels.set(t.eventType, t.label);
  const box = $('#chart');
  box.innerHTML = await res.text();
  const svg = box.querySelector('svg');
  // Drawn at its natural size; the viewBox scales it to whatever the panel has room for.
  svg.removeAttribute('width');
  svg.removeAttribute('height');
  const byWire = new Map([...svg.querySelectorAll('g.state[data-wire]')].map((g) => [g.dataset.wire, g]));
  chart = { svg, byWire, compounds: [...svg.querySelectorAll('g.state.compound')], edges: [...svg.querySelectorAll('g.edge')] };
  model.detailDirty = true;
  scheduleRender();
}

// The backoff countdown ticks without waiting for an event.
setInterval(() => {
  const n = model.nodes.get(model.selected);
  const span = document.getElementById('backoff-remaining');
  if (n && span && n.state === 'backoff') span.textContent = backoffText(n);
}, 200);

// The binlog archive's lag is not in the event stream: the selected node's is read every 5 s.
setInterval(async () => {
  const n = model.nodes.get(model.selected);
  if (!n || !model.archive || document.hidden) return;
  const res = await fetch(`/v1/nodes/${n.port}`).catch(() => null);
  if (!res?.ok || model.selected !== n.id) return;
  model.archive = (await res.json()).binlog_archive ?? null;
  model.detailDirty = true;
  scheduleRender();
}, 5000);

$('#filter').addEventListener('input', (ev) => {
  model.filter = ev.target.value.trim();
  for (const id of model.nodes.keys()) model.dirtyNodes.add(id);
  scheduleRender();
});

loadChart();
connect();

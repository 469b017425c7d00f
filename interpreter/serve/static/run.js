// The run page of `tdsl serve`: the run's DAG drawn in SVG, live while it runs.
//
// Layout: each scope (the top level, a parallel branch, a foreach or loop body) is laid
// out on its own in topological levels, top to bottom; a parallel/foreach/loop step is a
// box holding its scopes side by side, and can be collapsed to one node on click.
// Wheel zooms around the pointer, dragging pans. Every string from the definition or
// the run is set with textContent, never as markup.
(function () {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const NODE_W = 172, NODE_H = 46, GAP_X = 22, GAP_Y = 40, PAD = 12, HEADER = 26;
  const SCOPE_LABEL = 18, MAX_ROW = 8, POLL_MS = 1000;
  const SYMBOL = {completed: "\u2713", running: "\u25B6", failed: "\u2717", waiting: "\u23F8",
                  skipped: "\u2013", cancelled: "\u2298", pending: "\u00B7"};

  const boot = JSON.parse(document.getElementById("boot").textContent);
  const workflowId = boot.workflow_id;
  const colours = boot.colours;
  const enc = encodeURIComponent(workflowId);
  let graph = boot.graph;
  let run = boot.run;
  let selected = null;
  let collapsed = null; // Set of container step ids, chosen once the graph is known
  let view = null; // the SVG viewBox {x, y, w, h}
  let bounds = {w: 0, h: 0};

  const host = document.getElementById("graph");
  const details = document.getElementById("details");
  const svg = el("svg", {class: "dag", preserveAspectRatio: "xMidYMin meet"});
  host.appendChild(svg);

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const key in attrs || {}) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function h(name, attrs, text) {
    const node = document.createElement(name);
    for (const key in attrs || {}) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function colour(status) {
    return colours[status] || colours.pending;
  }

  function clip(text, max) {
    text = String(text == null ? "" : text);
    return text.length > max ? text.slice(0, max - 1) + "\u2026" : text;
  }

  // ------------------------------------------------------------------ structure

  // A foreach body (and whatever it nests) runs once per item, as `pack[0]`, `pack[1]`...:
  // the graph's node has no state of its own, so it gets its items' combined state.
  function instancesOf(id) {
    const found = [];
    const prefix = id + "[";
    for (const key in run.steps || {}) {
      if (key.startsWith(prefix) || key.includes("/" + prefix) || key.includes("]" + prefix)) {
        found.push([key, run.steps[key]]);
      }
    }
    return found;
  }

  function combined(states) {
    const has = (s) => states.includes(s);
    if (has("running")) return "running";
    if (has("failed")) return "failed";
    if (has("waiting")) return "waiting";
    if (has("pending")) return has("completed") ? "running" : "pending";
    if (has("completed")) return "completed";
    if (has("cancelled")) return "cancelled";
    return states.length ? states[0] : "pending";
  }

  function enrich() {
    for (const node of graph.nodes) {
      if (run.steps && run.steps[node.id]) continue;
      const items = instancesOf(node.id);
      if (!items.length) continue;
      node.items = items.map(([key, state]) => ({id: key, status: state.status,
        attempts: state.attempts || 0}));
      node.status = combined(node.items.map((i) => i.status));
      node.attempts = Math.max(0, ...node.items.map((i) => i.attempts));
    }
  }

  function structure() {
    const byId = new Map();
    const scopes = new Map(); // scope key -> [node]
    const owned = new Map(); // container step id -> [scope key]
    for (const node of graph.nodes) {
      byId.set(node.id, node);
      if (!scopes.has(node.scope)) scopes.set(node.scope, []);
      scopes.get(node.scope).push(node);
      if (node.parent) {
        if (!owned.has(node.parent)) owned.set(node.parent, []);
        const list = owned.get(node.parent);
        if (!list.includes(node.scope)) list.push(node.scope);
      }
    }
    const rootScope = graph.nodes.length ? graph.nodes.find((n) => !n.parent).scope : "main";
    const edges = graph.edges.filter((e) => byId.has(e.from) && byId.has(e.to));
    return {byId, scopes, owned, rootScope, edges};
  }

  function descendants(s, id) {
    let count = 0;
    for (const key of s.owned.get(id) || []) {
      for (const node of s.scopes.get(key) || []) count += 1 + descendants(s, node.id);
    }
    return count;
  }

  function statesUnder(s, id, counts) {
    for (const key of s.owned.get(id) || []) {
      for (const node of s.scopes.get(key) || []) {
        counts[node.status] = (counts[node.status] || 0) + 1;
        statesUnder(s, node.id, counts);
      }
    }
    return counts;
  }

  function scopeTitle(key, parent) {
    const rest = key.startsWith(parent + "/") ? key.slice(parent.length + 1) : key;
    if (rest === "step") return "for each item";
    if (rest === "#loop") return "repeat";
    return rest;
  }

  // ------------------------------------------------------------------ layout

  // A block: {w, h, items: [{node, x, y, w, h, scopes?: [{key, x, y, block}]}]}
  function layoutScope(s, key) {
    const nodes = s.scopes.get(key) || [];
    const ids = new Set(nodes.map((n) => n.id));
    const preds = new Map(nodes.map((n) => [n.id, []]));
    for (const e of s.edges) {
      if (ids.has(e.from) && ids.has(e.to) && e.from !== e.to) preds.get(e.to).push(e.from);
    }
    const level = new Map();
    const visiting = new Set();
    function levelOf(id) {
      if (level.has(id)) return level.get(id);
      if (visiting.has(id)) return 0; // a cycle would be a bug upstream; do not hang
      visiting.add(id);
      let best = 0;
      for (const p of preds.get(id)) best = Math.max(best, levelOf(p) + 1);
      visiting.delete(id);
      level.set(id, best);
      return best;
    }
    const levels = [];
    for (const n of nodes) {
      const l = levelOf(n.id);
      (levels[l] = levels[l] || []).push(n);
    }
    const items = new Map();
    let y = 0, width = 0;
    const rows = [];
    for (const row of levels) {
      if (!row) continue;
      // order by where the predecessors sit (fewer crossings), then as declared
      const centre = (n) => {
        const xs = preds.get(n.id).map((p) => items.get(p)).filter(Boolean).map((i) => i.x + i.w / 2);
        return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Infinity;
      };
      const sorted = row.map((n, i) => ({n, i, c: centre(n)}))
        .sort((a, b) => (a.c === b.c ? a.i - b.i : a.c - b.c)).map((o) => o.n);
      for (let start = 0; start < sorted.length; start += MAX_ROW) {
        const chunk = sorted.slice(start, start + MAX_ROW).map((n) => measure(s, n));
        const w = chunk.reduce((a, i) => a + i.w, 0) + GAP_X * (chunk.length - 1);
        const rh = Math.max(...chunk.map((i) => i.h));
        let x = 0;
        for (const item of chunk) {
          item.x = x; item.y = y;
          x += item.w + GAP_X;
          items.set(item.node.id, item);
        }
        rows.push({chunk, w});
        width = Math.max(width, w);
        y += rh + GAP_Y;
      }
    }
    for (const row of rows) {
      const shift = (width - row.w) / 2;
      for (const item of row.chunk) item.x += shift;
    }
    return {w: Math.max(width, NODE_W), h: Math.max(y - GAP_Y, NODE_H), items: [...items.values()]};
  }

  function measure(s, node) {
    const owned = s.owned.get(node.id);
    if (!owned || collapsed.has(node.id)) {
      return {node, w: NODE_W, h: owned ? NODE_H + 12 : NODE_H, folded: !!owned};
    }
    let x = PAD;
    let inner = 0;
    const scopes = owned.map((key) => {
      const block = layoutScope(s, key);
      const placed = {key, x, y: HEADER, block};
      x += block.w + 2 * PAD + GAP_X;
      inner = Math.max(inner, block.h);
      return placed;
    });
    const w = x - GAP_X + PAD;
    const title = Math.min(node.name.length, 40) * 7.6 + node.type.length * 7 + 70;
    if (title > w && scopes.length) {
      const grow = (title - w) / 2;
      for (const placed of scopes) placed.x += grow;
    }
    return {node, w: Math.max(w, NODE_W, title), h: HEADER + SCOPE_LABEL + inner + 3 * PAD, scopes};
  }

  // ------------------------------------------------------------------ drawing

  function render() {
    const s = structure();
    if (collapsed === null) {
      collapsed = new Set();
      if (graph.nodes.length > 60) {
        for (const id of s.owned.keys()) if (descendants(s, id) > 8) collapsed.add(id);
      }
    }
    const block = layoutScope(s, s.rootScope);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const defs = el("defs");
    const marker = el("marker", {id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5",
      markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse"});
    marker.appendChild(el("path", {d: "M 0 0 L 10 5 L 0 10 z", fill: "#71717a"}));
    defs.appendChild(marker);
    svg.appendChild(defs);
    const edgeLayer = el("g", {class: "edges"});
    const nodeLayer = el("g", {class: "nodes"});
    svg.appendChild(nodeLayer);
    svg.appendChild(edgeLayer);
    const where = new Map();
    drawBlock(s, block, 0, 0, nodeLayer, where);
    for (const e of s.edges) {
      const a = where.get(e.from), b = where.get(e.to);
      if (!a || !b) continue;
      const x1 = a.x + a.w / 2, y1 = a.y + a.h, x2 = b.x + b.w / 2, y2 = b.y;
      const mid = (y1 + y2) / 2;
      const path = el("path", {d: `M ${x1} ${y1} C ${x1} ${mid}, ${x2} ${mid}, ${x2} ${y2 - 2}`,
        class: "edge " + e.kind, "marker-end": "url(#arrow)"});
      edgeLayer.appendChild(path);
      if (e.label) {
        const t = el("text", {x: (x1 + x2) / 2, y: mid - 3, class: "edge-label",
          "text-anchor": "middle"}, clip(e.label, 28));
        t.appendChild(el("title", {}, e.label));
        edgeLayer.appendChild(t);
      }
    }
    bounds = {w: block.w, h: block.h};
    if (view === null) initialView();
    applyView();
  }

  function drawBlock(s, block, ox, oy, layer, where) {
    for (const item of block.items) {
      const x = ox + item.x, y = oy + item.y;
      where.set(item.node.id, {x, y, w: item.w, h: item.h});
      if (item.scopes) drawContainer(s, item, x, y, layer, where);
      else drawNode(s, item, x, y, layer);
    }
  }

  function drawNode(s, item, x, y, layer) {
    const node = item.node;
    const [fill, stroke] = colour(node.status);
    const g = el("g", {class: "node st-" + node.status + (selected === node.id ? " selected" : ""),
      transform: `translate(${x},${y})`, "data-step": node.id, tabindex: "0"});
    g.appendChild(el("title", {}, `${node.name} (${node.id}) — ${node.status}`));
    g.appendChild(el("rect", {width: item.w, height: item.h, rx: 7, fill, stroke,
      "stroke-width": node.status === "running" ? 3 : 2}));
    g.appendChild(el("text", {x: 10, y: 18, class: "name"},
      (SYMBOL[node.status] || "") + " " + clip(node.name, 22)));
    let sub = node.action || node.type;
    if (item.folded) {
      const counts = statesUnder(s, node.id, {});
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      sub = `${node.type} · ${total} steps ▸`;
      const summary = Object.keys(colours).filter((k) => counts[k])
        .map((k) => `${counts[k]}${SYMBOL[k]}`).join(" ");
      g.appendChild(el("text", {x: 10, y: 50, class: "sub"}, summary));
      g.classList.add("folded");
    }
    if (node.items) {
      const done = node.items.filter((i) => i.status === "completed").length;
      sub += ` · ${done}/${node.items.length} items`;
    } else if (node.attempts > 1) sub += ` · attempt ${node.attempts}`;
    g.appendChild(el("text", {x: 10, y: 35, class: "sub"}, clip(sub, 28)));
    g.addEventListener("click", (ev) => {
      if (item.folded) toggle(node.id);
      select(node.id);
      ev.stopPropagation();
    });
    layer.appendChild(g);
  }

  function drawContainer(s, item, x, y, layer, where) {
    const node = item.node;
    const [fill, stroke] = colour(node.status);
    const g = el("g", {class: "container st-" + node.status + (selected === node.id ? " selected" : ""),
      "data-step": node.id});
    g.appendChild(el("rect", {x, y, width: item.w, height: item.h, rx: 9, fill: "#fafafa",
      stroke, "stroke-width": 2}));
    const head = el("g", {class: "head", tabindex: "0"});
    head.appendChild(el("rect", {x, y, width: item.w, height: HEADER - 4, rx: 9, fill}));
    head.appendChild(el("text", {x: x + 10, y: y + 16, class: "name"},
      `▾ ${SYMBOL[node.status] || ""} ${clip(node.name, 40)} · ${node.type}` +
      (node.attempts > 1 ? ` · attempt ${node.attempts}` : "")));
    head.appendChild(el("title", {}, `${node.name} (${node.id}) — ${node.status}; click to collapse`));
    head.addEventListener("click", (ev) => { toggle(node.id); select(node.id); ev.stopPropagation(); });
    g.appendChild(head);
    layer.appendChild(g);
    for (const placed of item.scopes) {
      const sx = x + placed.x, sy = y + placed.y;
      layer.appendChild(el("rect", {x: sx, y: sy, width: placed.block.w + 2 * PAD,
        height: item.h - placed.y - PAD, rx: 6, class: "scope"}));
      layer.appendChild(el("text", {x: sx + 8, y: sy + 13, class: "scope-label"},
        clip(scopeTitle(placed.key, node.id), 30)));
      drawBlock(s, placed.block, sx + PAD, sy + SCOPE_LABEL + PAD / 2, layer, where);
    }
  }

  function toggle(id) {
    if (collapsed.has(id)) collapsed.delete(id); else collapsed.add(id);
    render();
  }

  // ------------------------------------------------------------------ zoom and pan

  function initialView() {
    const box = host.getBoundingClientRect();
    const vw = Math.max(box.width, 300), vh = Math.max(box.height, 300);
    const margin = 24;
    const fit = Math.min(vw / (bounds.w + 2 * margin), vh / (bounds.h + 2 * margin));
    const scale = Math.min(Math.max(fit, 0.55), 1.25); // readable text over seeing it all
    const w = vw / scale, hh = vh / scale;
    view = {x: Math.min(-margin, (bounds.w - w) / 2), y: -margin, w, h: hh};
  }

  function fitView() {
    const box = host.getBoundingClientRect();
    const margin = 24;
    const scale = Math.min(box.width / (bounds.w + 2 * margin), box.height / (bounds.h + 2 * margin));
    const w = box.width / scale, hh = box.height / scale;
    view = {x: (bounds.w - w) / 2, y: -margin, w, h: hh};
    applyView();
  }

  function applyView() {
    svg.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  }

  function zoom(factor, cx, cy) {
    const box = host.getBoundingClientRect();
    const px = cx === undefined ? 0.5 : (cx - box.left) / box.width;
    const py = cy === undefined ? 0.5 : (cy - box.top) / box.height;
    const w = Math.min(Math.max(view.w * factor, 80), 40000);
    const k = w / view.w;
    view = {x: view.x + px * view.w * (1 - k), y: view.y + py * view.h * (1 - k), w, h: view.h * k};
    applyView();
  }

  host.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    zoom(Math.exp(ev.deltaY * 0.0015), ev.clientX, ev.clientY);
  }, {passive: false});

  let drag = null;
  host.addEventListener("pointerdown", (ev) => {
    drag = {x: ev.clientX, y: ev.clientY, view: {...view}, moved: false};
  });
  window.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    if (!drag.moved) host.setPointerCapture && host.classList.add("dragging");
    drag.moved = true;
    const box = host.getBoundingClientRect();
    const k = view.w / box.width;
    view = {...drag.view, x: drag.view.x - dx * k, y: drag.view.y - dy * k};
    applyView();
  });
  window.addEventListener("pointerup", () => {
    if (drag && drag.moved) {
      // swallow the click that ends a drag
      window.addEventListener("click", (e) => e.stopPropagation(), {capture: true, once: true});
    }
    drag = null;
    host.classList.remove("dragging");
  });
  host.addEventListener("keydown", (ev) => {
    if (ev.key === "+" || ev.key === "=") zoom(0.8);
    else if (ev.key === "-") zoom(1.25);
    else if (ev.key === "f" || ev.key === "F") fitView();
  });

  for (const button of document.querySelectorAll(".toolbar button")) {
    button.addEventListener("click", () => {
      const act = button.dataset.act;
      if (act === "fit") fitView();
      else if (act === "in") zoom(0.8);
      else if (act === "out") zoom(1.25);
      else if (act === "expand") { collapsed.clear(); render(); }
      else if (act === "collapse") { collapsed = new Set(structure().owned.keys()); render(); }
    });
  }

  // ------------------------------------------------------------------ details

  let detailToken = 0;

  function select(id) {
    selected = id;
    for (const g of svg.querySelectorAll(".selected")) g.classList.remove("selected");
    for (const g of svg.querySelectorAll("[data-step]")) {
      if (g.getAttribute("data-step") === id) g.classList.add("selected");
    }
    showDetails();
  }

  function pre(value) {
    const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    return h("pre", {}, text);
  }

  function field(dl, term, value) {
    dl.appendChild(h("dt", {}, term));
    const dd = h("dd");
    if (value instanceof Node) dd.appendChild(value); else dd.textContent = value;
    dl.appendChild(dd);
  }

  function when(text) {
    return text ? String(text).replace("T", " ").slice(0, 23) : "—";
  }

  async function showDetails() {
    if (selected === null) return showRun();
    const token = ++detailToken;
    const node = structure().byId.get(selected);
    if (!node) return;
    let info = null, problem = null;
    try {
      const response = await fetch(`/ui/steps/${enc}`);
      const body = await response.json();
      if (!response.ok) problem = body.error || response.statusText; else info = body;
    } catch (err) {
      problem = String(err);
    }
    if (token !== detailToken) return;
    const step = (info && info.steps && info.steps[node.id]) || {};
    details.replaceChildren();
    details.appendChild(h("h2", {}, node.name));
    const dl = h("dl");
    field(dl, "id", h("code", {}, node.id));
    const badge = h("span", {class: "badge st-" + node.status}, node.status);
    field(dl, "status", badge);
    field(dl, "type", node.action ? `${node.type} · ${node.action}` : node.type);
    field(dl, "attempts", String(Math.max(node.attempts || 0, step.attempts || 0)));
    field(dl, "started", when(step.started_at));
    field(dl, "ended", when(step.ended_at));
    if (step.started_at && step.ended_at) {
      const ms = new Date(step.ended_at) - new Date(step.started_at);
      if (!isNaN(ms)) field(dl, "took", ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);
    }
    details.appendChild(dl);
    if (problem) details.appendChild(h("p", {class: "note"}, problem));
    if (node.items) {
      details.appendChild(h("h3", {}, `items (${node.items.length})`));
      const list = h("ul", {class: "items"});
      for (const item of node.items) {
        const li = h("li");
        li.appendChild(h("span", {class: "badge st-" + item.status}, item.status));
        li.appendChild(document.createTextNode(" "));
        li.appendChild(h("code", {}, item.id));
        const out = info && info.steps && info.steps[item.id];
        if (out && out.output !== undefined) li.appendChild(pre(out.output));
        if (out && out.error) li.appendChild(pre(out.error.message || out.error));
        list.appendChild(li);
      }
      details.appendChild(list);
    }
    if (step.error) {
      details.appendChild(h("h3", {}, "error"));
      details.appendChild(pre(step.error.message && Object.keys(step.error).length <= 2
        ? step.error.message : step.error));
    }
    details.appendChild(h("h3", {}, "output"));
    if (step.output !== undefined) details.appendChild(pre(step.output));
    else details.appendChild(h("p", {class: "dim"}, info && info.recorded
      ? (node.status === "completed" ? "not recorded yet (the run history catches up every few seconds)" : "none yet")
      : "not available: this server has no run history (DATABASE_URL)"));
    details.appendChild(h("h3", {}, "input"));
    details.appendChild(h("p", {class: "dim"},
      "A step's own input is not recorded (it is its parameters evaluated at run time)." +
      (info && info.input != null ? " The run's input:" : "")));
    if (info && info.input != null) details.appendChild(pre(info.input));
    const link = h("a", {href: boot.ui, target: "_blank", rel: "noopener"},
      "the run's history in the Temporal UI");
    details.appendChild(h("p")).appendChild(link);
  }

  function showRun() {
    details.replaceChildren();
    details.appendChild(h("h2", {}, "run"));
    const dl = h("dl");
    field(dl, "status", h("span", {class: "badge st-" + runState(run.status)}, run.status));
    const counts = {};
    for (const n of graph.nodes) counts[n.status] = (counts[n.status] || 0) + 1;
    field(dl, "steps", Object.keys(counts).map((k) => `${counts[k]} ${k}`).join(", "));
    details.appendChild(dl);
    if (run.error) { details.appendChild(h("h3", {}, "error")); details.appendChild(pre(run.error)); }
    if (run.output != null) { details.appendChild(h("h3", {}, "output")); details.appendChild(pre(run.output)); }
    details.appendChild(h("p", {class: "dim"},
      "Click a step for its status, attempts, times, output and error. Click a parallel, " +
      "foreach or loop box's title to collapse or expand it; wheel to zoom, drag to pan."));
  }

  function runState(status) {
    return {RUNNING: "running", COMPLETED: "completed", FAILED: "failed", TIMED_OUT: "failed",
            CANCELED: "cancelled", TERMINATED: "cancelled"}[status] || "pending";
  }

  // ------------------------------------------------------------------ live updates

  function updateHeader() {
    const holder = document.getElementById("run-status");
    holder.replaceChildren(h("span", {class: "badge st-" + runState(run.status)}, run.status));
    document.getElementById("run-error").textContent = run.error || "";
    for (const row of document.querySelectorAll("#step-table tbody tr")) {
      const node = structure().byId.get(row.getAttribute("data-step"));
      if (!node) continue;
      const cells = row.children;
      cells[3].replaceChildren(h("span", {class: "badge st-" + node.status}, node.status));
      cells[4].textContent = String(node.attempts || 0);
    }
    document.body.dataset.runStatus = run.status;
    const counts = {};
    for (const n of graph.nodes) counts[n.status] = (counts[n.status] || 0) + 1;
    document.body.dataset.completed = String(counts.completed || 0);
    document.body.dataset.running = String(counts.running || 0);
  }

  async function poll() {
    if (run.status !== "RUNNING") {
      document.getElementById("live").textContent = "finished";
      return;
    }
    try {
      const response = await fetch(`/api/runs/${enc}/graph`);
      if (response.ok) {
        const body = await response.json();
        graph = body.graph;
        run = body.run;
        enrich();
        render();
        updateHeader();
        showDetails();
        document.getElementById("live").textContent =
          run.status === "RUNNING" ? "live · " + new Date().toLocaleTimeString() : "finished";
      } else {
        document.getElementById("live").textContent = "update failed: " + response.status;
      }
    } catch (err) {
      document.getElementById("live").textContent = "update failed: " + err;
    }
    if (run.status === "RUNNING") setTimeout(poll, POLL_MS);
  }

  enrich();
  render();
  updateHeader();
  showRun();
  if (run.status === "RUNNING") {
    document.getElementById("live").textContent = "live";
    setTimeout(poll, POLL_MS);
  } else {
    document.getElementById("live").textContent = "finished";
  }
})();

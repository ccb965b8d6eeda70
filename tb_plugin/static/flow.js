// View 3: the layered token graph (Attention Flows). Inputs at the bottom, the deepest layer on top;
// edges are attention traced from one token with threshold tau, optionally as a comparison overlay.

import {get} from "./api.js";
import {OVERLAY, css, sequential} from "./colormaps.js";
import {categoryColour, displayLegend, wrapLines} from "./display.js";
import {el, fmt, select} from "./dom.js";
import {colorbar, swatches} from "./legend.js";
import {LABEL_PX, MAX_EDGES_DRAWN as MAX_EDGES, MIN_ZOOM_TOKENS, TOKEN_PX} from "./limits.js";
import {fitText} from "./painter.js";
import {labelStride, TokenWindow} from "./tokenaxis.js";
import {describeSegment, drawBands, drawBoundary, segmentLegend, segmentsFor, unitSegmentIds} from "./segments.js";
import {OVERLAYS, headSet} from "./state.js";
import {CanvasView} from "./view.js";

const LEFT = 64;
const RIGHT = 16;
const TOP = 22;
const EDGE = "#0072B2";
const SOURCE = "#f57c00";

export class FlowView extends CanvasView {
  static id = "flow";
  static title = "Attention flow";
  static depends = ["data", "run", "example", "step", "method", "tau", "source", "layer", "heads", "overlay", "other",
    "targets", "units", "edges"];
  static slot = "main";
  static needsFullRows = "its traces, rollout and max-flow"; // not drawn for a rows="cls" run (app.updateView says why)

  constructor(app) {
    super(app, {fileStem: () => app.stem("flow")});
    const s = app.state;
    this.method = select(app.registries.flow_methods.map((m) => [m.name, m.label]), s.method,
      (method) => app.store.set({method}), {"aria-label": "Method", "data-control": "method"});
    this.tau = el("input", {type: "range", min: 0, max: 1, step: 0.005, value: s.tau, "aria-label": "tau",
      "data-control": "tau", class: "af-tau"});
    this.tauLabel = el("span", {class: "af-tau-label"});
    this.tau.addEventListener("input", () => {
      this.tauLabel.textContent = `τ ${Number(this.tau.value).toFixed(3)}`;
    });
    this.tau.addEventListener("change", () => app.store.set({tau: Number(this.tau.value)}));
    this.overlay = select(OVERLAYS, s.overlay, (overlay) => app.store.set({overlay}),
      {"aria-label": "Comparison overlay", "data-control": "overlay"});
    this.edgeColour = select(app.registries.display.edge_colours, s.edges, (edges) => app.store.set({edges}),
      {"aria-label": "Edge colour", "data-control": "edges"});
    this.reset = el("button", {class: "af-btn", text: "Trace from [CLS]", title: "Trace from the classification token",
      onclick: () => app.store.set({source: -1, layer: -1})});
    // Zoom and pan along the token axis (a long sequence opens fitted to the card, its labels thinned).
    this.window = new TokenWindow(MIN_ZOOM_TOKENS);
    const zoomButton = (text, title, action, control) => el("button", {class: "af-btn af-zoom", text, title,
      "data-control": control, onclick: () => { action(); this.repaintWindow(); }});
    this.windowLabel = el("span", {class: "af-window-label", "data-control": "token-window"});
    this.zoomGroup = el("span", {class: "af-ctl af-zoom-group"}, [
      zoomButton("−", "Show more tokens", () => this.window.zoom(2), "zoom-out"),
      zoomButton("+", "Show fewer tokens, larger", () => this.window.zoom(0.5), "zoom-in"),
      zoomButton("◀", "Pan towards the first token", () => this.window.pan(-0.5), "pan-left"),
      zoomButton("▶", "Pan towards the last token", () => this.window.pan(0.5), "pan-right"),
      zoomButton("all", "Show every token", () => this.window.reset(), "zoom-all"),
      this.windowLabel,
    ]);
    this.panel.canvas.addEventListener("wheel", (e) => {
      if (!this.geom || !this.window.total || !(e.ctrlKey || e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY))) return;
      e.preventDefault();
      if (e.ctrlKey) {
        const rect = this.panel.canvas.getBoundingClientRect();
        const at = this.geom.start + (e.clientX - rect.left - LEFT) / this.geom.spacing;
        this.window.zoom(e.deltaY > 0 ? 1.25 : 0.8, at);
      } else {
        this.window.pan(Math.sign(e.deltaX || e.deltaY) * 0.25);
      }
      this.repaintWindow();
    }, {passive: false});
    this.panel.controls.append(
      el("label", {class: "af-ctl"}, ["method ", this.method]),
      el("label", {class: "af-ctl"}, [this.tauLabel, this.tau]),
      el("label", {class: "af-ctl"}, [this.overlay]),
      this.edgeLabel = el("label", {class: "af-ctl"}, [this.edgeColour]),
      this.reset,
      this.zoomGroup,
    );
  }

  get overlayColours() {
    return OVERLAY;
  }

  params(extra = {}, step = this.app.step) {
    const {app} = this;
    const s = app.state;
    return {run: s.run, example: app.example, step, stream: app.stream, heads: app.flowHeads, ...extra};
  }

  /** Fetch what the view shows at `step` (the cache keeps it): used to draw and to prefetch. */
  async fetchData(step = this.app.step) {
    const {app} = this;
    const s = app.state;
    const params = (extra) => this.params(extra, step);
    const source = s.source >= 0 ? s.source : null;
    const layer = s.layer >= 0 ? s.layer : null;
    // The server draws the method: its edges, its value per input token, and the resolved source and layer.
    const trace = await get("flow", params({method: "trace", view: s.method, source, layer, tau: s.tau, ...app.display}));
    const influence = trace.influence;
    const influenceLabel = app.flowMethod(s.method).influence_label.replace("{layer}", String(trace.layer));
    let edges = trace.edges.map(([l, i, j, w], k) => ({l, i, j, w, cls: null, heads: trace.edge_heads?.[k] || null}));
    let overlay = null;
    if (s.overlay === "pretrained" || (s.overlay === "run" && app.otherRun)) {
      const other = s.overlay === "run" ? app.otherRun : app.run;
      const otherStep = s.overlay === "run" ? app.nearestStep(other.steps, step) : app.preStep;
      const cmp = await get("compare", {run: s.run, step, other_run: other.run, other_step: otherStep,
        example: app.example, stream: app.stream, tau: s.tau, source, heads: app.flowHeads,
        mode: app.flowMethod(s.method).trace_mode, ...app.display});
      const first = s.overlay === "run" ? `only in ${s.run}` : `only at step ${step}`;
      const second = s.overlay === "run" ? `only in ${other.run} (step ${otherStep})` : `only pre-trained (step ${otherStep})`;
      overlay = {first, second};
      edges = (cmp.trace?.edges || []).map(([l, i, j, wa, wb, cls]) => ({l, i, j, w: Math.max(wa || 0, wb || 0), wa, wb, cls}));
    }
    const perHead = trace.trace_mode === "any_head";
    const colourBy = perHead && !overlay ? (s.edges === "head" && trace.edge_heads ? "head" : "layer") : null;
    const example = app.probe.examples[app.example];
    const segments = segmentsFor(example, trace.tokens,
      trace.sequence_ids || unitSegmentIds(example.sequence_ids, trace.display?.unit_positions));
    return {trace, tokens: trace.tokens, influence, influenceLabel, edges, overlay, perHead, colourBy, segments,
      legend: displayLegend(trace.display, app.registries)};
  }

  prefetch(step) {
    return this.app.tokens.length > 1 ? this.fetchData(step) : null;
  }

  async update() {
    const {app} = this;
    const s = app.state;
    this.method.value = s.method;
    this.overlay.value = s.overlay;
    this.tau.value = String(s.tau);
    this.edgeColour.value = s.edges;
    this.edgeLabel.hidden = app.flowMethod(s.method).trace_mode !== "any_head";
    this.tauLabel.textContent = `τ ${s.tau.toFixed(3)}`;
    if (!app.run || !app.probe) return;
    if (app.tokens.length <= 1) {
      this.generation++; // a load still under way must not draw over this message
      this.panel.showMessage("info", "This example has a single token.",
        "Attention can only go from that token to itself, so there are no paths between tokens to draw. Pick a longer example.");
      return;
    }
    if (!(await this.load(() => this.fetchData(), "The flow could not be computed for this selection."))) return;
    this.window.follow(this.data.tokens.length, `${s.run}|${app.example}|${this.data.tokens.join("\u0001")}`);
    const notes = [];
    if (app.layers === 1) notes.push("The model has one layer: the trace is a single step, and rollout equals the residual-adjusted attention.");
    if (this.data.trace.reduction) notes.push(`${this.data.trace.reduction.note}.`);
    if (s.overlay === "run" && !app.otherRun) notes.push("Pick run B in the run comparison to see the run overlay.");
    const heads = headSet(s);
    const perHead = this.data.perHead;
    notes.push(heads.size ? `Heads: ${[...heads].join(", ")} (click heads in the grid to change).`
      : perHead ? "Heads: all, each tested on its own (an edge when any head's weight reaches τ)." : "Heads: all, averaged.");
    if (perHead && this.data.overlay) notes.push("The overlay colours edges by comparison; choose no overlay to colour them by head or layer.");
    if (!this.data.edges.length) notes.push(`No attention weight from the source reaches τ = ${s.tau}: lower τ to see paths.`);
    if (this.data.edges.length > MAX_EDGES) notes.push(`Showing the ${MAX_EDGES} strongest of ${this.data.edges.length} edges: raise τ to see fewer.`);
    this.panel.setNote(notes.join(" "));
    this.panel.paint();
  }

  geometry(width) {
    const T = this.data?.tokens.length || 1;
    const L = this.app.layers;
    // The window of positions drawn: all of them unless zoomed; they fill the card, at least TOKEN_PX apart
    // when they fit, else closer, with every k-th label (labelStride).
    const {start, count} = this.window.range(T);
    const spacing = Math.max(count * TOKEN_PX <= width - LEFT - RIGHT ? TOKEN_PX : 0, (width - LEFT - RIGHT) / count);
    const w = LEFT + RIGHT + spacing * count;
    const every = labelStride(spacing, LABEL_PX);
    const rowH = Math.max(34, Math.min(70, 560 / Math.max(1, L)));
    const labelH = Math.min(110, 14 + 6 * Math.max(...this.data.tokens.map((t) => Math.min(14, String(t).length))));
    const inputY = TOP + L * rowH;
    return {T, L, start, count, end: start + count, every, spacing, width: w, rowH, inputY, barTop: inputY + 10, barH: 26,
      labelTop: inputY + 44, labelH};
  }

  size(width) {
    if (!this.data) return {width, height: 100};
    const g = this.geometry(width);
    return {width: g.width, height: g.labelTop + g.labelH + 56 + (this.data.segments ? 20 : 0) + 16 * this.legendLines(g).length + (this.data.colourBy ? 16 * this.keyRows(g) : 0)};
  }

  x(g, i) {
    return LEFT + (i - g.start + 0.5) * g.spacing;
  }

  /** Whether position i is inside the token window drawn. */
  inWindow(g, i) {
    return i >= g.start && i < g.end;
  }

  /** Redraw after a zoom or pan (no new data: the window is a view of what is loaded). */
  repaintWindow() {
    if (this.data && this.panel.ready) this.panel.paint();
  }

  y(g, layer) {
    return g.inputY - (layer + 1) * g.rowH; // layer -1 is the input row
  }

  draw(p, {width}) {
    const {app} = this;
    const {tokens, edges, influence, trace, overlay, colourBy, segments} = this.data;
    const g = this.geometry(width);
    const source = trace.source ?? 0;
    const topLayer = trace.layer ?? g.L - 1;
    // Layer rows.
    for (let l = -1; l < g.L; l++) {
      const y = this.y(g, l);
      p.line(LEFT - 6, y, g.width - RIGHT, y, {stroke: "#f0f0f0"});
      p.text(LEFT - 10, y, l < 0 ? "input" : `layer ${l}`, {size: 10, color: "#757575", align: "right", baseline: "middle"});
    }
    // A sentence pair: the boundary between its segments, through every layer down to the bars.
    const at = (i) => LEFT + (i - g.start) * g.spacing;
    drawBoundary(p, segments, {at, from: TOP - 10, to: g.barTop + g.barH + 8});
    // Edges, weakest first so that strong ones sit on top.
    const visible = edges.filter((e) => this.inWindow(g, e.i) && this.inWindow(g, e.j));
    const shown = visible.length > MAX_EDGES ? [...visible].sort((a, b) => b.w - a.w).slice(0, MAX_EDGES) : visible;
    shown.sort((a, b) => a.w - b.w);
    const wMax = Math.max(1e-9, ...shown.map((e) => e.w));
    for (const e of shown) {
      const t = e.w / wMax;
      const color = e.cls ? OVERLAY[e.cls] || EDGE : this.edgeColourOf(e, colourBy);
      p.curve(this.x(g, e.i), this.y(g, e.l), this.x(g, e.j), this.y(g, e.l - 1),
        {stroke: color, width: 0.6 + 3.4 * t, alpha: 0.25 + 0.65 * t});
    }
    const mark = this.highlight; // an edge hovered in the edge lifetimes (lifetimes.js)
    if (mark && this.inWindow(g, mark.i) && this.inWindow(g, mark.j)) p.curve(this.x(g, mark.i), this.y(g, mark.l), this.x(g, mark.j), this.y(g, mark.l - 1), {stroke: SOURCE, width: 5, alpha: 0.9});
    // Nodes: reached positions are dark, the source is ringed.
    const reached = new Set([`${topLayer}:${source}`]);
    for (const e of shown) reached.add(`${e.l}:${e.i}`).add(`${e.l - 1}:${e.j}`);
    const r = Math.max(1, Math.min(4.5, g.spacing / 4));
    for (let l = -1; l < g.L; l++) {
      for (let i = g.start; i < g.end; i++) {
        const hit = reached.has(`${l}:${i}`);
        p.circle(this.x(g, i), this.y(g, l), r, {fill: hit ? "#37474f" : "#cfd8dc"});
      }
    }
    if (this.inWindow(g, source)) p.circle(this.x(g, source), this.y(g, topLayer), r + 3, {stroke: SOURCE, width: 2});
    // Input influence bars and token labels.
    const vals = (influence || []).map((v) => (Number.isFinite(v) ? v : 0));
    const vMax = Math.max(1e-9, ...vals);
    vals.forEach((v, i) => {
      if (!this.inWindow(g, i)) return;
      const h = (v / vMax) * g.barH;
      const bw = Math.max(1, Math.min(12, g.spacing - (g.spacing > 4 ? 3 : 0.5)));
      p.rect(this.x(g, i) - bw / 2, g.barTop + g.barH - h, bw, h, {fill: css(sequential(v / vMax)), stroke: "#455a64", width: 0.5});
    });
    p.line(LEFT, g.barTop + g.barH, g.width - RIGHT, g.barTop + g.barH, {stroke: "#bdbdbd", width: 0.5});
    drawBands(p, segments, {at: (i) => at(i) + 1, cell: g.spacing - 2, across: g.barTop + g.barH + 2, thickness: 5});
    tokens.forEach((tok, i) => {
      const isSource = i === source && topLayer < 0;
      // Thinned: every g.every-th label in the window (counted from the window's start), and the source's.
      if (!this.inWindow(g, i) || ((i - g.start) % g.every && !isSource)) return;
      const label = fitText(tok, g.labelH - 6, {size: 11});
      const hidden = trace.display && !trace.display.keep[i]; // a hidden target: drawn, but greyed
      p.text(this.x(g, i) + 3, g.labelTop, label, {size: 11, rotate: -55, align: "right",
        color: isSource ? SOURCE : hidden ? "#b0b0b0" : "#212121"});
    });
    // Legend.
    let ly = g.labelTop + g.labelH + 14;
    for (const line of this.legendLines(g)) {
      p.text(LEFT, ly, line, {size: 10, color: "#616161", baseline: "middle"});
      ly += 16;
    }
    if (colourBy) ly = this.colourKey(p, ly, g, colourBy);
    const edgeItem = colourBy ? "edge: a head ≥ τ (width ∝ the strongest)"
      : "attention edge (width and opacity ∝ weight)";
    const items = overlay
      ? [["shared", OVERLAY.shared, "line"], [overlay.first, OVERLAY.first, "line"], [overlay.second, OVERLAY.second, "line"]]
      : [[edgeItem, colourBy ? "#9e9e9e" : EDGE, "line"]];
    items.push(["reached token", "#37474f", "box"], ["not reached", "#cfd8dc", "box"], [`source: ${fitText(tokens[source], 80)}`, SOURCE, "box"]);
    const legendEnd = swatches(p, LEFT, ly, items, Math.max(200, width - LEFT - 200));
    if (segments) swatches(p, LEFT, Math.max(legendEnd + 8, ly + 36), segmentLegend(segments));
    colorbar(p, Math.max(LEFT + 260, g.width - RIGHT - 170), ly + 2, 160,
      {min: 0, max: vMax, label: this.data.influenceLabel});
    const windowText = g.count < g.T ? `tokens ${g.start}–${g.end - 1} of ${g.T}` : `all ${g.T} tokens`;
    this.windowLabel.textContent = windowText + (g.every > 1 ? `, every ${g.every}th label` : "");
    if (g.count < g.T || g.every > 1) {
      p.text(g.width - RIGHT, TOP - 10, `${windowText}${g.every > 1 ? ` · every ${g.every}th label` : ""}` +
        (visible.length < edges.length ? ` · ${edges.length - visible.length} edges leave the window` : ""),
      {size: 10, color: "#757575", align: "right", baseline: "middle"});
    }
    this.geom = g;
    return g;
  }

  /** An edge's colour: the overlay's class, its strongest head's or its layer's colour, or the default blue. */
  edgeColourOf(e, colourBy) {
    if (colourBy === "head" && e.heads?.length) return categoryColour(e.heads[0], this.app.heads);
    if (colourBy === "layer") return categoryColour(e.l, this.app.layers);
    return EDGE;
  }

  /** The key of the head or layer colours; returns the next free y. */
  colourKey(p, y, g, colourBy) {
    const n = colourBy === "head" ? this.app.heads : this.app.layers;
    const items = Array.from({length: n}, (_, k) => [`${colourBy === "head" ? "head" : "layer"} ${k}`, categoryColour(k, n), "line"]);
    p.text(LEFT, y, colourBy === "head" ? "edge colour: its strongest head" : "edge colour: its layer",
      {size: 10, color: "#616161", baseline: "middle"});
    swatches(p, LEFT + 180, y, items, g.width - LEFT - RIGHT - 180);
    return y + 16 * this.keyRows(g);
  }

  /** The display legend ("view: ...") broken into lines that fit the drawing. */
  legendLines(g) {
    return wrapLines(this.data.legend, g.width - LEFT - RIGHT - 40);
  }

  /** How many rows the colour key takes (about 70 px per swatch). */
  keyRows(g) {
    const n = this.data.colourBy === "head" ? this.app.heads : this.app.layers;
    return Math.ceil((n * 70) / Math.max(70, g.width - LEFT - RIGHT - 180));
  }

  hitTest(x, y) {
    const g = this.geom;
    if (!g || !this.data) return null;
    const i = g.start + Math.floor((x - LEFT) / g.spacing);
    const l = Math.round((g.inputY - y) / g.rowH) - 1;
    if (x < LEFT || !this.inWindow(g, i) || l < -1 || l >= g.L) return null;
    if (Math.abs(y - this.y(g, l)) > g.rowH / 2.5) return null;
    return {i, l};
  }

  onPick(hit) {
    if (hit.l >= 0) this.app.store.set({source: hit.i, layer: hit.l});
  }

  describe(hit) {
    const {tokens, influence, edges} = this.data;
    const lines = [`${hit.l < 0 ? "input" : `layer ${hit.l}`} · position ${hit.i}: ${tokens[hit.i]}`];
    if (hit.l < 0 && influence) lines.push(`${this.data.influenceLabel}: ${fmt.num(influence[hit.i])}`);
    if (this.data.segments) lines.push(describeSegment(this.data.segments, hit.i));
    const out = edges.filter((ed) => ed.l === hit.l && ed.i === hit.i).sort((a, b) => b.w - a.w).slice(0, 4);
    for (const ed of out) {
      const detail = ed.cls ? ` (${ed.cls}: ${fmt.num(ed.wa)} / ${fmt.num(ed.wb)})`
        : ed.heads ? ` (heads ${ed.heads.join(", ")} ≥ τ)` : "";
      lines.push(`→ ${tokens[ed.j]} ${fmt.num(ed.w)}${detail}`);
    }
    if (hit.l >= 0) lines.push("click to trace from this token");
    return lines;
  }
}

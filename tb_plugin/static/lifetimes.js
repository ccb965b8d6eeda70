// Edge lifetimes: under the scrubber, one strip per edge of the graph the flow view draws now, marking the
// snapshots at which that edge is drawn. Hover: the edge is highlighted in the flow view. Click: jump to the
// snapshot where the edge (last) appeared. The server traces every snapshot (/lifetimes, bounded).

import {get} from "./api.js";
import {fmt} from "./dom.js";
import {swatches} from "./legend.js";
import {fitText} from "./painter.js";
import {CanvasView} from "./view.js";

const TOP = 8;
const ROW = 11;
const PRESENT = "#0072B2";
const ABSENT = "#eeeeee";
const MARK = "#f57c00";
const LABEL_WIDTH = 88; // left of the timeline's first snapshot (Timeline's LEFT is 96)

export class EdgeLifetimes extends CanvasView {
  static id = "lifetimes";
  static title = "Edge lifetimes";
  static depends = ["data", "run", "example", "step", "method", "tau", "source", "layer", "heads"];
  static slot = "wide";
  static needsFullRows = "the traces at every snapshot"; // not drawn for a rows="cls" run (app.updateView says why)

  constructor(app) {
    super(app, {fileStem: () => app.stem("lifetimes")});
    this.hovered = null;
    this.panel.canvas.addEventListener("mousemove", (e) => this.highlight(this.hitAt(e)));
    this.panel.canvas.addEventListener("mouseleave", () => this.highlight(null));
  }

  fetch(step) {
    const {app} = this;
    const s = app.state;
    return get("lifetimes", {run: s.run, example: app.example, step, stream: app.stream, heads: app.flowHeads,
      view: s.method, source: s.source >= 0 ? s.source : null, layer: s.layer >= 0 ? s.layer : null, tau: s.tau});
  }

  prefetch(step) {
    return this.app.tokens.length > 1 ? this.fetch(step) : null;
  }

  async update() {
    const {app} = this;
    this.highlight(null);
    if (!app.run || !app.probe) return;
    if (app.tokens.length <= 1) {
      this.generation++;
      this.panel.showMessage("info", "This example has a single token: there are no edges to follow.");
      return;
    }
    if (!(await this.load(() => this.fetch(app.step), "Edge lifetimes are unavailable."))) return;
    const {edges, capped, limits, steps} = this.data;
    if (!edges.length) {
      this.panel.showMessage("info", `The graph at step ${this.data.step} has no edges.`,
        `No attention weight from the source reaches τ = ${this.data.tau}: lower τ in the flow view.`);
      return;
    }
    const notes = [`${edges.length} edge${edges.length === 1 ? "" : "s"} of the graph drawn at step ${this.data.step}` +
      `, at each of ${steps.length} snapshots. Hover a strip to find its edge in the flow; click to jump to where it appeared.`];
    if (capped.edges) notes.push(`Showing the ${limits.edges} strongest of ${capped.total_edges} edges: raise τ to see fewer.`);
    if (capped.steps) notes.push(`Traced at ${steps.length} of ${capped.total_steps} snapshots, spread evenly.`);
    this.panel.setNote(notes.join(" "));
    this.panel.paint();
  }

  /** x of a snapshot, the same as the timeline's above it. */
  xOf(step, width) {
    const k = this.app.steps.indexOf(step);
    return this.app.views.timeline.xOf(Math.max(0, k), width);
  }

  size(width) {
    if (!this.data) return {width, height: 60};
    return {width, height: TOP + this.data.edges.length * ROW + 34};
  }

  label(edge) {
    const [l, i, j] = edge;
    const tokens = this.data.tokens;
    return `L${l} ${tokens[i]}→${tokens[j]}`;
  }

  draw(p, {width}) {
    const {edges, present, steps, step} = this.data;
    const xs = steps.map((s) => this.xOf(s, width));
    const bounds = xs.map((x, k) => [k ? (xs[k - 1] + x) / 2 : x - 3, k < xs.length - 1 ? (x + xs[k + 1]) / 2 : x + 3]);
    edges.forEach((edge, e) => {
      const y = TOP + e * ROW;
      const hovered = this.hovered === e;
      p.text(LABEL_WIDTH, y + ROW / 2, fitText(this.label(edge), LABEL_WIDTH - 4, {size: 9}),
        {size: 9, color: hovered ? MARK : "#616161", align: "right", baseline: "middle"});
      p.rect(bounds[0][0], y + 1, bounds[bounds.length - 1][1] - bounds[0][0], ROW - 3, {fill: ABSENT});
      present[e].forEach((on, k) => {
        if (on) p.rect(bounds[k][0], y + 1, bounds[k][1] - bounds[k][0] + 0.5, ROW - 3, {fill: hovered ? MARK : PRESENT});
      });
    });
    const bottom = TOP + edges.length * ROW;
    const x = this.xOf(step, width);
    p.line(x, TOP - 2, x, bottom, {stroke: MARK, width: 1});
    swatches(p, LABEL_WIDTH + 8, bottom + 16, [
      ["edge drawn at that snapshot", PRESENT, "box"], ["not drawn", ABSENT, "box"], ["current step", MARK, "line"],
    ], width - LABEL_WIDTH - 16);
    return {xs, bottom};
  }

  hitTest(x, y) {
    if (!this.data || !this.panel.layout) return null;
    const e = Math.floor((y - TOP) / ROW);
    if (e < 0 || e >= this.data.edges.length) return null;
    const {xs} = this.panel.layout;
    let k = 0;
    xs.forEach((sx, i) => {
      if (Math.abs(sx - x) < Math.abs(xs[k] - x)) k = i;
    });
    return {e, k};
  }

  /** Highlight edge hit.e here and in the flow view (null: none). */
  highlight(hit) {
    const e = hit ? hit.e : null;
    if (e === this.hovered) return;
    this.hovered = e;
    const flow = this.app.views.flow;
    if (flow) {
      const [l, i, j] = e === null ? [] : this.data.edges[e];
      flow.highlight = e === null ? null : {l, i, j};
      if (flow.panel.ready) flow.panel.paint();
    }
    if (this.panel.ready) this.panel.paint();
  }

  onPick({e}) {
    this.app.store.set({step: this.data.appeared[e]});
  }

  describe({e, k}) {
    const {edges, present, steps, appeared, step} = this.data;
    const shown = present[e].reduce((a, b) => a + b, 0);
    return [
      `${this.label(edges[e])} (layer ${edges[e][0]}, weight ${fmt.num(edges[e][3])} at step ${step})`,
      `step ${steps[k]}: ${present[e][k] ? "drawn" : "not drawn"}`,
      `drawn at ${shown} of ${steps.length} snapshots; appeared at step ${appeared[e]}`,
      `click to jump to step ${appeared[e]}`,
    ];
  }
}

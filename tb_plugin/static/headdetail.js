// View 5: one head's attention as heatmaps: pre-trained, current step, and their difference.

import {get} from "./api.js";
import {diverging, sequential} from "./colormaps.js";
import {displayLegend} from "./display.js";
import {fmt} from "./dom.js";
import {colorbar, swatches} from "./legend.js";
import {fitText} from "./painter.js";
import {describeSegment, drawBands, drawBoundary, segmentLegend, segmentsFor, unitSegmentIds} from "./segments.js";
import {CanvasView} from "./view.js";

const GAP = 26;
const TOP = 40;
const BAND = 6; // a sentence pair's segment bands, along both axes of each map
const MIN_CELL = 3; // px: a longer sequence's maps are averaged over blocks of tokens to keep cells this large

export class HeadDetail extends CanvasView {
  static id = "detail";
  static title = "Head detail";
  static depends = ["data", "run", "example", "step", "detail", "targets", "units"];
  static slot = "wide";
  static needsFullRows = "the query x key maps"; // not drawn for a rows="cls" run (app.updateView says why)

  constructor(app) {
    super(app, {fileStem: () => app.stem(`head-${app.detailHead.replace(":", "-")}`)});
  }

  /**
   * The maps drawn: at most what fits the card at MIN_CELL px a cell, so a long sequence is averaged over
   * blocks of `block` x `block` tokens (a block's colour is its mean weight; the tooltip names its tokens).
   */
  pooled(width) {
    const {pre, cur, tokens} = this.data;
    const n = tokens.length;
    const labelW = Math.min(90, 12 + 6.2 * Math.max(...tokens.map((t) => Math.min(14, String(t).length))));
    const room = Math.floor((width - labelW - 2 * GAP - 10) / (3 * MIN_CELL));
    const block = n <= room ? 1 : Math.ceil(n / Math.max(1, room));
    if (this.pool?.block === block && this.pool.source === pre && this.pool.sourceCur === cur) return this.pool;
    const T = Math.ceil(n / block);
    const average = (m) => {
      if (block === 1) return m;
      const out = new Float32Array(T * T);
      for (let i = 0; i < n; i++) {
        const bi = Math.floor(i / block);
        for (let j = 0; j < n; j++) out[bi * T + Math.floor(j / block)] += m[i * n + j];
      }
      for (let bi = 0; bi < T; bi++) {
        const rows = Math.min(block, n - bi * block);
        for (let bj = 0; bj < T; bj++) out[bi * T + bj] /= rows * Math.min(block, n - bj * block);
      }
      return out;
    };
    const label = (k) => (block === 1 ? tokens[k] : `${tokens[k * block]}…`);
    this.pool = {block, T, pre: average(pre), cur: average(cur), labels: Array.from({length: T}, (_, k) => label(k)),
      source: pre, sourceCur: cur};
    return this.pool;
  }

  geometry(width) {
    const pool = this.pooled(width);
    const tokens = pool.labels;
    const T = pool.T;
    const labelW = Math.min(90, 12 + 6.2 * Math.max(...tokens.map((t) => Math.min(14, String(t).length))));
    const fits = Math.floor((width - labelW - 2 * GAP - 10) / (3 * T));
    const cell = Math.max(2, Math.min(Math.max(22, Math.floor(120 / T)), fits)); // short examples stay legible
    const side = cell * T;
    const showLabels = cell >= 7;
    const every = showLabels ? 1 : Math.ceil(8 / cell);
    const band = pool.block === 1 && (this.data.keySegments || this.data.querySegments) ? BAND : 0;
    return {T, block: pool.block, labels: tokens, labelW, cell, side, every, band, left: labelW + band, top: TOP,
      bottomLabels: labelW + band};
  }

  size(width) {
    if (!this.data) return {width, height: 100};
    const g = this.geometry(width);
    return {width: Math.max(width, g.left + 3 * g.side + 2 * GAP + 10),
      height: g.top + g.side + g.bottomLabels + 48 + (g.band ? 20 : 0)};
  }

  draw(p, {width}) {
    const {preStep, step} = this.data;
    const g = this.geometry(width);
    const {pre, cur} = this.pool;
    const tokens = g.labels;
    const keySegments = g.block === 1 ? this.data.keySegments : null; // segment bands need one cell a token
    const querySegments = g.block === 1 ? this.data.querySegments : null;
    const T = g.T;
    const vmax = Math.max(1e-9, ...pre, ...cur);
    let dmax = 1e-3; // no change still gets a readable scale
    for (let k = 0; k < cur.length; k++) dmax = Math.max(dmax, Math.abs(cur[k] - pre[k]));
    const maps = [
      {title: `pre-trained (step ${preStep})`, color: (i, j) => sequential(pre[i * T + j] / vmax)},
      {title: `step ${step}`, color: (i, j) => sequential(cur[i * T + j] / vmax)},
      {title: `difference (step ${step} − pre-trained)`, color: (i, j) => diverging((cur[i * T + j] - pre[i * T + j]) / dmax)},
    ];
    const [layer, head] = this.app.detailHead.split(":");
    p.text(0, 12, `layer ${layer}, head ${head}: rows are queries, columns keys` +
      (g.block > 1 ? ` · ${this.data.tokens.length} tokens, each cell the mean over ${g.block} x ${g.block}` : ""),
    {size: 11, color: "#616161"});
    g.x0 = [];
    maps.forEach((m, k) => {
      const x = g.left + k * (g.side + GAP);
      g.x0.push(x);
      p.text(x, g.top - 4, fitText(m.title, g.side + GAP - 4, {size: 10, weight: 500}), {size: 10, weight: 500});
      p.cells(x, g.top + 4, g.cell, g.cell, T, T, m.color);
      p.rect(x, g.top + 4, g.side, g.side, {stroke: "#bdbdbd", width: 0.5});
      // A sentence pair: segment bands under the keys and left of the queries, the boundary across the map.
      const bottom = g.top + 4 + g.side;
      drawBands(p, keySegments, {at: (j) => x + j * g.cell, cell: g.cell, across: bottom + 1, thickness: g.band - 2});
      drawBands(p, querySegments, {along: "y", at: (i) => g.top + 4 + i * g.cell, cell: g.cell, across: x - g.band + 1,
        thickness: g.band - 2});
      drawBoundary(p, keySegments, {at: (j) => x + j * g.cell, from: g.top + 4, to: bottom + g.band, dash: null});
      drawBoundary(p, querySegments, {along: "y", at: (i) => g.top + 4 + i * g.cell, from: x - g.band, to: x + g.side,
        dash: null});
      for (let j = 0; j < T; j += g.every) {
        p.text(x + (j + 0.5) * g.cell + 3, g.top + 8 + g.side + g.band, fitText(tokens[j], g.labelW - 8, {size: 10}),
          {size: 10, rotate: -60, align: "right", color: "#424242"});
      }
    });
    for (let i = 0; i < T; i += g.every) {
      p.text(g.left - 4 - g.band, g.top + 4 + (i + 0.5) * g.cell, fitText(tokens[i], g.labelW - 8, {size: 10}),
        {size: 10, align: "right", baseline: "middle", color: "#424242"});
    }
    const ly = g.top + g.side + g.bottomLabels + 18;
    const barW = Math.max(120, Math.min(180, g.side));
    colorbar(p, g.x0[0], ly, barW, {min: 0, max: vmax, label: "attention weight"});
    colorbar(p, Math.max(g.x0[2], g.x0[0] + barW + 48), ly, barW, {kind: "div", min: -dmax, max: dmax, label: "difference"});
    if (g.band) swatches(p, g.x0[0], ly + 40, segmentLegend(keySegments || querySegments));
    this.geom = g;
    return g;
  }

  /** A sentence pair's segments along both axes (segments.js); a transformed view's units map to them. */
  segments(example, header) {
    const units = unitSegmentIds(example.sequence_ids, header.view?.unit_positions);
    return {keySegments: segmentsFor(example, header.key_tokens, units),
      querySegments: segmentsFor(example, header.query_tokens, units)};
  }

  /** The /attention query of the detail head at `step` for the map of step `at` (the step, or the pre-trained one). */
  params(step, at = step) {
    const {app} = this;
    const [layer, head] = app.detailHeadAt(step).split(":").map(Number);
    return {run: app.state.run, example: app.example, step: at, stream: app.stream, layer, head, ...app.display};
  }

  /** Both maps the view will show at `step`: its head can differ from this step's (the one that changed most there). */
  prefetch(step) {
    if (!this.app.detailHeadAt(step)) return null;
    return Promise.all([get("attention", this.params(step, this.app.preStep), {kind: "tensor"}),
      get("attention", this.params(step), {kind: "tensor"})]);
  }

  async update() {
    const {app} = this;
    if (!app.run || !app.probe) return;
    const key = app.detailHead;
    if (!key) {
      this.panel.showMessage("info", "Click a head in the head grid to see its attention.");
      return;
    }
    const [layer, head] = key.split(":").map(Number);
    const request = async () => {
      const [pre, cur] = await Promise.all([
        get("attention", this.params(app.step, app.preStep), {kind: "tensor"}),
        get("attention", this.params(app.step), {kind: "tensor"}),
      ]);
      const example = app.probe.examples[app.example];
      return {pre: pre.values, cur: cur.values, tokens: cur.header.key_tokens, queryTokens: cur.header.query_tokens,
        preStep: app.preStep, step: app.step, legend: displayLegend(cur.header.view, app.registries),
        ...this.segments(example, cur.header)};
    };
    if (!(await this.load(request, `No attention for layer ${layer}, head ${head}.`))) return;
    const notes = [];
    if (!app.state.detail) notes.push("Showing the head that changed most at this step; click a head in the grid to choose.");
    if (this.data.tokens.length === 1) notes.push("This example has a single token: its attention to itself is 1.");
    if (this.data.legend) notes.push(`${this.data.legend[0].toUpperCase()}${this.data.legend.slice(1)}.`);
    this.panel.setNote(notes.join(" "));
    this.panel.paint();
  }

  hitTest(x, y) {
    const g = this.geom;
    if (!g || !this.data) return null;
    const k = g.x0.findIndex((x0) => x >= x0 && x < x0 + g.side);
    const i = Math.floor((y - g.top - 4) / g.cell);
    if (k < 0 || i < 0 || i >= g.T) return null;
    return {i, j: Math.floor((x - g.x0[k]) / g.cell)};
  }

  describe({i, j}) {
    if (this.geom.block > 1) return this.describeBlock(i, j);
    const {pre, cur, tokens, queryTokens, step, preStep} = this.data;
    const at = i * tokens.length + j;
    const {keySegments: ks, querySegments: qs} = this.data;
    return [
      `${queryTokens[i]} (${i}) → ${tokens[j]} (${j})`,
      ks || qs ? `${qs ? describeSegment(qs, i) : "query"} → ${ks ? describeSegment(ks, j) : "key"}` : null,
      `pre-trained (step ${preStep}): ${pre[at].toFixed(4)}`,
      `step ${step}: ${cur[at].toFixed(4)}`,
      `difference: ${(cur[at] - pre[at] >= 0 ? "+" : "") + (cur[at] - pre[at]).toFixed(4)}`,
    ].filter((line) => line !== null);
  }

  /** The tooltip of a block of a long sequence's averaged map: its tokens and mean weights. */
  describeBlock(i, j) {
    const {tokens, queryTokens, step, preStep} = this.data;
    const {pre, cur, T, block} = this.pool;
    const span = (k, names) => {
      const a = k * block;
      const b = Math.min(names.length, a + block) - 1;
      return `${names[a]} … ${names[b]} (${a}–${b})`;
    };
    const at = i * T + j;
    return [
      `${span(i, queryTokens)} → ${span(j, tokens)}`,
      `mean over the block, pre-trained (step ${preStep}): ${pre[at].toFixed(4)}`,
      `mean over the block, step ${step}: ${cur[at].toFixed(4)}`,
      `difference: ${(cur[at] - pre[at] >= 0 ? "+" : "") + (cur[at] - pre[at]).toFixed(4)}`,
    ];
  }
}

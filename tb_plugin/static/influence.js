// View 6: per input token, the flow or rollout from the source token, pre-trained vs current, as paired bars.

import {get} from "./api.js";
import {OVERLAY} from "./colormaps.js";
import {displayLegend, wrapLines} from "./display.js";
import {fmt} from "./dom.js";
import {swatches} from "./legend.js";
import {LABEL_PX} from "./limits.js";
import {fitText} from "./painter.js";
import {describeSegment, drawBands, drawBoundary, segmentLegend, segmentsFor, unitSegmentIds} from "./segments.js";
import {labelStride} from "./tokenaxis.js";
import {CanvasView} from "./view.js";

const LEFT = 52;
const TOP = 16;
const PLOT = 150;

export class TokenInfluence extends CanvasView {
  static id = "influence";
  static title = "Token influence";
  static depends = ["data", "run", "example", "step", "method", "source", "layer", "heads", "targets", "units", "tau"];
  static slot = "side";
  static needsFullRows = "rollout and max-flow"; // not drawn for a rows="cls" run (app.updateView says why)

  constructor(app) {
    super(app, {fileStem: () => app.stem("influence")});
  }

  /** The method whose per-token values are shown: the selected one, or the one it names (raw: rollout). */
  get shown() {
    const {app} = this;
    return app.flowMethod(app.flowMethod(app.state.method).token_influence);
  }

  /** Per input token, the shown method's value from the source (resolved by the server) at `step`. */
  async values(step) {
    const {app} = this;
    const s = app.state;
    const body = await get("flow", {run: s.run, example: app.example, step, stream: app.stream, heads: app.flowHeads,
      method: "trace", view: this.shown.name, source: s.source >= 0 ? s.source : null,
      layer: s.layer >= 0 ? s.layer : null, tau: s.tau, ...app.display});
    return body;
  }

  prefetch(step) {
    return this.values(step);
  }

  async update() {
    const {app} = this;
    if (!app.run || !app.probe) return;
    const chosen = app.flowMethod(app.state.method);
    const shown = this.shown;
    const request = async () => {
      const [pre, cur] = await Promise.all([this.values(app.preStep), this.values(app.step)]);
      const example = app.probe.examples[app.example];
      const segments = segmentsFor(example, cur.tokens, unitSegmentIds(example.sequence_ids, cur.display?.unit_positions));
      return {pre: pre.influence, cur: cur.influence, tokens: cur.tokens, step: app.step, preStep: app.preStep,
        what: shown.label, keep: cur.display?.keep || null, legend: displayLegend(cur.display, app.registries), segments};
    };
    if (!(await this.load(request, "Token influence is unavailable."))) return;
    const s = app.state;
    const src = s.source >= 0 ? `token ${s.source} at layer ${s.layer >= 0 ? s.layer : app.layers - 1}` : "the classification token";
    const what = this.data.what;
    this.panel.setNote(`${what[0].toUpperCase()}${what.slice(1)} from ${src} to each input token` +
      (shown !== chosen ? ` (${chosen.label} has no per-token total; ${shown.label} shown).` : "."));
    this.panel.paint();
  }

  geometry(width) {
    const T = this.data.tokens.length;
    const fit = (width - LEFT - 12) / T; // a long sequence fits the card, with every k-th label
    const group = T * 12 <= width - LEFT - 12 ? Math.max(12, fit) : fit;
    return {T, group, every: labelStride(group, LABEL_PX), width: LEFT + 12 + group * T, base: TOP + PLOT};
  }

  size(width) {
    if (!this.data) return {width, height: 100};
    const g = this.geometry(width);
    return {width: g.width, height: g.base + 96 + (this.data.segments ? 32 : 0) +
      14 * wrapLines(this.data.legend, g.width - LEFT - 40).length};
  }

  draw(p, {width}) {
    const {pre, cur, tokens, step, preStep, keep, legend, segments} = this.data;
    const g = this.geometry(width);
    const vMax = Math.max(1e-9, ...pre, ...cur);
    for (const f of [0, 0.5, 1]) {
      const y = g.base - f * PLOT;
      p.line(LEFT, y, g.width - 8, y, {stroke: f ? "#eeeeee" : "#9e9e9e"});
      p.text(LEFT - 6, y, fmt.num(f * vMax), {size: 10, color: "#757575", align: "right", baseline: "middle"});
    }
    const bw = Math.max(0.5, Math.min(14, (g.group - (g.group > 6 ? 4 : 0.5)) / 2));
    tokens.forEach((tok, i) => {
      const cx = LEFT + (i + 0.5) * g.group;
      const hp = (pre[i] / vMax) * PLOT;
      const hc = (cur[i] / vMax) * PLOT;
      p.rect(cx - bw, g.base - hp, bw, hp, {fill: OVERLAY.second});
      p.rect(cx, g.base - hc, bw, hc, {fill: OVERLAY.first});
      if (i % g.every) return;
      p.text(cx + 3, g.base + (segments ? 12 : 8), fitText(tok, 60, {size: 10}), {size: 10, rotate: -55, align: "right",
        color: keep && !keep[i] ? "#b0b0b0" : "#424242"});
    });
    const at = (i) => LEFT + i * g.group;
    drawBands(p, segments, {at: (i) => at(i) + 1, cell: g.group - 2, across: g.base + 1, thickness: 4});
    drawBoundary(p, segments, {at, from: TOP, to: g.base + 6});
    const legendEnd = swatches(p, LEFT, g.base + 82, [
      [`pre-trained (step ${preStep})`, OVERLAY.second, "box"],
      [`step ${step}`, OVERLAY.first, "box"],
    ]);
    if (segments) swatches(p, LEFT, legendEnd + 8, segmentLegend(segments), g.width - LEFT);
    wrapLines(legend, g.width - LEFT - 40).forEach((line, k) => {
      p.text(LEFT, g.base + 100 + (segments ? 32 : 0) + 14 * k, line, {size: 10, color: "#616161", baseline: "middle"});
    });
    this.geom = g;
  }

  hitTest(x) {
    const g = this.geom;
    if (!g) return null;
    const i = Math.floor((x - LEFT) / g.group);
    return i >= 0 && i < g.T ? {i} : null;
  }

  describe({i}) {
    const {pre, cur, tokens, step, preStep, what} = this.data;
    return [
      `${tokens[i]} (position ${i})`,
      this.data.segments ? describeSegment(this.data.segments, i) : null,
      `${what}, pre-trained (step ${preStep}): ${fmt.num(pre[i], 4)}`,
      `${what}, step ${step}: ${fmt.num(cur[i], 4)}`,
    ].filter((line) => line !== null);
  }
}

// View 2: the step scrubber with play/pause, and sparklines of change from pre-trained and accuracy.

import {el, fmt} from "./dom.js";
import {swatches} from "./legend.js";
import {CanvasView} from "./view.js";

const ROW = 24;
const LEFT = 96;
const RIGHT = 84;
const LINE = "#455a64";
const MARK = "#f57c00"; // TensorBoard's accent, for "current step"

export class Timeline extends CanvasView {
  static id = "timeline";
  static title = "Timeline";
  static depends = ["data", "run", "step"];
  static slot = "wide";

  constructor(app) {
    super(app, {fileStem: () => app.stem("timeline")});
    this.playButton = el("button", {class: "af-btn af-play", text: "▶ Play", title: "Play / pause (space)",
      "aria-label": "Play", onclick: () => this.toggle()});
    this.slider = el("input", {type: "range", class: "af-scrubber", min: 0, max: 0, step: 1, value: 0,
      "aria-label": "Training step"});
    this.slider.addEventListener("input", () => {
      const steps = this.app.steps;
      const step = steps[Number(this.slider.value)];
      if (step !== undefined) this.app.store.set({step});
    });
    this.stepLabel = el("span", {class: "af-step-label"});
    this.panel.controls.append(this.playButton, this.slider, this.stepLabel);
    this.timer = null;
  }

  series() {
    const {summary, run} = this.app;
    const rows = [];
    if (summary?.accuracy && summary.accuracy.some((v) => v !== null)) {
      rows.push({label: "probe accuracy", values: summary.accuracy, fixed: [0, 1], format: fmt.pct});
    }
    const layers = run?.streams?.[summary?.stream]?.layers ?? (summary?.layer_change?.[0]?.length || 0);
    for (let l = layers - 1; l >= 0; l--) {
      rows.push({label: `layer ${l} change`, values: (summary?.layer_change || []).map((r) => (r ? r[l] : null)),
        format: fmt.num});
    }
    return rows;
  }

  size(width) {
    return {width, height: 14 + this.series().length * ROW + 52};
  }

  xOf(k, width) {
    const n = this.app.steps.length;
    const w = width - LEFT - RIGHT;
    if (n <= 1) return LEFT + w / 2;
    const steps = this.app.steps;
    const span = steps[n - 1] - steps[0] || 1;
    return LEFT + ((steps[k] - steps[0]) / span) * w;
  }

  draw(p, {width}) {
    const {app} = this;
    const steps = app.steps;
    const rows = this.series();
    const current = steps.indexOf(app.step);
    const changeMax = Math.max(1e-9, ...rows.filter((r) => !r.fixed).flatMap((r) => r.values.filter(Number.isFinite)));
    let y = 14;
    const layout = {rows: [], top: y};
    for (const row of rows) {
      const [lo, hi] = row.fixed || [0, changeMax];
      const yOf = (v) => y + ROW - 5 - ((v - lo) / (hi - lo || 1)) * (ROW - 9);
      p.line(LEFT, y + ROW - 4, width - RIGHT, y + ROW - 4, {stroke: "#eeeeee"});
      p.text(LEFT - 8, y + ROW / 2 + 1, row.label, {size: 10, color: "#616161", align: "right", baseline: "middle"});
      let segment = [];
      const flush = () => {
        if (segment.length > 1) p.path(segment, {stroke: LINE, width: 1.5});
        else if (segment.length === 1) p.circle(segment[0][0], segment[0][1], 1.5, {fill: LINE});
        segment = [];
      };
      row.values.forEach((v, k) => (Number.isFinite(v) ? segment.push([this.xOf(k, width), yOf(v)]) : flush()));
      flush();
      if (current >= 0 && Number.isFinite(row.values[current])) {
        p.circle(this.xOf(current, width), yOf(row.values[current]), 3, {fill: MARK});
      }
      p.text(width - RIGHT + 8, y + ROW / 2 + 1, current >= 0 ? row.format(row.values[current]) : "",
        {size: 10, color: "#212121", baseline: "middle", mono: true});
      layout.rows.push({y, row});
      y += ROW;
    }
    // Step axis: a tick per snapshot, the current one marked.
    const axisY = y + 6;
    p.line(LEFT, axisY, width - RIGHT, axisY, {stroke: "#bdbdbd"});
    const every = Math.max(1, Math.ceil(steps.length / Math.max(1, (width - LEFT - RIGHT) / 48)));
    steps.forEach((s, k) => {
      const x = this.xOf(k, width);
      p.line(x, axisY, x, axisY + 4, {stroke: "#9e9e9e"});
      if (k % every === 0 || k === steps.length - 1) {
        p.text(x, axisY + 15, String(s), {size: 10, color: "#757575", align: "center"});
      }
    });
    if (current >= 0) {
      const x = this.xOf(current, width);
      p.line(x, layout.top, x, axisY, {stroke: MARK, width: 1});
    }
    p.text(LEFT - 8, axisY + 15, "step", {size: 10, color: "#757575", align: "right"});
    swatches(p, LEFT, axisY + 32, [
      ["change from pre-trained (mean Jensen-Shannon divergence, shared scale)", LINE, "line"],
      ["current step", MARK, "line"],
    ], width - LEFT);
    layout.axisY = axisY;
    return layout;
  }

  /** The nearest snapshot to x, and the sparkline row at y. */
  hitTest(x, y, width) {
    let k = -1;
    let bestDist = Infinity;
    this.app.steps.forEach((_s, i) => {
      const d = Math.abs(this.xOf(i, width) - x);
      if (d < bestDist) [k, bestDist] = [i, d];
    });
    if (k < 0) return null;
    return {k, row: this.panel.layout?.rows.find((r) => y >= r.y && y < r.y + ROW)?.row ?? null};
  }

  onPick({k}) {
    this.app.store.set({step: this.app.steps[k]});
  }

  describe({k, row}) {
    const lines = [`step ${this.app.steps[k]}${this.app.summary?.kinds?.[k] === "final" ? " (final)" : ""}`];
    if (row) lines.push(`${row.label}: ${row.format(row.values[k])}`);
    lines.push("click to jump here");
    return lines;
  }

  toggle(force) {
    const play = force ?? !this.timer;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (play && this.app.steps.length > 1) {
      if (this.app.steps.indexOf(this.app.step) === this.app.steps.length - 1) {
        this.app.store.set({step: this.app.steps[0]});
      }
      this.timer = setInterval(() => this.advance(), 900);
    }
    this.playButton.textContent = this.timer ? "❚❚ Pause" : "▶ Play";
    this.playButton.setAttribute("aria-label", this.timer ? "Pause" : "Play");
  }

  advance(delta = 1, {wrap = false} = {}) {
    const steps = this.app.steps;
    let k = steps.indexOf(this.app.step) + delta;
    if (k >= steps.length || k < 0) {
      if (!wrap && this.timer) return this.toggle(false);
      k = Math.min(steps.length - 1, Math.max(0, k));
    }
    this.app.store.set({step: steps[k]});
  }

  update() {
    const {app} = this;
    if (!app.run) return;
    const steps = app.steps;
    this.slider.max = String(Math.max(0, steps.length - 1));
    this.slider.value = String(Math.max(0, steps.indexOf(app.step)));
    this.slider.disabled = steps.length < 2;
    this.playButton.disabled = steps.length < 2;
    const k = steps.indexOf(app.step);
    this.stepLabel.textContent = `step ${app.step}  (${k + 1} of ${steps.length})`;
    if (!app.summary) {
      this.panel.showMessage("info", "Loading the timeline…");
      return;
    }
    if (!steps.length) {
      this.panel.showMessage("info", "This run has no snapshots yet.", "Snapshots appear here as the recorder writes them.");
      return;
    }
    this.panel.setNote(steps.length === 1 ? "Only one snapshot so far: the timeline grows as training writes more." : "");
    this.panel.paint();
  }
}

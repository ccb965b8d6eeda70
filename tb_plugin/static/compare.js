// View 7: a second run at the same step, side by side, with both runs' hyperparameters.

import {get} from "./api.js";
import {css, sequential} from "./colormaps.js";
import {el, fmt, select} from "./dom.js";
import {colorbar} from "./legend.js";
import {drawGrid} from "./headgrid.js";
import {fitText} from "./painter.js";
import {CanvasView} from "./view.js";

const TOP = 34;
const GAP = 56;
const LEFT = 36;

export class RunComparison extends CanvasView {
  static id = "compare";
  static title = "Run comparison";
  static depends = ["data", "run", "step", "other"];
  static slot = "wide";

  constructor(app) {
    super(app, {fileStem: () => app.stem("compare")});
    this.picker = el("select", {"aria-label": "Run B", "data-control": "other"});
    this.picker.addEventListener("change", () => app.store.set({other: this.picker.value}));
    this.panel.controls.append(el("label", {class: "af-ctl"}, ["run B ", this.picker]));
  }

  candidates() {
    const {app} = this;
    return app.runs.filter((r) => r.run !== app.state.run && r.probe_id === app.run?.probe_id);
  }

  prefetch(step) {
    const {app} = this;
    const other = app.otherRun;
    if (!other) return null;
    return get("compare", {run: app.state.run, step, other_run: other.run,
      other_step: app.nearestStep(other.steps, step), stream: app.stream});
  }

  async update() {
    const {app} = this;
    if (!app.run) return;
    const options = this.candidates();
    this.picker.replaceChildren(el("option", {value: "", text: options.length ? "choose a run" : "none"}),
      ...options.map((r) => el("option", {value: r.run, text: r.run})));
    this.picker.value = app.otherRun ? app.otherRun.run : "";
    this.picker.disabled = !options.length;
    if (!options.length) {
      this.panel.showMessage("info", "No other run shares this probe set.",
        "Record a second run (other hyperparameters) with the same probe examples to compare them here.");
      return;
    }
    if (!app.otherRun) {
      this.panel.showMessage("info", "Pick run B above to compare it with this run at the same step.");
      return;
    }
    const other = app.otherRun;
    const otherStep = app.nearestStep(other.steps, app.step);
    const request = async () => {
      const [summaryB, cmp] = await Promise.all([
        get("summary", {run: other.run, stream: app.stream}),
        get("compare", {run: app.state.run, step: app.step, other_run: other.run, other_step: otherStep, stream: app.stream}),
      ]);
      const kA = app.summary.steps.indexOf(app.step);
      const kB = summaryB.steps.indexOf(otherStep);
      return {cmp, other, otherStep, changeA: app.summary.head_change?.[kA], changeB: summaryB.head_change?.[kB]};
    };
    if (!(await this.load(request, `Cannot compare with ${other.run}.`))) return;
    this.panel.setNote(otherStep === app.step ? "" : `Run B has no snapshot at step ${app.step}; its nearest, step ${otherStep}, is shown.`);
    this.panel.paint();
  }

  cell(width) {
    const H = this.app.heads;
    return Math.max(6, Math.min(28, Math.floor((width - LEFT - 2 * GAP - 20) / (3 * Math.max(1, H)))));
  }

  hparamRows() {
    const {cmp} = this.data;
    const a = cmp.hparams?.run || this.app.run.hparams || {};
    const b = cmp.hparams?.other_run || this.data.other.hparams || {};
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    const show = (v) => (v === undefined ? "–" : typeof v === "number" ? fmt.num(v, 6) : String(v));
    return keys.map((k) => [k, show(a[k]), show(b[k])]);
  }

  size(width) {
    if (!this.data) return {width, height: 100};
    const cell = this.cell(width);
    return {width, height: TOP + this.app.layers * cell + 64 + 30 + 16 * (this.hparamRows().length + 1) + 10};
  }

  draw(p, {width}) {
    const {app} = this;
    const {cmp, other, otherStep, changeA, changeB} = this.data;
    const cell = this.cell(width);
    const H = app.heads;
    const gridW = cell * H;
    const fill = (rows) => rows || Array.from({length: app.layers}, () => Array(H).fill(null));
    const cMax = Math.max(1e-9, ...[changeA, changeB].flatMap((g) => (g || []).flat()).filter(Number.isFinite));
    const jMax = Math.max(1e-9, ...(cmp.head_js || []).flat().filter(Number.isFinite));
    const seqC = (v) => css(sequential(v / cMax));
    const seqJ = (v) => css(sequential(v / jMax));
    const xs = [LEFT, LEFT + gridW + GAP, LEFT + 2 * (gridW + GAP)];
    const names = [`A: ${app.state.run} · step ${app.step}`, `B: ${other.run} · step ${otherStep}`, "A vs B (JS divergence)"];
    p.text(0, 12, "Change from pre-trained per head, side by side, and how far apart the two runs' heads are.", {size: 11, color: "#616161"});
    drawGrid(p, xs[0], TOP, cell, fill(changeA), seqC, {title: fitText(names[0], gridW + GAP - 8, {size: 11, weight: 500})});
    drawGrid(p, xs[1], TOP, cell, fill(changeB), seqC, {title: fitText(names[1], gridW + GAP - 8, {size: 11, weight: 500})});
    drawGrid(p, xs[2], TOP, cell, fill(cmp.head_js), seqJ, {title: names[2]});
    const ly = TOP + app.layers * cell + 36;
    colorbar(p, xs[0], ly, Math.min(200, 2 * gridW + GAP), {min: 0, max: cMax, label: "change from pre-trained (JS)"});
    colorbar(p, xs[2], ly, Math.min(160, Math.max(80, gridW)), {min: 0, max: jMax, label: "A vs B (JS)"});
    // Hyperparameters, side by side; differing values in bold.
    let y = ly + 50;
    const rows = this.hparamRows();
    const widest = (k) => Math.max(...[["hyperparameter", "", ""], ...rows].map((r) => p.textWidthOf(r[k], {size: 11, weight: 700})));
    const colA = Math.min(width * 0.3, widest(0) + 32);
    const colB = colA + Math.min(width * 0.35, Math.max(widest(1), p.textWidthOf(`A: ${app.state.run}`, {size: 11})) + 40);
    const col = [0, colA, colB];
    p.text(col[0], y, "hyperparameter", {size: 11, weight: 500});
    p.text(col[1], y, fitText(`A: ${app.state.run}`, col[2] - col[1] - 10, {size: 11, weight: 500}), {size: 11, weight: 500});
    p.text(col[2], y, fitText(`B: ${other.run}`, width - col[2] - 4, {size: 11, weight: 500}), {size: 11, weight: 500});
    for (const [k, a, b] of rows) {
      y += 16;
      const differ = a !== b;
      const o = {size: 11, weight: differ ? 700 : 400, color: differ ? "#212121" : "#616161"};
      p.text(col[0], y, fitText(k, col[1] - 10, o), o);
      p.text(col[1], y, fitText(a, col[2] - col[1] - 10, o), o);
      p.text(col[2], y, fitText(b, width - col[2] - 4, o), o);
    }
  }
}

// Across examples: the head grid and the word influence averaged over a selection of probe examples (all, one
// class, or those whose prediction flipped since the first snapshot), computed by the server (/aggregate).
// It answers "which heads changed for these sentences" without clicking through every example.

import {drop, get} from "./api.js";
import {OVERLAY, css, sequential} from "./colormaps.js";
import {el, fmt, select} from "./dom.js";
import {colorbar, swatches} from "./legend.js";
import {PENDING_POLL_MS} from "./limits.js";
import {fitText} from "./painter.js";
import {drawGrid} from "./headgrid.js";
import {headSet} from "./state.js";
import {CanvasView} from "./view.js";

const LEFT = 40;
const TOP = 34;
const WORD_ROW = 18;

export class AcrossExamples extends CanvasView {
  static id = "aggregate";
  static title = "Across examples";
  static depends = ["data", "run", "step", "heads", "targets"];
  static slot = "wide";
  static needsFullRows = "the word influence (a rollout)"; // not drawn for a rows="cls" run (app.updateView says why)

  constructor(app) {
    super(app, {fileStem: () => app.stem(`aggregate-${this.selection.value.replace(":", "")}`)});
    this.selection = select([["all", "all examples"]], "all", () => app.track(app.updateView("aggregate", new Set(["selection"]))),
      {"aria-label": "Examples averaged", "data-control": "selection"});
    this.panel.controls.append(el("label", {class: "af-ctl"}, ["mean over ", this.selection]));
  }

  /** The selection menu: all examples, those that flipped, and one entry per label of the probe set. */
  fillSelection() {
    const probe = this.app.probe;
    const options = [["all", "all examples"]];
    if (probe.predictions) options.push(["flipped", "examples whose prediction flipped"]);
    const labels = [...new Set(probe.examples.map((ex) => ex.label).filter((y) => y !== null && y !== undefined))]
      .sort((a, b) => a - b);
    for (const y of labels) options.push([`class:${y}`, `class ${probe.label_names?.[y] ?? y}`]);
    const key = options.map(([v]) => v).join("|");
    if (key === this.optionsKey) return;
    this.optionsKey = key;
    const value = options.some(([v]) => v === this.selection.value) ? this.selection.value : "all";
    this.selection.replaceChildren(...options.map(([v, label]) => el("option", {value: v, text: label})));
    this.selection.value = value;
  }

  /** The server answers `pending` while it computes the examples' rows in the background: that answer is not kept. */
  async fetch(step) {
    const {app} = this;
    const params = {run: app.state.run, step, selection: this.selection.value, stream: app.stream,
      targets: app.display.targets};
    const body = await get("aggregate", params);
    if (body.pending) drop("aggregate", params);
    return body;
  }

  prefetch(step) {
    return this.fetch(step);
  }

  async update() {
    const {app} = this;
    if (!app.run || !app.probe) return;
    this.fillSelection();
    if (!(await this.load(() => this.fetch(app.step), "Nothing to average for this selection."))) return;
    const d = this.data;
    if (d.pending) {
      this.panel.setNote("");
      this.panel.showMessage("info", `Averaging over the probe examples: ${d.ready} of ${d.needed} parts ready.`,
        "The server computes each example once per snapshot, in the background; this view fills in when it is done.");
      const generation = this.generation;
      clearTimeout(this.pollTimer);
      this.pollTimer = setTimeout(() => {
        if (generation === this.generation) app.updateView("aggregate", new Set(["pending"]));
      }, PENDING_POLL_MS);
      return;
    }
    const chosen = this.selection.selectedOptions[0]?.text;
    if (!d.count) {
      this.panel.setNote("");
      this.panel.showMessage("info", `No ${chosen} between steps ${d.reference_step} and ${d.step}.`,
        "Pick another step or another selection.");
      return;
    }
    this.panel.setNote(`Mean over ${d.count} example${d.count === 1 ? "" : "s"} (${chosen}` +
      `), step ${d.reference_step} → ${d.step}. Click a head to select it in the flow.`);
    this.panel.paint();
  }

  cellSize(width) {
    return Math.max(8, Math.min(28, Math.floor((width / 2 - LEFT - 20) / Math.max(1, this.app.heads))));
  }

  size(width) {
    if (!this.data) return {width, height: 60};
    const grid = TOP + this.app.layers * this.cellSize(width) + 70;
    const words = TOP + this.data.words.length * WORD_ROW + 40;
    return {width, height: Math.max(grid, words)};
  }

  draw(p, {width}) {
    const {app} = this;
    const d = this.data;
    const cell = this.cellSize(width);
    const js = d.heads.js.mean;
    const hi = Math.max(1e-3, ...js.flat().filter(Number.isFinite));
    p.text(LEFT, 14, `heads: mean change from step ${d.reference_step} (JS divergence)`, {size: 11, weight: 500});
    this.geom = drawGrid(p, LEFT, TOP, cell, js, (v) => css(sequential(v / hi)), {selected: headSet(app.state)});
    colorbar(p, LEFT, TOP + app.layers * cell + 34, Math.min(200, width / 2 - LEFT - 20), {min: 0, max: hi, label: "mean JS"});
    // Words: the classification token's influence, before and after, largest change first.
    const x0 = Math.max(width / 2, LEFT + this.geom.H * cell + 40);
    const labelW = 90;
    const barW = Math.max(60, width - x0 - labelW - 100);
    p.text(x0, 14, "words: classification token's influence (rollout, mean)", {size: 11, weight: 500});
    const vMax = Math.max(1e-9, ...d.words.flatMap((w) => [w.before, w.after]));
    this.wordRows = [];
    d.words.forEach((w, k) => {
      const y = TOP - 8 + k * WORD_ROW;
      p.text(x0 + labelW - 6, y + WORD_ROW / 2, fitText(`${w.word} ×${w.count}`, labelW - 8, {size: 10}),
        {size: 10, align: "right", baseline: "middle"});
      p.rect(x0 + labelW, y + 2, barW * (w.before / vMax), 6, {fill: OVERLAY.second});
      p.rect(x0 + labelW, y + 9, barW * (w.after / vMax), 6, {fill: OVERLAY.first});
      p.text(x0 + labelW + barW + 60, y + WORD_ROW / 2, `${w.change >= 0 ? "+" : ""}${fmt.num(w.change, 4)}`,
        {size: 10, align: "right", baseline: "middle", mono: true});
      this.wordRows.push({x: x0, y, w});
    });
    if (!d.words.length) p.text(x0, TOP + 6, "no word is seen twice in this selection", {size: 10, color: "#9e9e9e"});
    swatches(p, x0, TOP + Math.max(1, d.words.length) * WORD_ROW + 10, [
      [`step ${d.reference_step}`, OVERLAY.second, "box"], [`step ${d.step}`, OVERLAY.first, "box"],
    ]);
  }

  hitTest(x, y) {
    const g = this.geom;
    if (!g) return null;
    const h = Math.floor((x - g.x) / g.cell);
    const row = Math.floor((y - g.y) / g.cell);
    if (h >= 0 && h < g.H && row >= 0 && row < g.L) return {l: g.L - 1 - row, h};
    const word = (this.wordRows || []).find((r) => x >= r.x && y >= r.y && y < r.y + WORD_ROW);
    return word ? {word: word.w} : null;
  }

  onPick(hit) {
    if (hit.word) return;
    const key = `${hit.l}:${hit.h}`;
    this.app.store.set({heads: key, detail: key});
  }

  describe(hit) {
    const d = this.data;
    if (hit.word) {
      const w = hit.word;
      return [`${w.word} (seen ${w.count} times)`, `step ${d.reference_step}: ${fmt.num(w.before, 4)}`,
        `step ${d.step}: ${fmt.num(w.after, 4)}`, `change: ${fmt.num(w.change, 4)}`];
    }
    const {js, cosine} = d.heads;
    return [`layer ${hit.l}, head ${hit.h}`,
      `mean JS from step ${d.reference_step}: ${fmt.num(js.mean[hit.l][hit.h], 4)} ± ${fmt.num(js.std[hit.l][hit.h], 3)}`,
      `mean cosine similarity: ${fmt.num(cosine.mean[hit.l][hit.h], 4)}`, `over ${d.count} examples`,
      "click to select this head in the flow"];
  }
}

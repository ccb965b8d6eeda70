// Explain a flip: opened from a flip mark (⇄) in the example list. For that example and step, the heads
// ranked by how much its attention changed, the trace edges gained and lost, and the classification token's
// influence on each word before and after. The server's /explain runs the code of `attnflows explain`.

import {get} from "./api.js";
import {OVERLAY} from "./colormaps.js";
import {el, fmt} from "./dom.js";
import {swatches} from "./legend.js";
import {fitText} from "./painter.js";
import {CanvasView} from "./view.js";

const PAD = 12;
const RIGHT = 28; // kept clear of the card's edge
const LINE = 15;
const HEADS_SHOWN = 8;
const EDGES_SHOWN = 8;
const WORDS_SHOWN = 14;
const BAR = "#455a64";

export class FlipExplanation extends CanvasView {
  static id = "explain";
  static title = "Why did it flip?";
  static depends = ["data", "run", "targets"];
  static slot = "wide";
  static needsFullRows = "the trace edges and the influence"; // not drawn for a rows="cls" run (app.updateView says why)

  constructor(app) {
    super(app, {fileStem: () => app.stem(`explain-${this.target?.example}-step${this.target?.step}`)});
    this.target = null;
    this.closeButton = el("button", {class: "af-btn", text: "Close", title: "Close the explanation", disabled: true,
      onclick: () => this.open(null)});
    this.panel.controls.append(this.closeButton);
  }

  /** Explain the flip of `example` at `step` (null: close); the app tracks the update. */
  open(example, step) {
    this.target = example === null ? null : {run: this.app.state.run, example, step};
    const done = this.app.track(this.app.updateView(this.constructor.id, new Set(["explain"])));
    if (this.target) this.root.scrollIntoView({block: "nearest"});
    return done;
  }

  async update() {
    const {app} = this;
    if (this.target && this.target.run !== app.state.run) this.target = null;
    this.closeButton.disabled = !this.target;
    if (!this.target) {
      this.generation++;
      this.data = null;
      this.panel.setNote("");
      this.panel.showMessage("info", "Click a flip mark (⇄ step) in the example list to explain it.",
        "Which heads changed on that example across the flip, which trace edges from the classification token " +
        "were gained and lost, and how its influence on each word moved.");
      return;
    }
    const {example, step} = this.target;
    const fetch = () => get("explain", {run: app.state.run, example, step, stream: app.stream, tau: app.state.tau,
      targets: app.display.targets});
    if (!(await this.load(fetch, `Example #${example} at step ${step} cannot be explained.`))) return;
    const d = this.data;
    this.panel.setNote(`The same answer as \`attnflows explain RUN --example ${example} --step ${step}\`` +
      ` (τ ${d.view.tau}, special tokens dropped as targets).`);
    this.panel.paint();
  }

  columns(width) {
    const w = Math.max(220, (width - 4 * PAD - RIGHT) / 3);
    return [PAD, 2 * PAD + w, 3 * PAD + 2 * w].map((x) => ({x, w}));
  }

  shownWords() {
    return this.data.words.filter((w) => w.shown).sort((a, b) => Math.abs(b.change) - Math.abs(a.change))
      .slice(0, WORDS_SHOWN);
  }

  size(width) {
    if (!this.data) return {width, height: 60};
    const d = this.data;
    const rows = Math.max(Math.min(HEADS_SHOWN, d.heads.length),
      Math.min(EDGES_SHOWN, d.edges_gained.length) + Math.min(EDGES_SHOWN, d.edges_lost.length) + 2,
      this.shownWords().length * 2);
    return {width, height: 58 + rows * LINE + 40};
  }

  draw(p, {width}) {
    const d = this.data;
    const [heads, edges, words] = this.columns(width);
    const flip = d.flipped ? "flipped" : "did not flip";
    p.text(PAD, 16, fitText(`#${d.example}: ${d.text}`, width - 2 * PAD, {size: 12, weight: 500}), {size: 12, weight: 500});
    p.text(PAD, 34, `label ${d.label ?? "–"} · prediction ${d.prediction_before} → ${d.prediction_after} (${flip}) ` +
      `between steps ${d.step_before} and ${d.step_after}`, {size: 11, color: "#424242"});
    const top = 58;
    const layout = {heads: [], words: [], top};
    // Heads, largest change first.
    p.text(heads.x, top, "heads whose attention changed most (JS)", {size: 10, weight: 500, color: "#616161"});
    const ranked = d.heads.slice(0, HEADS_SHOWN);
    const jsMax = Math.max(1e-9, ...ranked.map((h) => h.js));
    ranked.forEach((h, k) => {
      const y = top + 8 + k * LINE;
      p.text(heads.x + 44, y + 6, `L${h.layer} H${h.head}`, {size: 10, align: "right", baseline: "middle"});
      p.rect(heads.x + 50, y + 1, (heads.w - 110) * (h.js / jsMax), LINE - 4, {fill: BAR});
      p.text(heads.x + heads.w - 4, y + 6, fmt.num(h.js, 4), {size: 10, align: "right", baseline: "middle", mono: true});
      layout.heads.push({y, h});
    });
    // Edges gained and lost.
    let y = top;
    p.text(edges.x, y, `trace edges: ${d.edges_gained.length} gained, ${d.edges_lost.length} lost, ${d.edges_shared} shared`,
      {size: 10, weight: 500, color: "#616161"});
    for (const [rows, colour, word] of [[d.edges_gained, OVERLAY.first, "gained"], [d.edges_lost, OVERLAY.second, "lost"]]) {
      for (const e of rows.slice(0, EDGES_SHOWN)) {
        y += LINE;
        p.text(edges.x, y + 2, fitText(`${word} L${e.layer} ${e.from_token} → ${e.to_token}`, edges.w - 90, {size: 10}),
          {size: 10, color: colour});
        p.text(edges.x + edges.w - 4, y + 2, `${fmt.num(e.weight_before)} → ${fmt.num(e.weight_after)}`,
          {size: 10, align: "right", mono: true});
      }
      if (rows.length > EDGES_SHOWN) {
        y += LINE;
        p.text(edges.x, y + 2, `… ${rows.length - EDGES_SHOWN} more ${word}`, {size: 10, color: "#9e9e9e"});
      }
    }
    // Influence of the classification token per word, before and after.
    p.text(words.x, top, "classification token's influence per word (rollout)", {size: 10, weight: 500, color: "#616161"});
    const shown = this.shownWords();
    const vMax = Math.max(1e-9, ...shown.flatMap((w) => [w.before, w.after]));
    const barX = words.x + 70;
    const barW = words.w - 130;
    shown.forEach((w, k) => {
      const wy = top + 8 + k * 2 * LINE;
      p.text(barX - 6, wy + LINE / 2 + 2, fitText(w.word, 64, {size: 10}), {size: 10, align: "right", baseline: "middle"});
      p.rect(barX, wy + 2, barW * (w.before / vMax), LINE / 2 + 1, {fill: OVERLAY.second});
      p.rect(barX, wy + LINE / 2 + 4, barW * (w.after / vMax), LINE / 2 + 1, {fill: OVERLAY.first});
      p.text(words.x + words.w - 4, wy + LINE / 2 + 2, `${w.change >= 0 ? "+" : ""}${fmt.num(w.change, 4)}`,
        {size: 10, align: "right", baseline: "middle", mono: true, color: w.change >= 0 ? OVERLAY.first : OVERLAY.second});
      layout.words.push({y: wy, w});
    });
    const bottom = top + 8 + Math.max(ranked.length * LINE, y - top, shown.length * 2 * LINE) + 20;
    swatches(p, PAD, bottom, [
      [`step ${d.step_before} (before) · lost edge`, OVERLAY.second, "box"],
      [`step ${d.step_after} (after) · gained edge`, OVERLAY.first, "box"],
    ], width - 2 * PAD);
    layout.columns = [heads, edges, words];
    return layout;
  }

  hitTest(x, y, width) {
    const layout = this.panel.layout;
    if (!layout) return null;
    const [heads, , words] = this.columns(width);
    if (x >= heads.x && x < heads.x + heads.w) {
      const row = layout.heads.find((r) => y >= r.y && y < r.y + LINE);
      return row ? {head: row.h} : null;
    }
    if (x >= words.x && x < words.x + words.w) {
      const row = layout.words.find((r) => y >= r.y && y < r.y + 2 * LINE);
      return row ? {word: row.w} : null;
    }
    return null;
  }

  onPick(hit) {
    if (hit.head) {
      const key = `${hit.head.layer}:${hit.head.head}`;
      this.app.store.set({heads: key, detail: key, example: this.data.example});
    }
  }

  describe(hit) {
    const d = this.data;
    if (hit.head) {
      return [`layer ${hit.head.layer}, head ${hit.head.head}`,
        `change across the flip (JS divergence): ${fmt.num(hit.head.js, 4)}`, "click to select this head in the flow"];
    }
    const w = hit.word;
    return [`${w.word} (positions ${w.positions.join(", ")})`, `step ${d.step_before}: ${fmt.num(w.before, 4)}`,
      `step ${d.step_after}: ${fmt.num(w.after, 4)}`, `change: ${fmt.num(w.change, 4)}`];
  }
}

// View 1: runs (hyperparameters, status) and probe examples (label, prediction, flips, search).

import {clear, el, fmt, message, onActivate} from "./dom.js";
import {exportButton, exportPng, exportSvg} from "./panel.js";
import {EXAMPLE_TEXT_CHARS} from "./limits.js";
import {fitText} from "./painter.js";
import {SEGMENT_COLOURS, SEGMENT_NAMES} from "./segments.js";

const STATUS_TEXT = {
  running: "training",
  finished: "finished",
  failed: "failed",
  interrupted: "interrupted",
  unknown: "unknown",
};

export function hparamText(hparams) {
  return Object.entries(hparams || {})
    .map(([k, v]) => `${k}=${typeof v === "number" ? fmt.num(v, 6) : String(v)}`)
    .join("  ");
}

/** The start of a long text, as much as a two-line row shows: a 512-token text laid out in full made every step
 * change re-shape 64 long paragraphs. */
function shortened(text) {
  return text.length <= EXAMPLE_TEXT_CHARS ? text : `${text.slice(0, EXAMPLE_TEXT_CHARS)}…`;
}

/** An example's text: one line, or for a sentence pair one line per segment, marked in the segment's colour. */
function exampleText(ex) {
  if (ex.text_pair === null || ex.text_pair === undefined) {
    return [el("div", {class: "af-ex-text", text: shortened(ex.text), title: ex.text.length > EXAMPLE_TEXT_CHARS ? ex.text : null})];
  }
  return [ex.text, ex.text_pair].map((text, k) => el("div", {
    class: "af-ex-text af-ex-segment", "data-segment": k, title: `${SEGMENT_NAMES[k]}: ${text}`,
    style: {borderLeftColor: SEGMENT_COLOURS[k]}, text: shortened(text),
  }));
}

export class Picker {
  constructor(app) {
    this.app = app;
    this.runList = el("div", {class: "af-runs", role: "listbox", "aria-label": "Runs"});
    this.search = el("input", {type: "search", class: "af-search", placeholder: "Search probe texts  ( / )",
      "aria-label": "Search probe texts", value: app.state.q});
    this.search.addEventListener("input", () => app.store.set({q: this.search.value}));
    this.exampleList = el("div", {class: "af-examples", role: "listbox", "aria-label": "Probe examples"});
    this.count = el("span", {class: "af-count"});
    const exportButtons = el("div", {class: "af-export-group"}, [
      exportButton("png", () => exportPng(this, 320, app.stem("picker"))),
      exportButton("svg", () => exportSvg(this, 320, app.stem("picker"))),
    ]);
    this.root = el("aside", {class: "af-sidebar", "data-panel": "picker"}, [
      el("div", {class: "af-side-head"}, [el("h2", {class: "af-side-title", text: "Runs"}), exportButtons]),
      this.runList,
      el("div", {class: "af-side-head"}, [el("h2", {class: "af-side-title", text: "Probe examples"}), this.count]),
      this.search,
      this.exampleList,
    ]);
  }

  renderRuns() {
    const {app} = this;
    clear(this.runList);
    for (const run of app.runs) {
      const selected = run.run === app.state.run;
      const status = run.status || "unknown";
      const item = el("div", {
        class: `af-run${selected ? " af-selected" : ""}`, role: "option", tabindex: 0,
        "aria-selected": selected ? "true" : "false", "data-run": run.run,
      }, [
        el("div", {class: "af-run-line"}, [
          el("span", {class: "af-run-name", text: run.run, title: run.run}),
          el("span", {class: `af-chip af-status-${status}`, text: STATUS_TEXT[status] || status}),
        ]),
        el("div", {class: "af-run-meta", text: `${run.steps.length} step${run.steps.length === 1 ? "" : "s"}` +
          ` · ${run.model?.class || "model"}`}),
        el("div", {class: "af-run-hparams", text: hparamText(run.hparams)}),
      ]);
      onActivate(item, () => app.selectRun(run.run));
      this.runList.append(item);
    }
  }

  /** Index of the step row in the probe's predictions for the current step, or -1. */
  probeStepIndex() {
    const probe = this.app.probe;
    return probe ? probe.steps.indexOf(this.app.step) : -1;
  }

  exampleRows() {
    const {app} = this;
    const probe = app.probe;
    if (!probe) return [];
    const k = this.probeStepIndex();
    const flips = new Map((probe.flips || []).map((f) => [f.example, f.steps]));
    const q = app.state.q.trim().toLowerCase();
    return probe.examples
      .filter((ex) => !q || `${ex.text} ${ex.text_pair || ""}`.toLowerCase().includes(q))
      .map((ex) => ({
        ex,
        label: ex.label === null || ex.label === undefined ? null : ex.label,
        pred: k >= 0 && probe.predictions ? probe.predictions[k][ex.index] : null,
        conf: k >= 0 && probe.confidence ? probe.confidence[k][ex.index] : null,
        flips: flips.get(ex.index) || [],
      }));
  }

  labelName(i) {
    const names = this.app.probe?.label_names;
    return i === null || i === undefined ? "" : names && names[i] !== undefined ? String(names[i]) : String(i);
  }

  /** The flip marks of one example: each step is a link that opens its explanation (explain.js). */
  flipLinks(example, steps) {
    const explain = this.app.views?.explain;
    return el("span", {class: "af-flip", title: `prediction flipped at step ${steps.join(", ")}`}, ["⇄ ",
      ...steps.flatMap((step, k) => [k ? ", " : null, explain ? el("button", {
        class: "af-flip-link", text: String(step), "data-flip-step": step, "data-flip-example": example,
        title: `explain why the prediction flipped at step ${step}`,
        onclick: (e) => {
          e.stopPropagation();
          this.app.store.set({example, step, source: -1, layer: -1});
          explain.open(example, step);
        },
        onkeydown: (e) => e.stopPropagation(), // Enter and Space press this button, not the example row
      }) : String(step)])]);
  }

  renderExamples() {
    const {app} = this;
    clear(this.exampleList);
    this.predChips = new Map(); // example -> its prediction chip, updated in place on a step change
    if (!app.probe) {
      this.count.textContent = "";
      return;
    }
    const rows = this.exampleRows();
    this.count.textContent = `${rows.length} of ${app.probe.examples.length}`;
    if (!rows.length) {
      this.exampleList.append(message("info", "No probe text matches the search."));
      return;
    }
    for (const row of rows) {
      const {ex} = row;
      const selected = ex.index === app.example;
      const chip = el("span", {class: "af-chip af-pred"});
      this.setPrediction(chip, row);
      this.predChips.set(ex.index, chip);
      const item = el("div", {
        class: `af-example${selected ? " af-selected" : ""}`, role: "option", tabindex: 0,
        "aria-selected": selected ? "true" : "false", "data-example": ex.index,
      }, [
        el("div", {class: "af-ex-line"}, [
          el("span", {class: "af-ex-index", text: `#${ex.index}`}),
          row.label !== null ? el("span", {class: "af-chip af-label", text: this.labelName(row.label),
            title: "label"}) : null,
          chip,
          row.flips.length ? this.flipLinks(ex.index, row.flips) : null,
        ]),
        ...exampleText(ex),
      ]);
      onActivate(item, () => app.store.set({example: ex.index, source: -1, layer: -1}));
      this.exampleList.append(item);
    }
  }

  /** One example's prediction chip at the current step: the class, its confidence, right or wrong. */
  setPrediction(chip, row) {
    const correct = row.pred !== null && row.label !== null ? row.pred === row.label : null;
    chip.textContent = row.pred === null ? "no prediction" :
      `${correct === null ? "" : correct ? "✓ " : "✗ "}${this.labelName(row.pred)}` +
      (row.conf !== null ? ` ${fmt.pct(row.conf)}` : "");
    chip.classList.toggle("af-wrong", correct === false);
    chip.title = `prediction at step ${this.app.step}`;
  }

  update(changed) {
    if (changed.has("runs") || changed.has("run")) this.renderRuns();
    const rebuild = ["run", "probe", "example", "q"].some((k) => changed.has(k)) || !this.predChips;
    if (rebuild) this.renderExamples();
    else if (changed.has("step")) { // only the predictions change: update them in place, not the whole list
      for (const row of this.exampleRows()) {
        const chip = this.predChips.get(row.ex.index);
        if (chip) this.setPrediction(chip, row);
      }
    }
    if (this.search.value !== this.app.state.q) this.search.value = this.app.state.q;
  }

  // Export: the same information as a painted table.
  size(width) {
    const rows = this.exampleRows().length;
    return {width, height: 40 + this.app.runs.length * 34 + 30 + rows * 30 + 10};
  }

  draw(p, {width}) {
    const {app} = this;
    let y = 20;
    p.text(10, y, "Runs", {size: 13, weight: 500});
    y += 10;
    for (const run of app.runs) {
      y += 14;
      const chosen = run.run === app.state.run;
      p.text(10, y, fitText(run.run, width - 110, {size: 11, weight: chosen ? 700 : 400}),
        {size: 11, weight: chosen ? 700 : 400});
      p.text(width - 10, y, STATUS_TEXT[run.status] || run.status, {size: 10, color: "#616161", align: "right"});
      y += 14;
      p.text(18, y, fitText(hparamText(run.hparams), width - 28, {size: 10}), {size: 10, color: "#616161"});
      y += 6;
    }
    y += 24;
    p.text(10, y, `Probe examples at step ${app.step}`, {size: 13, weight: 500});
    y += 6;
    for (const row of this.exampleRows()) {
      y += 14;
      const chosen = row.ex.index === app.example;
      const head = `#${row.ex.index}  label ${this.labelName(row.label) || "–"}  predicted ` +
        `${row.pred === null ? "–" : this.labelName(row.pred)}${row.flips.length ? `  flipped at ${row.flips.join(", ")}` : ""}`;
      p.text(10, y, head, {size: 10, color: row.pred !== null && row.pred !== row.label ? "#c62828" : "#616161",
        weight: chosen ? 700 : 400});
      y += 14;
      const pair = row.ex.text_pair !== null && row.ex.text_pair !== undefined;
      p.text(18, y, fitText(pair ? `${row.ex.text} ‖ ${row.ex.text_pair}` : row.ex.text, width - 28, {size: 11}), {size: 11});
      y += 2;
    }
  }
}

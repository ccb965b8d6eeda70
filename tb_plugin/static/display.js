// The display options: which attention targets are hidden (special tokens, punctuation) and whether word
// pieces are merged into words. The server applies them (tb_plugin/display.py); this module only builds
// the controls from /registries, resolves "auto" to the run's measured default (/runs view_default), and
// words the legend line that says when the view is on.

import {el, fmt, select} from "./dom.js";
import {textWidth} from "./painter.js";

/** The URL-state choices of the display keys, from /registries (for state.decode). */
export function displayChoices(registries) {
  const {targets, units, edge_colours: edges} = registries.display;
  return {targets: ["auto", ...targets.map(([name]) => name)], units: ["auto", ...units.map(([name]) => name)],
    edges: edges.map(([name]) => name)};
}

/** The display the views ask the server for: the state's choice, or the run's default for "auto". */
export function resolveDisplay(state, run) {
  const fallback = run?.view_default || {targets: "none", units: "tokens"};
  return {targets: state.targets === "auto" ? fallback.targets : state.targets,
    units: state.units === "auto" ? fallback.units : state.units};
}

/** The legend's line for a route's `display` answer; "" when the view shows raw attention. */
export function displayLegend(info, registries) {
  if (!info) return "";
  const parts = [];
  if (info.targets !== "none") {
    const label = registries.display.targets.find(([name]) => name === info.targets)?.[1] || info.targets;
    parts.push(`${label} as targets, rows renormalised (${fmt.pct(info.hidden_mass)} of raw attention hidden)`);
  }
  if (info.units === "words") parts.push("word pieces merged into words");
  return parts.length ? `view: ${parts.join("; ")}` : "";
}

/** `text` broken at spaces into lines of at most `width` pixels at font size 10 (for legends drawn on a canvas). */
export function wrapLines(text, width) {
  const lines = [];
  for (const word of text ? text.split(" ") : []) {
    const last = lines.length ? `${lines[lines.length - 1]} ${word}` : null;
    if (last !== null && textWidth(last, {size: 10}) <= width) lines[lines.length - 1] = last;
    else lines.push(word);
  }
  return lines;
}

/** A colour per category k of n (heads, layers): evenly spaced hues, readable on white. */
export function categoryColour(k, n) {
  return `hsl(${Math.round((360 * k) / Math.max(1, n))}, 70%, ${k % 2 ? 38 : 46}%)`;
}

/** The bar above the views: the two display menus. Changing the view resets the source (units change). */
export class DisplayBar {
  constructor(app) {
    this.app = app;
    const {display} = app.registries;
    const auto = (what) => [["auto", `default for this model (${what})`]];
    this.targets = select([...auto("targets"), ...display.targets], app.state.targets,
      (targets) => app.store.set({targets, source: -1, layer: -1}), {"aria-label": "Hidden targets", "data-control": "targets"});
    this.units = select([...auto("units"), ...display.units], app.state.units,
      (units) => app.store.set({units, source: -1, layer: -1}), {"aria-label": "Units", "data-control": "units"});
    this.root = el("div", {class: "af-display", "data-panel": "display"}, [
      el("span", {class: "af-display-title", text: "View"}),
      el("label", {class: "af-ctl"}, ["targets ", this.targets]),
      el("label", {class: "af-ctl"}, ["units ", this.units]),
      this.note = el("span", {class: "af-display-note"}),
    ]);
  }

  /** Show the state's choices, and what "auto" resolves to for the current run. */
  update() {
    const {app} = this;
    this.targets.value = app.state.targets;
    this.units.value = app.state.units;
    const shown = resolveDisplay(app.state, app.run);
    const label = (list, name) => list.find(([n]) => n === name)?.[1] || name;
    this.targets.options[0].textContent = `default: ${label(app.registries.display.targets, shown.targets)}`;
    this.units.options[0].textContent = `default: ${label(app.registries.display.units, shown.units)}`;
    this.note.textContent = shown.targets === "none" && shown.units === "tokens" ? "raw attention"
      : "a view transform: the stored attention is unchanged";
  }
}

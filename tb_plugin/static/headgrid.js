// View 4: layers x heads, each cell coloured by a metric; clicking selects heads and opens the detail.

import {get} from "./api.js";
import {CATEGORICAL, MISSING, css, sequential} from "./colormaps.js";
import {el, fmt, select} from "./dom.js";
import {colorbar, swatches} from "./legend.js";
import {headSet} from "./state.js";
import {CanvasView} from "./view.js";

const LEFT = 58;
const TOP = 18;
const GROUP_ROW = 22; // the key/value brackets and their labels, under the head labels

/** The gap between two key/value groups of heads, for a cell size. */
export const groupGap = (cell) => Math.max(3, Math.round(cell / 3));

/**
 * Heads that share a key/value head (grouped-query attention): [{kv, first, last}] over consecutive heads,
 * or null when `kvHeads` is missing or every head has its own.
 */
export function kvGroups(kvHeads, H) {
  if (!Array.isArray(kvHeads) || kvHeads.length !== H || new Set(kvHeads).size === H) return null;
  const groups = [];
  kvHeads.forEach((kv, h) => {
    const last = groups[groups.length - 1];
    if (last && last.kv === kv) last.last = h;
    else groups.push({kv, first: h, last: h});
  });
  return groups;
}

/**
 * Draw an [L][H] grid of values with the deepest layer on top; returns the cell geometry.
 * kvHeads (optional): the key/value head of each head; heads that share one are drawn as a group, set
 * apart by a gap and bracketed under the head labels with "KV k".
 */
export function drawGrid(p, x, y, cell, values, color, {selected = new Set(), detail = "", title = "", kvHeads = null} = {}) {
  const L = values.length;
  const H = values[0]?.length || 0;
  const groups = kvGroups(kvHeads, H);
  const gap = groups ? groupGap(cell) : 0;
  const columns = [];
  (groups || [{first: 0, last: H - 1}]).forEach((g, k) => {
    for (let h = g.first; h <= g.last; h++) columns[h] = x + h * cell + k * gap;
  });
  if (title) p.text(x, y - 6, title, {size: 11, weight: 500});
  for (let l = 0; l < L; l++) {
    const cy = y + (L - 1 - l) * cell;
    if (cell >= 10 || l % Math.ceil(10 / cell) === 0) {
      p.text(x - 6, cy + cell / 2, `L${l}`, {size: 10, color: "#757575", align: "right", baseline: "middle"});
    }
    for (let h = 0; h < H; h++) {
      const v = values[l][h];
      p.rect(columns[h], cy, cell - 1, cell - 1, {fill: v === null || v === undefined ? MISSING : color(v)});
    }
  }
  for (let h = 0; h < H; h++) {
    if (cell >= 10 || h % Math.ceil(10 / cell) === 0) {
      p.text(columns[h] + cell / 2, y + L * cell + 11, `H${h}`, {size: 10, color: "#757575", align: "center"});
    }
  }
  if (groups) {
    const by = y + L * cell + 16;
    for (const g of groups) {
      const x0 = columns[g.first];
      const x1 = columns[g.last] + cell - 1;
      p.line(x0, by, x0, by + 4, {stroke: "#757575", width: 1});
      p.line(x0, by + 4, x1, by + 4, {stroke: "#757575", width: 1});
      p.line(x1, by, x1, by + 4, {stroke: "#757575", width: 1});
      if (x1 - x0 >= 24 || g.kv % Math.ceil(24 / Math.max(1, x1 - x0)) === 0) {
        p.text((x0 + x1) / 2, by + 14, `KV${g.kv}`, {size: 9, color: "#616161", align: "center"});
      }
    }
  }
  for (const key of selected) {
    const [l, h] = key.split(":").map(Number);
    if (l < L && h < H) p.rect(columns[h] - 1, y + (L - 1 - l) * cell - 1, cell + 1, cell + 1, {stroke: "#212121", width: 2});
  }
  if (detail) {
    const [l, h] = detail.split(":").map(Number);
    if (l < L && h < H) p.rect(columns[h] + 1.5, y + (L - 1 - l) * cell + 1.5, cell - 4, cell - 4, {stroke: "#f57c00", width: 2});
  }
  return {x, y, cell, L, H, columns, groups, width: H ? columns[H - 1] + cell - x : 0};
}

/** The head under canvas x in a grid drawn by drawGrid (gaps between key/value groups hit nothing), or -1. */
export function headAt(g, x) {
  return g.columns.findIndex((cx) => x >= cx && x < cx + g.cell);
}

export class HeadGrid extends CanvasView {
  static id = "heads";
  static title = "Heads";
  static depends = ["data", "run", "example", "step", "metric", "heads", "detail"];
  static slot = "side";

  constructor(app) {
    super(app, {fileStem: () => app.stem(`heads-${app.state.metric}`)});
    this.metric = select(app.colourBy.map((m) => [m.name, m.label]), app.state.metric, (metric) => app.store.set({metric}),
      {"aria-label": "Head metric", "data-control": "metric"});
    this.clearButton = el("button", {class: "af-btn", text: "All heads", title: "Clear the head selection (Esc)",
      onclick: () => app.store.set({heads: ""})});
    this.panel.controls.append(el("label", {class: "af-ctl"}, ["colour by ", this.metric]), this.clearButton);
  }

  values() {
    return this.data?.metrics?.[this.app.state.metric] ?? null;
  }

  cellSize(width) {
    const H = this.app.heads;
    const groups = kvGroups(this.app.kvHeads, H);
    const spare = groups ? (groups.length - 1) * groupGap(36) : 0;
    return Math.max(8, Math.min(36, Math.floor((width - LEFT - 20 - spare) / Math.max(1, H))));
  }

  /** Extra height under the grid for the key/value brackets. */
  groupRow() {
    return kvGroups(this.app.kvHeads, this.app.heads) ? GROUP_ROW : 0;
  }

  size(width) {
    const cell = this.cellSize(width);
    return {width, height: TOP + this.app.layers * cell + 24 + 76 + this.groupRow()};
  }

  colorFor(values) {
    const metric = this.app.headMetric(this.app.state.metric);
    if (metric.categorical) return {color: (v) => CATEGORICAL[v % CATEGORICAL.length], range: null};
    const flat = values.flat().filter(Number.isFinite);
    const lo = metric.from_zero ? 0 : Math.min(0, ...flat);
    const hi = Math.max(lo + 1e-3, ...flat); // a flat grid keeps a readable scale
    return {color: (v) => css(sequential((v - lo) / (hi - lo))), range: [lo, hi]};
  }

  draw(p, {width}) {
    const {app} = this;
    const values = this.values();
    const cell = this.cellSize(width);
    const {color, range} = this.colorFor(values);
    this.geom = drawGrid(p, LEFT, TOP, cell, values, color, {selected: headSet(app.state), detail: app.detailHead,
      kvHeads: app.kvHeads});
    const ly = TOP + app.layers * cell + 34 + this.groupRow();
    if (range) {
      const label = app.state.metric === "entropy"
        ? `entropy (nats); uniform attention ≈ ${fmt.num(this.data.entropy_baseline)}`
        : app.headMetric(app.state.metric).label;
      colorbar(p, LEFT, ly + 10, Math.min(240, width - LEFT - 20), {min: range[0], max: range[1], label});
    } else {
      const classes = this.data.pattern_classes || [];
      swatches(p, LEFT, ly + 6, classes.map((c, k) => [c, CATEGORICAL[k % CATEGORICAL.length], "box"]), width - LEFT - 10);
    }
    p.rect(LEFT, ly + 44, 10, 10, {stroke: "#212121", width: 2});
    p.text(LEFT + 16, ly + 49, "selected (filters the flow)", {size: 10, color: "#616161", baseline: "middle"});
    p.rect(LEFT + 170, ly + 44, 10, 10, {stroke: "#f57c00", width: 2});
    p.text(LEFT + 186, ly + 49, "in head detail", {size: 10, color: "#616161", baseline: "middle"});
    return this.geom;
  }

  fetch(step) {
    const {app} = this;
    return get("heads", {run: app.state.run, step, example: app.example, stream: app.stream});
  }

  prefetch(step) {
    return this.fetch(step);
  }

  async update() {
    const {app} = this;
    this.metric.value = app.state.metric;
    this.clearButton.disabled = !app.state.heads;
    if (!app.run || !app.probe) return;
    const classifier = Boolean(app.probe.predictions);
    for (const option of this.metric.options) {
      option.disabled = !classifier && app.headMetric(option.value).needs_classification_head;
    }
    if (!(await this.load(() => this.fetch(app.step), "Head metrics are unavailable."))) return;
    const values = this.values();
    const metric = app.headMetric(app.state.metric);
    if (!values && this.data.needs_full_rows?.includes(app.state.metric)) {
      this.panel.showMessage("info", `${metric.label} needs full attention rows.`,
        app.clsOnlyNotice(`${metric.label} and the other measures of where heads look`));
      return;
    }
    const groups = kvGroups(app.kvHeads, app.heads);
    this.panel.setNote(groups ? `Grouped-query attention: the ${app.heads} heads share ${groups.length} key/value heads, ` +
      `${app.heads / groups.length} each (bracketed KV0…KV${groups.length - 1} under the grid).` : "");
    if (!values) {
      this.panel.showMessage("info", `No ${metric.label} for this run.`, metric.missing);
      return;
    }
    this.panel.paint();
  }

  hitTest(x, y) {
    const g = this.geom;
    if (!g) return null;
    const h = headAt(g, x);
    const row = Math.floor((y - g.y) / g.cell);
    if (h < 0 || h >= g.H || row < 0 || row >= g.L) return null;
    return {l: g.L - 1 - row, h};
  }

  onPick(hit, e) {
    const key = `${hit.l}:${hit.h}`;
    const heads = headSet(this.app.state);
    if (e.shiftKey || e.ctrlKey || e.metaKey) {
      if (heads.has(key)) heads.delete(key);
      else heads.add(key);
    } else if (heads.size === 1 && heads.has(key)) {
      heads.clear();
    } else {
      heads.clear();
      heads.add(key);
    }
    this.app.store.set({heads: [...heads].join(","), detail: key});
  }

  describe(hit) {
    if (!this.data) return null;
    const m = this.data.metrics;
    const kv = this.app.kvHeads?.[hit.h];
    const lines = [`layer ${hit.l}, head ${hit.h}${kv === undefined ? "" : ` (key/value head ${kv})`}`];
    for (const metric of this.app.colourBy) {
      if (!m[metric.name]) continue;
      const v = m[metric.name][hit.l]?.[hit.h];
      const text = metric.categorical ? this.data.pattern_classes?.[v] ?? v : fmt.num(v);
      lines.push(`${metric.label}: ${text}${metric.unit ? ` ${metric.unit}` : ""}`);
    }
    lines.push("click: select · shift-click: add to selection");
    return lines;
  }
}

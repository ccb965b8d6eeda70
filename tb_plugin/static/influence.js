// View 6: per input token, the flow or rollout from the source token, pre-trained vs current, as paired bars.

import {get} from "./api.js";
import {OVERLAY} from "./colormaps.js";
import {fmt} from "./dom.js";
import {swatches} from "./legend.js";
import {CanvasView} from "./panel.js";
import {fitText} from "./painter.js";

const LEFT = 52;
const TOP = 16;
const PLOT = 150;

export class TokenInfluence extends CanvasView {
  constructor(app) {
    super(app, {id: "influence", title: "Token influence", fileStem: () => app.stem("influence")});
  }

  async values(step) {
    const {app} = this;
    const s = app.state;
    const source = s.source >= 0 ? s.source : null;
    const base = {run: s.run, example: app.example, step, stream: app.stream, heads: app.flowHeads};
    if (s.method === "flow") return (await get("flow", {...base, method: "flow", source})).values;
    const rollout = await get("flow", {...base, method: "rollout", residual: 1}, {kind: "tensor"});
    const [L, T] = rollout.shape;
    const layer = s.layer >= 0 ? s.layer : L - 1;
    const src = source ?? (app.run.classification_position === "last" ? T - 1 : 0);
    return Array.from(rollout.values.subarray((layer * T + src) * T, (layer * T + src + 1) * T));
  }

  prefetch(step) {
    return this.values(step);
  }

  async update() {
    const {app} = this;
    if (!app.run || !app.probe) return;
    const request = async () => {
      const [pre, cur] = await Promise.all([this.values(app.preStep), this.values(app.step)]);
      return {pre, cur, tokens: app.tokens, step: app.step, preStep: app.preStep,
        what: app.state.method === "flow" ? "max-flow" : "rollout"};
    };
    if (!(await this.load(request, "Token influence is unavailable."))) return;
    const s = app.state;
    const src = s.source >= 0 ? `token ${s.source} at layer ${s.layer >= 0 ? s.layer : app.layers - 1}` : "the classification token";
    this.panel.setNote(`${this.data.what === "max-flow" ? "Max-flow" : "Rollout"} from ${src} to each input token` +
      (s.method === "raw" ? " (raw attention has no per-token total; rollout shown)." : "."));
    this.panel.paint();
  }

  geometry(width) {
    const T = this.data.tokens.length;
    const group = Math.max(12, (width - LEFT - 12) / T);
    return {T, group, width: LEFT + 12 + group * T, base: TOP + PLOT};
  }

  size(width) {
    if (!this.data) return {width, height: 100};
    const g = this.geometry(width);
    return {width: g.width, height: g.base + 96};
  }

  draw(p, {width}) {
    const {pre, cur, tokens, step, preStep} = this.data;
    const g = this.geometry(width);
    const vMax = Math.max(1e-9, ...pre, ...cur);
    for (const f of [0, 0.5, 1]) {
      const y = g.base - f * PLOT;
      p.line(LEFT, y, g.width - 8, y, {stroke: f ? "#eeeeee" : "#9e9e9e"});
      p.text(LEFT - 6, y, fmt.num(f * vMax), {size: 10, color: "#757575", align: "right", baseline: "middle"});
    }
    const bw = Math.max(2, Math.min(14, (g.group - 4) / 2));
    tokens.forEach((tok, i) => {
      const cx = LEFT + (i + 0.5) * g.group;
      const hp = (pre[i] / vMax) * PLOT;
      const hc = (cur[i] / vMax) * PLOT;
      p.rect(cx - bw, g.base - hp, bw, hp, {fill: OVERLAY.second});
      p.rect(cx, g.base - hc, bw, hc, {fill: OVERLAY.first});
      p.text(cx + 3, g.base + 8, fitText(tok, 60, {size: 10}), {size: 10, rotate: -55, align: "right", color: "#424242"});
    });
    swatches(p, LEFT, g.base + 82, [
      [`pre-trained (step ${preStep})`, OVERLAY.second, "box"],
      [`step ${step}`, OVERLAY.first, "box"],
    ]);
    this.geom = g;
  }

  onHover(e) {
    const g = this.geom;
    if (!g) return;
    const rect = this.panel.canvas.getBoundingClientRect();
    const i = Math.floor((e.clientX - rect.left - LEFT) / g.group);
    if (i < 0 || i >= g.T) return this.app.tooltip.hide();
    const {pre, cur, tokens, step, preStep, what} = this.data;
    this.app.tooltip.show(e.clientX, e.clientY, [
      `${tokens[i]} (position ${i})`,
      `${what}, pre-trained (step ${preStep}): ${fmt.num(pre[i], 4)}`,
      `${what}, step ${step}: ${fmt.num(cur[i], 4)}`,
    ]);
  }
}

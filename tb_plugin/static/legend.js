// Legends drawn through a painter, so they appear in exports too.

import {diverging, sequential} from "./colormaps.js";
import {fmt} from "./dom.js";

const GREY = "#616161";

/** A horizontal colour bar for the sequential (kind "seq") or diverging (kind "div") map. */
export function colorbar(p, x, y, width, {kind = "seq", min = 0, max = 1, label = ""} = {}) {
  const steps = Math.max(2, Math.floor(width));
  const map = kind === "div" ? (t) => diverging(2 * t - 1) : sequential;
  p.cells(x, y, width / steps, 8, 1, steps, (_i, j) => map(j / (steps - 1)));
  p.rect(x, y, width, 8, {stroke: "#bdbdbd", width: 0.5});
  p.text(x, y + 19, fmt.num(min), {size: 10, color: GREY});
  if (kind === "div") p.text(x + width / 2, y + 19, "0", {size: 10, color: GREY, align: "center"});
  p.text(x + width, y + 19, fmt.num(max), {size: 10, color: GREY, align: "right"});
  if (label) p.text(x, y - 4, label, {size: 10, color: GREY});
  return y + 22;
}

/** Swatches for categories: items = [[label, cssColour, "line"|"box"], ...]; returns the end x. */
export function swatches(p, x, y, items, maxWidth = Infinity) {
  let cx = x;
  let cy = y;
  for (const [label, color, shape] of items) {
    const w = 18 + p.textWidthOf(label) + 14;
    if (cx > x && cx + w - x > maxWidth) {
      cx = x;
      cy += 16;
    }
    if (shape === "line") p.line(cx, cy, cx + 14, cy, {stroke: color, width: 3});
    else p.rect(cx, cy - 5, 12, 10, {fill: color});
    p.text(cx + 18, cy, label, {size: 10, color: GREY, baseline: "middle"});
    cx += w;
  }
  return cy + 10;
}


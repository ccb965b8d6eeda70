// One drawing interface, two back ends: a canvas for the screen and PNG export, SVG for SVG export.
// Every view draws through it once, so what is exported is exactly what is shown.

import {svgEl} from "./dom.js";

export const FONT = "Roboto, 'Helvetica Neue', Arial, sans-serif";
const measureCtx = document.createElement("canvas").getContext("2d");

function fontString(o) {
  return `${o.weight || 400} ${o.size || 11}px ${o.mono ? "'Roboto Mono', monospace" : FONT}`;
}

let measureFont = null;

export function textWidth(str, o = {}) {
  const font = fontString(o);
  if (font !== measureFont) measureCtx.font = measureFont = font;
  return measureCtx.measureText(String(str)).width;
}

/** Shorten a label to fit maxWidth pixels, with an ellipsis. */
export function fitText(str, maxWidth, o = {}) {
  let s = String(str);
  if (textWidth(s, o) <= maxWidth) return s;
  while (s.length > 1 && textWidth(s + "…", o) > maxWidth) s = s.slice(0, -1);
  return s.length ? s + "…" : "";
}

export class CanvasPainter {
  textWidthOf(str, o = {size: 10}) {
    return textWidth(str, o);
  }

  constructor(canvas, width, height, scale = window.devicePixelRatio || 1) {
    this.canvas = canvas;
    this.font = this.textColor = this.align = this.baseline = null; // text styles as last set (see text())
    this.width = width;
    this.height = height;
    // Resizing a canvas reallocates its pixels and restyling it invalidates the page's layout: a repaint
    // at the same size (every scrub frame) only clears.
    const [w, h] = [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
    if (canvas.width !== w) canvas.width = w;
    if (canvas.height !== h) canvas.height = h;
    if (canvas.style.width !== `${width}px`) canvas.style.width = `${width}px`;
    if (canvas.style.height !== `${height}px`) canvas.style.height = `${height}px`;
    this.ctx = canvas.getContext("2d");
    if (this.ctx.reset) {
      this.ctx.reset(); // a fresh context: cleared, and no state (alpha, smoothing, dash) left from the last paint
    } else {
      this.ctx.setTransform(1, 0, 0, 1, 0, 0);
      this.ctx.clearRect(0, 0, w, h);
    }
    this.ctx.setTransform(scale, 0, 0, scale, 0, 0);
  }

  /** Apply o's alpha, fill and stroke styles around the shape's own fill() and stroke() calls. */
  #fillAndStroke(o, fill, stroke) {
    const c = this.ctx;
    c.globalAlpha = o.alpha ?? 1;
    if (o.fill) {
      c.fillStyle = o.fill;
      this.textColor = null;
      fill();
    }
    if (o.stroke) {
      c.strokeStyle = o.stroke;
      c.lineWidth = o.width || 1;
      stroke();
    }
    c.globalAlpha = 1;
  }

  rect(x, y, w, h, o = {}) {
    const c = this.ctx;
    this.#fillAndStroke(o, () => c.fillRect(x, y, w, h), () => c.strokeRect(x, y, w, h));
  }

  path(points, o = {}) {
    if (points.length < 2) return;
    const c = this.ctx;
    c.beginPath();
    c.moveTo(points[0][0], points[0][1]);
    for (const [x, y] of points.slice(1)) c.lineTo(x, y);
    if (o.close) c.closePath();
    this.#fillAndStroke(o, () => c.fill(), () => {
      c.setLineDash(o.dash || []);
      c.stroke();
      c.setLineDash([]);
    });
  }

  line(x1, y1, x2, y2, o = {}) {
    this.path([[x1, y1], [x2, y2]], o);
  }

  /** A vertical S-curve from (x1, y1) to (x2, y2), for graph edges. */
  curve(x1, y1, x2, y2, o = {}) {
    const c = this.ctx;
    const my = (y1 + y2) / 2;
    c.beginPath();
    c.moveTo(x1, y1);
    c.bezierCurveTo(x1, my, x2, my, x2, y2);
    this.#fillAndStroke({...o, fill: null, stroke: o.stroke || "#000"}, null, () => c.stroke());
  }

  circle(cx, cy, r, o = {}) {
    const c = this.ctx;
    c.beginPath();
    c.arc(cx, cy, r, 0, 2 * Math.PI);
    this.#fillAndStroke(o, () => c.fill(), () => c.stroke());
  }

  text(x, y, str, o = {}) {
    const c = this.ctx;
    // Setting a font parses it (a tenth of a scrub frame's script time at 128 tokens): only when it changes.
    const font = fontString(o);
    if (font !== this.font) c.font = this.font = font;
    // Likewise colours (parsed on every set) and alignment: a label costs its fillText, not its styling.
    const [color, align, baseline] = [o.color || "#212121", o.align || "left", o.baseline || "alphabetic"];
    if (color !== this.textColor) c.fillStyle = this.textColor = color;
    if (align !== this.align) c.textAlign = this.align = align;
    if (baseline !== this.baseline) c.textBaseline = this.baseline = baseline;
    if (!o.rotate) {
      c.fillText(String(str), x, y);
      return;
    }
    c.save();
    c.translate(x, y);
    c.rotate((o.rotate * Math.PI) / 180);
    c.fillText(String(str), 0, 0);
    c.restore();
  }

  /** A grid of nRows x nCols cells; color(i, j) returns [r, g, b] or null (left blank). */
  cells(x, y, cellW, cellH, nRows, nCols, color) {
    const img = new ImageData(nCols, nRows);
    for (let i = 0; i < nRows; i++) {
      for (let j = 0; j < nCols; j++) {
        const rgb = color(i, j);
        if (!rgb) continue;
        const k = 4 * (i * nCols + j);
        img.data[k] = rgb[0];
        img.data[k + 1] = rgb[1];
        img.data[k + 2] = rgb[2];
        img.data[k + 3] = 255;
      }
    }
    const tile = document.createElement("canvas");
    tile.width = nCols;
    tile.height = nRows;
    tile.getContext("2d").putImageData(img, 0, 0);
    this.ctx.imageSmoothingEnabled = false;
    this.ctx.drawImage(tile, x, y, cellW * nCols, cellH * nRows);
  }
}

const r2 = (v) => Math.round(v * 100) / 100;

export class SvgPainter {
  textWidthOf(str, o = {size: 10}) {
    return textWidth(str, o);
  }

  constructor(width, height) {
    this.width = width;
    this.height = height;
    this.root = svgEl("svg", {
      xmlns: "http://www.w3.org/2000/svg",
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      "font-family": FONT,
    });
    this.root.append(svgEl("rect", {x: 0, y: 0, width, height, fill: "#ffffff"}));
  }

  paint(o) {
    return {
      fill: o.fill || "none",
      stroke: o.stroke || null,
      "stroke-width": o.stroke ? o.width || 1 : null,
      "stroke-dasharray": o.dash ? o.dash.join(" ") : null,
      opacity: o.alpha !== undefined && o.alpha !== 1 ? r2(o.alpha) : null,
    };
  }

  rect(x, y, w, h, o = {}) {
    this.root.append(svgEl("rect", {x: r2(x), y: r2(y), width: r2(w), height: r2(h), ...this.paint(o)}));
  }

  path(points, o = {}) {
    if (points.length < 2) return;
    const d = points.map(([x, y], k) => `${k ? "L" : "M"}${r2(x)} ${r2(y)}`).join("") + (o.close ? "Z" : "");
    this.root.append(svgEl("path", {d, ...this.paint(o)}));
  }

  line(x1, y1, x2, y2, o = {}) {
    this.path([[x1, y1], [x2, y2]], o);
  }

  curve(x1, y1, x2, y2, o = {}) {
    const my = r2((y1 + y2) / 2);
    const d = `M${r2(x1)} ${r2(y1)}C${r2(x1)} ${my} ${r2(x2)} ${my} ${r2(x2)} ${r2(y2)}`;
    this.root.append(svgEl("path", {d, ...this.paint({stroke: "#000", ...o, fill: null})}));
  }

  circle(cx, cy, r, o = {}) {
    this.root.append(svgEl("circle", {cx: r2(cx), cy: r2(cy), r: r2(r), ...this.paint(o)}));
  }

  text(x, y, str, o = {}) {
    const anchor = {left: "start", center: "middle", right: "end"}[o.align || "left"];
    const baseline = {middle: "central", top: "hanging", alphabetic: null, bottom: "text-after-edge"}[
      o.baseline || "alphabetic"
    ];
    // textContent: SVG export escapes data exactly as the DOM does.
    this.root.append(
      svgEl("text", {
        x: r2(x),
        y: r2(y),
        "font-size": o.size || 11,
        "font-weight": o.weight || null,
        "font-family": o.mono ? "'Roboto Mono', monospace" : null,
        fill: o.color || "#212121",
        "text-anchor": anchor,
        "dominant-baseline": baseline,
        transform: o.rotate ? `rotate(${o.rotate} ${r2(x)} ${r2(y)})` : null,
        text: str,
      }),
    );
  }

  cells(x, y, cellW, cellH, nRows, nCols, color) {
    const g = svgEl("g", {"shape-rendering": "crispEdges"});
    for (let i = 0; i < nRows; i++) {
      for (let j = 0; j < nCols; j++) {
        const rgb = color(i, j);
        if (!rgb) continue;
        g.append(svgEl("rect", {
          x: r2(x + j * cellW), y: r2(y + i * cellH), width: r2(cellW), height: r2(cellH),
          fill: `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`,
        }));
      }
    }
    this.root.append(g);
  }

  serialize() {
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(this.root);
  }
}

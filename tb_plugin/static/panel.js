// A card that holds one view: title, controls, a canvas drawn through a painter, PNG/SVG export.

import {clear, download, el, message} from "./dom.js";
import {CanvasPainter, SvgPainter} from "./painter.js";

export class Panel {
  /**
   * view: {size(width) -> {width, height}, draw(painter, size)}; name: used in export file names.
   */
  constructor({id, title, view, name, fileStem}) {
    this.view = view;
    this.name = name || id;
    this.fileStem = fileStem || (() => this.name);
    this.canvas = el("canvas", {class: "af-canvas", "data-view": id});
    this.pngButton = exportButton("png", () => this.exportPng());
    this.svgButton = exportButton("svg", () => this.exportSvg());
    this.controls = el("div", {class: "af-controls"});
    this.note = el("div", {class: "af-note"});
    this.body = el("div", {class: "af-body"});
    this.scroller = el("div", {class: "af-scroll"}, [this.canvas]);
    this.root = el("section", {class: "af-card", id: `af-${id}`, "data-panel": id}, [
      el("header", {class: "af-card-head"}, [
        el("h2", {class: "af-card-title", text: title}),
        this.controls,
        el("div", {class: "af-export-group"}, [this.pngButton, this.svgButton]),
      ]),
      this.note,
      this.body,
    ]);
    this.ready = false;
    this.showMessage("info", "Loading…");
    // The width a paint fits, read when layout is fresh anyway: reading clientWidth in paint() after a view
    // changed the DOM forces a layout per card and frame (a third of a scrub frame's script time at 128 tokens).
    this.width = 0;
    new ResizeObserver(() => {
      const width = this.scroller.clientWidth;
      if (!width || width === this.width) return;
      const repaint = this.width && this.ready;
      this.width = width;
      if (repaint) this.paint();
    }).observe(this.scroller);
  }

  setNote(text) {
    this.note.textContent = text || "";
    this.note.hidden = !text;
  }

  showMessage(kind, title, detail) {
    this.ready = false;
    clear(this.body).append(message(kind, title, detail));
    this.pngButton.disabled = this.svgButton.disabled = true;
  }

  /** Draw the view on screen; the layout it returns is kept for hit-testing. */
  paint() {
    if (!this.body.contains(this.scroller)) clear(this.body).append(this.scroller);
    if (!this.width) this.width = this.scroller.clientWidth; // the first paint measures; later ones reuse it
    const available = Math.max(200, this.width || 600); // inside the body's padding: what shows unscrolled
    const size = this.view.size(available);
    const painter = new CanvasPainter(this.canvas, size.width, size.height);
    this.layout = this.view.draw(painter, size) || null;
    this.ready = true;
    this.pngButton.disabled = this.svgButton.disabled = false;
    return this.layout;
  }

  exportPng() {
    if (this.ready) exportPng(this.view, parseFloat(this.canvas.style.width), this.fileStem());
  }

  exportSvg() {
    if (this.ready) exportSvg(this.view, parseFloat(this.canvas.style.width), this.fileStem());
  }
}

/** A "PNG" or "SVG" download button; kind is "png" or "svg". */
export function exportButton(kind, onclick) {
  const text = kind.toUpperCase();
  return el("button", {class: "af-btn af-export", title: `Download as ${text}`, text, "data-export": kind, onclick});
}

/** Draw a view again at twice the resolution on a white ground and download it as PNG. */
export function exportPng(view, width, stem) {
  const size = view.size(width);
  const canvas = document.createElement("canvas");
  const painter = new CanvasPainter(canvas, size.width, size.height, 2);
  painter.rect(0, 0, size.width, size.height, {fill: "#ffffff"});
  view.draw(painter, size);
  // Encoded synchronously, so the download starts inside the click's user activation.
  const bytes = atob(canvas.toDataURL("image/png").split(",")[1]);
  const data = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) data[i] = bytes.charCodeAt(i);
  download(new Blob([data], {type: "image/png"}), `${stem}.png`);
}

/** Draw a view through the SVG painter and download it. */
export function exportSvg(view, width, stem) {
  const size = view.size(width);
  const painter = new SvgPainter(size.width, size.height);
  view.draw(painter, size);
  download(new Blob([painter.serialize()], {type: "image/svg+xml"}), `${stem}.svg`);
}

/** A floating tooltip that only ever holds text. */
export class Tooltip {
  constructor() {
    this.node = el("div", {class: "af-tooltip", role: "tooltip", hidden: true});
    document.body.append(this.node);
  }

  show(clientX, clientY, lines) {
    clear(this.node);
    for (const [k, line] of lines.entries()) this.node.append(el("div", {class: k ? "" : "af-tt-head", text: line}));
    this.node.hidden = false;
    const box = this.node.getBoundingClientRect();
    const x = Math.min(clientX + 14, window.innerWidth - box.width - 4);
    const y = clientY + 14 + box.height > window.innerHeight ? clientY - box.height - 8 : clientY + 14;
    this.node.style.left = `${Math.max(4, x)}px`;
    this.node.style.top = `${Math.max(4, y)}px`;
  }

  hide() {
    this.node.hidden = true;
  }
}

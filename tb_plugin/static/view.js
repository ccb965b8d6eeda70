// The view contract. Every card of the tab is a CanvasView subclass, in its own file, listed once in
// views.js; the app builds, lays out, updates, prefetches and hit-tests every view through this class.
//
// A view declares, as static fields:
//   id       its key in app.views, and its card's data-panel and canvas's data-view
//   title    the card's title
//   depends  the state keys whose change updates it ("data": a run's probe and summary were (re)loaded)
//   slot     where it sits: "wide" (a full-width row), "main" (the left column), "side" (stacked right of "main")
//   needsFullRows  optional: what of the view needs every attention row; a run recorded with rows="cls" then
//            gets a notice saying so instead of the view (app.refusesView)
// and implements:
//   update(changed)        fetch through this.load(), then this.panel.paint() or this.panel.showMessage()
//   size(width)            -> {width, height} of the drawing for the available width
//   draw(painter, size)    all of the drawing, through the painter: screen, PNG and SVG come from this one call;
//                          what it returns is kept as this.panel.layout
//   prefetch(step)         optional: fetch what update() would at a neighbouring step (the api cache keeps it)
//   hitTest(x, y, width)   optional: what lies under the canvas point (x, y) (CSS pixels), or null
//   onPick(hit, event)     optional: a click on a hit
//   describe(hit)          optional: the tooltip's lines for a hovered hit (null: no tooltip)

import {ApiError} from "./api.js";
import {el} from "./dom.js";
import {Panel} from "./panel.js";

export const SLOTS = ["wide", "main", "side"];

export class CanvasView {
  /** panel: Panel options (fileStem; id and title default to the static fields). */
  constructor(app, panel = {}) {
    const {id, title} = this.constructor;
    this.app = app;
    this.panel = new Panel({id, title, ...panel, view: this});
    this.data = null;
    this.generation = 0;
    if (this.hitTest) {
      const canvas = this.panel.canvas;
      canvas.addEventListener("click", (e) => {
        const hit = this.hitAt(e);
        if (hit && this.onPick) this.onPick(hit, e);
      });
      canvas.addEventListener("mousemove", (e) => {
        const hit = this.hitAt(e);
        const lines = hit && this.describe ? this.describe(hit) : null;
        if (lines) app.tooltip.show(e.clientX, e.clientY, lines);
        else app.tooltip.hide();
      });
      canvas.addEventListener("mouseleave", () => app.tooltip.hide());
    }
  }

  get root() {
    return this.panel.root;
  }

  /** What lies under a mouse event, through hitTest in canvas coordinates; null unless a drawing is shown. */
  hitAt(e) {
    if (!this.panel.ready) return null;
    const rect = this.panel.canvas.getBoundingClientRect();
    return this.hitTest(e.clientX - rect.left, e.clientY - rect.top, rect.width);
  }

  /**
   * Set this.data to what fetch() resolves to, unless a later load started meanwhile.
   * Resolves true when this.data is fresh; on failure the panel shows `failure` and the error.
   */
  async load(fetch, failure) {
    const gen = ++this.generation;
    try {
      const data = await fetch();
      if (gen !== this.generation) return false;
      this.data = data;
      return true;
    } catch (err) {
      if (gen === this.generation && err instanceof ApiError && err.needsFullRows) {
        this.panel.showMessage("info", `${this.constructor.title} needs full attention rows.`, err.message);
      } else if (gen === this.generation) {
        this.panel.showMessage(err instanceof ApiError && err.status < 500 ? "warn" : "error", failure, err.message);
      }
      return false;
    }
  }
}

/** Check a view class against the contract; the message names the view and what is missing. */
export function checkView(View) {
  const name = View?.name || String(View);
  if (!(View?.prototype instanceof CanvasView)) throw new TypeError(`${name} must extend CanvasView (view.js)`);
  for (const field of ["id", "title"]) {
    if (typeof View[field] !== "string" || !View[field]) throw new TypeError(`${name}.${field} must be a non-empty string`);
  }
  if (!Array.isArray(View.depends) || !View.depends.length) throw new TypeError(`${name}.depends must list state keys`);
  if (!SLOTS.includes(View.slot)) throw new TypeError(`${name}.slot must be one of ${SLOTS.join(", ")}, got ${View.slot}`);
  for (const method of ["update", "size", "draw"]) {
    if (typeof View.prototype[method] !== "function") throw new TypeError(`${name} must implement ${method}()`);
  }
  return View;
}

/** The grid's children for views in order: "wide" rows, "main" cells, and the "side" views stacked together. */
export function arrange(views) {
  const children = [];
  let stack = null;
  for (const view of views) {
    const slot = view.constructor.slot;
    if (slot === "wide") children.push(el("div", {class: "af-span"}, [view.root]));
    else if (slot === "main") children.push(view.root);
    else {
      if (!stack) children.push(stack = el("div", {class: "af-stack"}));
      stack.append(view.root);
    }
  }
  return children;
}

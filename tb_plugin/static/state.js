// The whole view state, mirrored into the URL hash so that a copied link reopens the same view.
//
// Inside TensorBoard the plugin runs in a same-origin iframe, so the state goes into the top
// page's hash next to TensorBoard's own tab key: "#attnflows&af=<encoded state>". When the page is
// opened on its own (no parent), the frame's own hash is used.

export const DEFAULTS = Object.freeze({
  run: "",
  other: "", // second run, for run comparison and the run overlay
  example: 0,
  step: -1, // -1: the latest step
  method: "raw", // a flow method served at /registries
  tau: 0.1,
  source: -1, // -1: the classification token
  layer: -1, // layer the trace starts from; -1: the deepest
  heads: "", // "l:h,l:h": selected heads; empty: all heads
  detail: "", // "l:h": head shown in the head detail
  metric: "change", // a colour-by option served at /registries
  overlay: "none", // one of OVERLAYS
  q: "", // search over probe texts
  targets: "auto", // hidden attention targets, served at /registries (display); auto: the run's default
  units: "auto", // tokens or words, served at /registries (display); auto: the run's default
  edges: "head", // how the per-head graph colours its edges, served at /registries (display)
});

// The flow view's comparison overlays: a view option, not an analysis, so it is listed here.
export const OVERLAYS = [["none", "no overlay"], ["pretrained", "pre-trained vs current"], ["run", "run A vs run B"]];

const NUMBERS = new Set(["example", "step", "tau", "source", "layer"]);
const KEY = "af";

function hostWindow() {
  try {
    if (window.parent !== window && window.parent.location.href) return window.parent;
  } catch {
    // Cross-origin parent: fall back to this frame's own hash.
  }
  return window;
}

function hashParams(win) {
  const params = new Map();
  const raw = win.location.hash.replace(/^#/, "");
  for (const part of raw.split("&")) {
    if (!part) continue;
    const eq = part.indexOf("=");
    if (eq < 0) params.set(part, null);
    else params.set(decodeURIComponent(part.slice(0, eq)), decodeURIComponent(part.slice(eq + 1)));
  }
  return params;
}

/**
 * The state in `text`, with defaults for what is missing; a value that is not among `choices`
 * ({method: [names], metric: [names]}, from /registries) or not an overlay falls back to its default.
 */
export function decode(text, choices = {}) {
  const state = {...DEFAULTS};
  const params = new URLSearchParams(text || "");
  for (const key of Object.keys(DEFAULTS)) {
    if (!params.has(key)) continue;
    const value = params.get(key);
    if (NUMBERS.has(key)) {
      const num = Number(value);
      if (Number.isFinite(num)) state[key] = num;
    } else {
      state[key] = value;
    }
  }
  state.tau = Math.min(1, Math.max(0, state.tau));
  const allowed = {...choices, overlay: OVERLAYS.map(([name]) => name)};
  for (const [key, names] of Object.entries(allowed)) {
    if (!names.includes(state[key])) state[key] = DEFAULTS[key];
  }
  return state;
}

export function encode(state) {
  const params = new URLSearchParams();
  for (const [key, def] of Object.entries(DEFAULTS)) {
    if (state[key] !== def && state[key] !== undefined) params.set(key, String(state[key]));
  }
  return params.toString();
}

export function readHash(choices) {
  return decode(hashParams(hostWindow()).get(KEY) || "", choices);
}

export function writeHash(state) {
  const win = hostWindow();
  const params = hashParams(win);
  const text = encode(state);
  if (text) params.set(KEY, text);
  else params.delete(KEY);
  const parts = [];
  for (const [key, value] of params) {
    parts.push(value === null ? key : `${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  }
  const url = new URL(win.location.href);
  url.hash = parts.join("&");
  if (url.href !== win.location.href) win.history.replaceState(win.history.state, "", url.href);
}

/** The selected heads as a Set of "l:h" keys. */
export function headSet(state) {
  return new Set(state.heads ? state.heads.split(",").filter(Boolean) : []);
}

/** A tiny observable store: set() merges, notifies listeners with the changed keys, syncs the hash. */
export class Store {
  constructor(initial) {
    this.state = {...initial};
    this.listeners = [];
    this.hashTimer = null;
  }

  set(patch) {
    const changed = Object.keys(patch).filter((k) => this.state[k] !== patch[k]);
    if (!changed.length) return;
    Object.assign(this.state, patch);
    // The URL follows right after the views start updating, once per burst of changes: rewriting the
    // host page's URL takes tens of milliseconds there, which a scrub frame should not wait for.
    clearTimeout(this.hashTimer);
    this.hashTimer = setTimeout(() => this.flushHash(), 0);
    for (const fn of this.listeners) fn(new Set(changed), this.state);
  }

  /** Write the URL now if a change has not been written yet. */
  flushHash() {
    if (this.hashTimer === null) return;
    clearTimeout(this.hashTimer);
    this.hashTimer = null;
    writeHash(this.state);
  }

  subscribe(fn) {
    this.listeners.push(fn);
  }
}

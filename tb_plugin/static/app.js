// The application: loads runs, holds the view state, and updates the views when it changes.

import {get, forget} from "./api.js";
import {clear, el, message} from "./dom.js";
import {POLL_MS} from "./limits.js";
import {Tooltip} from "./panel.js";
import {Picker} from "./picker.js";
import {DisplayBar, displayChoices, resolveDisplay} from "./display.js";
import {DEFAULTS, Store, headSet, readHash, writeHash} from "./state.js";
import {arrange} from "./view.js";
import {VIEWS} from "./views.js";

class App {
  /** registries: /registries, the flow methods and head metrics the menus offer. */
  constructor(root, registries) {
    this.root = root;
    this.registries = registries;
    this.colourBy = registries.colour_by.map((name) => this.headMetric(name));
    this.store = new Store(readHash({method: registries.flow_methods.map((m) => m.name), metric: registries.colour_by,
      ...displayChoices(registries)}));
    this.runs = [];
    this.probe = null;
    this.summary = null;
    this.tooltip = new Tooltip();
    this.pending = 0;
    this.renders = 0;
    this.settledWaiters = [];
    this.running = new Map();
    this.queued = new Map();
    this.prefetchGeneration = 0;
    this.prefetchTimer = null;
    this.picker = new Picker(this);
    this.views = Object.fromEntries(VIEWS.map((View) => [View.id, new View(this)]));
    this.banners = el("div", {class: "af-banners"});
    this.grid = el("div", {class: "af-grid"}, arrange(Object.values(this.views)));
    this.displayBar = new DisplayBar(this);
    this.main = el("main", {class: "af-main"}, [this.banners, this.displayBar.root, this.grid]);
    root.append(this.picker.root, this.main);
    this.store.subscribe((changed) => this.onChange(changed));
    document.addEventListener("keydown", (e) => this.onKey(e));
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => this.repaint(), 120);
    });
  }

  get state() {
    return this.store.state;
  }

  /** The registry entry of a flow method (from /registries). */
  flowMethod(name) {
    return this.registries.flow_methods.find((m) => m.name === name) || this.registries.flow_methods[0];
  }

  /** The display options sent to the routes (targets, units), "auto" resolved for the current run. */
  get display() {
    return resolveDisplay(this.state, this.run);
  }

  /** The registry entry of a head metric (from /registries). */
  headMetric(name) {
    return this.registries.head_metrics.find((m) => m.name === name);
  }

  get run() {
    return this.runs.find((r) => r.run === this.state.run) || null;
  }

  get otherRun() {
    const other = this.runs.find((r) => r.run === this.state.other && r.run !== this.state.run);
    return other && other.probe_id === this.run?.probe_id ? other : null;
  }

  get steps() {
    return this.summary?.steps || this.run?.steps || [];
  }

  nearestStep(steps, step) {
    if (!steps.length) return null;
    if (step < 0) return steps[steps.length - 1];
    return steps.reduce((best, s) => (Math.abs(s - step) < Math.abs(best - step) ? s : best), steps[0]);
  }

  /** The step shown: the one in the state, or the nearest snapshot; -1 in the state means the latest. */
  get step() {
    return this.nearestStep(this.steps, this.state.step);
  }

  /** The pre-trained reference: the first snapshot (step 0 when the recorder ran before training). */
  get preStep() {
    return this.steps[0];
  }

  get stream() {
    return this.summary?.stream || Object.keys(this.run?.streams || {})[0] || null;
  }

  get layers() {
    return this.run?.streams?.[this.stream]?.layers || 0;
  }

  get heads() {
    return this.run?.streams?.[this.stream]?.heads || 0;
  }

  /** "all", or "cls" when the run recorded only the classification token's row (docs/scaling.md). */
  get rowsRecorded() {
    return this.run?.streams?.[this.stream]?.rows || "all";
  }

  /** The key/value head of each head (grouped-query attention), or null when each head has its own. */
  get kvHeads() {
    const kv = this.run?.streams?.[this.stream]?.kv_heads;
    return Array.isArray(kv) && kv.length === this.heads ? kv : null;
  }

  /** Why `what` cannot be shown for a run that recorded only the classification token's row. */
  clsOnlyNotice(what) {
    return `This run recorded only the classification token's row (rows='cls'), and ${what} need every row: ` +
      "record with rows='all' to see them.";
  }

  get example() {
    const n = this.probe?.examples.length || 0;
    return Math.min(Math.max(0, this.state.example), Math.max(0, n - 1));
  }

  get tokens() {
    return this.probe?.examples[this.example]?.tokens || [];
  }

  /** The head in the detail view: the chosen one, else the one that changed most at this step. */
  get detailHead() {
    return this.detailHeadAt(this.step);
  }

  /** The head the detail view shows at `step` (what a prefetch of that step asks for). */
  detailHeadAt(step) {
    if (this.state.detail) return this.state.detail;
    const selected = [...headSet(this.state)];
    if (selected.length) return selected[0];
    const k = this.summary?.steps.indexOf(step) ?? -1;
    const change = k >= 0 ? this.summary.head_change?.[k] : null;
    let best = this.layers ? `${this.layers - 1}:0` : "";
    let bestValue = -Infinity;
    (change || []).forEach((row, l) => (row || []).forEach((v, h) => {
      if (Number.isFinite(v) && v > bestValue) [best, bestValue] = [`${l}:${h}`, v];
    }));
    return best;
  }

  /**
   * The `heads` query for the flow routes: in a layer with selected heads only those, in any other
   * layer all heads (the routes need at least one head per layer); null when nothing is selected.
   */
  get flowHeads() {
    const selected = [...headSet(this.state)].map((k) => k.split(":").map(Number))
      .filter(([l, h]) => l >= 0 && l < this.layers && h >= 0 && h < this.heads);
    if (!selected.length) return null;
    const pairs = [];
    for (let l = 0; l < this.layers; l++) {
      const mine = selected.filter(([sl]) => sl === l).map(([, h]) => h).sort((a, b) => a - b);
      for (const h of mine.length ? mine : [...Array(this.heads).keys()]) pairs.push(`${l}:${h}`);
    }
    return pairs.join(",");
  }

  stem(view) {
    return `attnflows-${view}-${this.state.run}-step${this.step}-ex${this.example}`;
  }

  // --- loading ---------------------------------------------------------------------------------

  async start() {
    await this.track(this.loadRuns());
    setInterval(() => this.poll(), POLL_MS);
  }

  async loadRuns() {
    let body;
    try {
      body = await get("runs", {}, {fresh: true});
    } catch (err) {
      this.showFatal("error", "Could not list the runs.", err.message);
      return;
    }
    this.runs = body.runs || [];
    this.skipped = body.skipped || [];
    if (!this.runs.length) {
      this.renderBanners();
      this.picker.renderRuns();
      this.showFatal("info", "No runs yet.",
        "Attention snapshots appear here once a run records them: attach attnflows' AttentionRecorder (or its Lightning / " +
        "Hugging Face callback) to a training run that writes under this TensorBoard's --logdir.");
      return;
    }
    this.grid.hidden = false;
    if (!this.run) {
      this.store.state.run = this.runs[0].run;
      writeHash(this.state);
    }
    await this.loadRun();
  }

  async loadRun({fresh = true} = {}) {
    const name = this.state.run;
    this.probe = null;
    this.summary = null;
    this.renderBanners();
    this.picker.update(new Set(["runs", "run"]));
    try {
      const [probe, summary] = await Promise.all([
        get("probe", {run: name}, {fresh}),
        get("summary", {run: name}, {fresh}),
      ]);
      if (name !== this.state.run) return;
      this.probe = probe;
      this.summary = summary;
    } catch (err) {
      if (name !== this.state.run) return;
      for (const view of Object.values(this.views)) view.panel.showMessage("error", `Could not load ${name}.`, err.message);
      return;
    }
    this.refresh(new Set(["data", ...Object.keys(DEFAULTS)]));
  }

  async poll() {
    if (document.hidden) return;
    const run = this.run;
    if (this.runs.length && run?.status !== "running") return;
    let body;
    try {
      body = await get("runs", {}, {fresh: true});
    } catch {
      return;
    }
    const before = JSON.stringify(this.runs);
    this.runs = body.runs || [];
    this.skipped = body.skipped || [];
    if (JSON.stringify(this.runs) === before) return;
    if (!this.run && this.runs.length) {
      this.store.state.run = this.runs[0].run;
      clear(this.main).append(this.banners, this.displayBar.root, this.grid);
    }
    forget();
    await this.track(this.loadRun());
  }

  showFatal(kind, title, detail) {
    clear(this.main).append(this.banners, message(kind, title, detail), this.grid);
    this.grid.hidden = true;
  }

  renderBanners() {
    clear(this.banners);
    const add = (kind, title, detail) => this.banners.append(message(kind, title, detail));
    if (this.skipped?.length) {
      add("warn", `${this.skipped.length} run${this.skipped.length === 1 ? "" : "s"} could not be opened.`,
        this.skipped.map((s) => `${s.run}: ${s.reason}`).join("; "));
    }
    const run = this.run;
    if (!run) return;
    if (run.status === "running") {
      add("info", "This run is still training.", `Showing the ${run.steps.length} snapshots written so far; new ones appear as the recorder writes them.`);
    } else if (run.status === "failed") {
      add("error", "This run failed.", "The snapshots written before the failure are intact and shown below.");
    } else if (run.status === "interrupted") {
      add("warn", "This run was interrupted.", "The snapshots written before the interruption are shown below.");
    } else if (run.status === "unknown") {
      add("warn", "This run's status is unknown.", "It may still be training, or it stopped without closing its recorder.");
    }
    if (run.problems?.length) {
      add("warn", `Skipped ${run.problems.length} snapshot file${run.problems.length === 1 ? "" : "s"} that could not be read.`,
        run.problems.map((p) => `${p.file}: ${p.reason}`).join("; "));
    }
    if (run.notes?.length) {
      add("warn", `${run.notes.length === 1 ? "A note" : "Notes"} on how this run was recorded.`, run.notes.join(" "));
    }
    const reduction = run.streams?.[this.stream];
    if (reduction?.rows === "cls") {
      add("info", "This run recorded only the classification token's attention row (rows='cls').",
        "The timeline, the head change and entropy, and the run comparison use that row. The flow, token influence, " +
        "head detail, edge lifetimes, the aggregate and the flip explanation need every row: record with rows='all' to see them.");
    } else if (reduction?.top_k) {
      add("info", `This run kept the ${reduction.top_k} largest weights of each attention row (top_k=${reduction.top_k}).`,
        `Per-head traces at τ ≥ 1/${reduction.top_k} are exact; averaged heads, rollout and max-flow are approximations ` +
        "that miss the dropped weights. Each view's note says which it shows.");
    }
    if (this.layers === 1) add("info", "This model has one layer.", "Rollout and max-flow then span a single step of attention.");
  }

  // --- updates ---------------------------------------------------------------------------------

  track(promise) {
    this.pending++;
    this.root.dataset.busy = "1";
    return Promise.resolve(promise).finally(() => {
      this.pending--;
      if (!this.pending) {
        this.renders++;
        this.root.dataset.busy = "0";
        this.root.dataset.renders = String(this.renders);
        for (const fn of this.settledWaiters.splice(0)) fn();
      }
    });
  }

  /** Resolves once no load or view update is in flight. */
  settled() {
    this.store.flushHash();
    return this.pending ? new Promise((resolve) => this.settledWaiters.push(resolve)) : Promise.resolve();
  }

  onChange(changed) {
    if (changed.has("run")) {
      this.track(this.loadRun({fresh: false}));
      return;
    }
    this.refresh(changed);
  }

  refresh(changed) {
    this.picker.update(changed);
    this.displayBar.update();
    if (changed.has("data")) this.renderBanners();
    if (!this.probe || !this.summary) return;
    this.prefetchGeneration++;
    const jobs = Object.keys(this.views)
      .filter((name) => this.views[name].constructor.depends.some((k) => changed.has(k)))
      .map((name) => this.updateView(name, changed));
    return this.track(Promise.all(jobs)).then(() => this.schedulePrefetch());
  }

  /** True (after showing why) when `view` needs every attention row and this run recorded only the [CLS] row. */
  refusesView(view) {
    const what = view.constructor.needsFullRows;
    if (!what || this.rowsRecorded !== "cls") return false;
    view.generation++; // a load still under way must not draw over the notice
    view.panel.showMessage("info", `${view.constructor.title} needs full attention rows.`, this.clsOnlyNotice(what));
    return true;
  }

  /** At most one update per view in flight: changes that arrive meanwhile are merged into one more. */
  updateView(name, changed) {
    if (this.refusesView(this.views[name])) return Promise.resolve();
    const queued = this.queued.get(name);
    if (queued) {
      for (const key of changed) queued.changed.add(key);
      return queued.done;
    }
    const running = this.running.get(name);
    if (running) {
      const entry = {changed: new Set(changed)};
      entry.done = running.then(() => {
        this.queued.delete(name);
        return this.updateView(name, entry.changed);
      });
      this.queued.set(name, entry);
      return entry.done;
    }
    const job = Promise.resolve(this.views[name].update(changed)).catch((err) => {
      this.views[name].panel.showMessage("error", "This view could not be drawn.", String(err && err.message || err));
    }).finally(() => this.running.delete(name));
    this.running.set(name, job);
    return job;
  }

  /** Once idle, warm the cache for the neighbouring steps, one request at a time, so scrubbing is quick. */
  schedulePrefetch() {
    const generation = this.prefetchGeneration;
    clearTimeout(this.prefetchTimer);
    this.prefetchTimer = setTimeout(async () => {
      const steps = this.steps;
      const k = steps.indexOf(this.step);
      const order = [k + 1, k - 1, k + 2, k - 2].filter((i) => i >= 0 && i < steps.length);
      for (const i of order) {
        for (const view of Object.values(this.views)) {
          if (generation !== this.prefetchGeneration || this.pending) return;
          if (view.constructor.needsFullRows && this.rowsRecorded === "cls") continue;
          try {
            await view.prefetch?.(steps[i]);
          } catch {
            // A failed prefetch is retried, and reported, when the step is shown.
          }
        }
      }
    }, 30);
  }

  repaint() {
    for (const view of Object.values(this.views)) if (view.panel.ready) view.panel.paint();
  }

  selectRun(name) {
    if (name === this.state.run) return;
    this.views.timeline.toggle(false);
    this.store.set({run: name, step: -1, example: 0, source: -1, layer: -1, heads: "", detail: "",
      other: this.state.other === name ? "" : this.state.other});
  }

  onKey(e) {
    const target = e.target;
    const typing = target instanceof HTMLInputElement && target.type !== "range" || target instanceof HTMLSelectElement;
    if (e.key === "Escape") {
      this.tooltip.hide();
      if (!typing) this.store.set({heads: "", detail: ""});
      return;
    }
    if (typing || e.altKey || e.ctrlKey || e.metaKey) return;
    const timeline = this.views.timeline;
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      if (target instanceof HTMLInputElement) return; // the scrubber moves itself
      e.preventDefault();
      timeline.advance(e.key === "ArrowRight" ? 1 : -1);
    } else if (e.key === " " && !(target instanceof HTMLButtonElement)) {
      e.preventDefault();
      timeline.toggle();
    } else if (e.key === "/") {
      e.preventDefault();
      this.picker.search.focus();
    }
  }
}

/** Build the page inside `document.body`; `staticBase` is the URL of the static folder. */
export async function start(staticBase) {
  const link = el("link", {rel: "stylesheet", href: new URL("style.css", staticBase).href});
  const styled = new Promise((resolve) => {
    link.addEventListener("load", resolve);
    link.addEventListener("error", resolve);
  });
  document.head.append(link);
  document.documentElement.lang = "en";
  const menus = get("registries"); // asked for while the stylesheet loads
  menus.catch(() => {}); // its error is shown below, once styled
  await styled;
  const root = el("div", {class: "af-app", "data-busy": "1"});
  document.body.append(root);
  let registries;
  try {
    registries = await menus;
  } catch (err) {
    root.append(message("error", "Could not load the plugin's menus.", err.message));
    root.dataset.busy = "0";
    root.dataset.renders = "0";
    return null;
  }
  const app = new App(root, registries);
  window.attnflows = {app, settled: () => app.settled()};
  await app.start();
  return app;
}

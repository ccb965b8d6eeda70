"""The frontend's small shared modules, run in the real browser page they serve (lru.js, view.js)."""

from __future__ import annotations

STATIC = "/data/plugin/attnflows/static/"


def run_module(tab, script: str):
    """Evaluate ``script`` with ``load(name)`` importing a module from the plugin's static folder."""
    frame = tab.open()
    return frame.evaluate(
        f"""async () => {{
            const load = (name) => import(new URL("{STATIC}" + name, location.origin).href);
            {script}
        }}"""
    )


def test_lru_cache_keeps_the_most_recently_used_entries_up_to_its_limit(tab):
    result = run_module(tab, """
        const {LruCache} = await load("lru.js");
        const cache = new LruCache(2);
        cache.set("a", 1).set("b", 2);
        cache.get("a");            // "a" is now the most recent
        cache.set("c", 3);         // so "b" goes
        let error = "";
        try { new LruCache(0); } catch (err) { error = `${err.name}: ${err.message}`; }
        return {keys: [...cache.map.keys()], size: cache.size, missing: cache.get("b") === undefined, error};
    """)
    assert result == {"keys": ["a", "c"], "size": 2, "missing": True,
                      "error": "RangeError: limit must be a positive integer, got 0"}


def test_a_view_that_breaks_the_contract_is_refused_with_what_is_missing(tab):
    result = run_module(tab, """
        const {CanvasView, checkView} = await load("view.js");
        const {VIEWS} = await load("views.js");
        class NoSlot extends CanvasView {
          static id = "x"; static title = "X"; static depends = ["run"];
          update() {} size() {} draw() {}
        }
        const messages = [];
        for (const View of [NoSlot, class Plain {}]) {
          try { checkView(View); } catch (err) { messages.push(err.message); }
        }
        return {messages, ids: VIEWS.map((V) => V.id), slots: VIEWS.map((V) => V.slot)};
    """)
    assert result["messages"] == ["NoSlot.slot must be one of wide, main, side, got undefined",
                                  "Plain must extend CanvasView (view.js)"]
    assert result["ids"] == ["timeline", "lifetimes", "flow", "heads", "detail", "influence", "aggregate", "explain",
                             "compare"]
    assert result["slots"] == ["wide", "wide", "main", "side", "wide", "side", "wide", "wide", "wide"]


def test_display_module_resolves_auto_to_the_runs_default_and_words_the_legend(tab):
    result = run_module(tab, """
        const {displayChoices, displayLegend, resolveDisplay, wrapLines} = await load("display.js");
        const registries = await (await fetch("/data/plugin/attnflows/registries")).json();
        const run = {view_default: {targets: "special_punct", units: "words"}};
        const info = {targets: "special", units: "words", hidden_mass: 0.5, roles: [], keep: []};
        return {
          choices: displayChoices(registries),
          auto: resolveDisplay({targets: "auto", units: "auto"}, run),
          chosen: resolveDisplay({targets: "none", units: "auto"}, run),
          noRun: resolveDisplay({targets: "auto", units: "auto"}, null),
          legend: displayLegend(info, registries),
          raw: displayLegend(null, registries),
          lines: wrapLines("one two three four", 1).length,
        };
    """)
    assert result["choices"] == {"targets": ["auto", "none", "special", "special_punct"],
                                 "units": ["auto", "tokens", "words"], "edges": ["head", "layer"]}
    assert result["auto"] == {"targets": "special_punct", "units": "words"}
    assert result["chosen"] == {"targets": "none", "units": "words"}
    assert result["noRun"] == {"targets": "none", "units": "tokens"}
    assert result["legend"] == ("view: hide special tokens as targets, rows renormalised (50.0% of raw attention hidden); "
                                "word pieces merged into words")
    assert result["raw"] == "" and result["lines"] == 4

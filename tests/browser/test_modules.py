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

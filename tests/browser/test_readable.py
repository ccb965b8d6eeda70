"""Readable views and the per-head graph in the tab (issue 15, items 1 and 2), in headless Chromium.

The display options are computed by the server (tb_plugin/display.py); these tests check that the
browser builds their menus from /registries, asks every view for them, says so in the legends, and
that the tab's default state reaches content words with a visible before/after difference.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .conftest import MAIN_RUN, OVERLAY_RUN, Tab
from .test_frontend import SVG, download

FLOW = "window.attnflows.app.views.flow.data"
INFLUENCE = "window.attnflows.app.views.influence.data"


def test_default_view_hides_special_tokens_reaches_words_and_shows_the_change(tab):
    frame = tab.open()
    tab.set_state({"run": OVERLAY_RUN})  # a constructed run whose attention moves between steps 0 and 10
    state = tab.state()
    assert state["targets"] == "auto" and state["units"] == "auto"  # a fresh tab: the run's measured default
    assert frame.evaluate("() => window.attnflows.app.display") == {"targets": "special_punct", "units": "words"}
    flow = frame.evaluate(f"() => {FLOW}")
    roles, keep = flow["trace"]["display"]["roles"], flow["trace"]["display"]["keep"]
    assert [roles[i] for i, k in enumerate(keep) if not k] and all(roles[i] == "content" for i, k in enumerate(keep) if k)
    reached_inputs = {e["j"] for e in flow["edges"] if e["l"] == 0}
    assert reached_inputs and all(roles[j] == "content" for j in reached_inputs)  # the trace ends on words
    assert sum(flow["influence"][j] for j in reached_inputs) > 0.5
    influence = frame.evaluate(f"() => {INFLUENCE}")
    assert influence["tokens"] == flow["tokens"]
    content = [i for i, role in enumerate(roles) if role == "content"]
    raw = frame.evaluate("""async (run) => (await (await fetch(`/data/plugin/attnflows/flow?run=${encodeURIComponent(run)}` +
        "&example=0&step=10&method=trace&view=rollout")).json()).influence""", OVERLAY_RUN)
    raw_content = sum(v for v, token in zip(raw, frame.evaluate("() => window.attnflows.app.tokens"))
                      if token not in ("[CLS]", "[SEP]", ",", "."))
    shown_content = sum(influence["cur"][i] for i in content)
    assert shown_content > 0.6 and shown_content > raw_content + 0.1  # the bars are words, not [CLS]
    change = max(abs(influence["cur"][i] - influence["pre"][i]) for i in content)
    assert change > 0.05 * max(influence["cur"])  # a visible before/after difference
    # The legends say that the view is on, in the drawing (and so in exports) and in the display bar.
    svg = ET.parse(download(tab, "flow", "svg")).getroot()
    legend = " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))
    assert "hide special tokens and punctuation as targets" in legend and "of raw attention" in legend
    assert "view:" in frame.evaluate(f"() => {INFLUENCE}.legend")
    assert "View" in frame.locator('[data-panel="display"]').inner_text()
    assert "default: hide special tokens and punctuation" in frame.locator('[data-control="targets"]').inner_text()
    tab.screenshot("readable-default")


def test_display_menus_come_from_the_registries_and_reach_every_view(tab):
    frame = tab.open()
    tab.set_state({"run": MAIN_RUN, "detail": "1:0"})
    options = frame.locator('[data-control="targets"] option').evaluate_all("(os) => os.map((o) => o.value)")
    served = frame.evaluate("() => window.attnflows.app.registries.display.targets.map(([name]) => name)")
    assert options == ["auto", *served]
    readable = frame.evaluate(f"() => {FLOW}.tokens")
    assert "[CLS]" in readable  # hidden targets stay drawn as positions (greyed), so a trace can start at [CLS]
    before = tab.pixels("flow")["hash"]
    with tab.page.expect_request(lambda r: "/flow?" in r.url and "targets=none" in r.url):
        frame.locator('[data-control="targets"]').select_option("none")
    tab.settle()
    assert tab.state()["targets"] == "none" and tab.state()["source"] == -1
    flow = frame.evaluate(f"() => {FLOW}")
    assert flow["trace"]["display"] is None or flow["trace"]["display"]["targets"] == "none"
    assert tab.pixels("flow")["hash"] != before
    detail = frame.evaluate("() => window.attnflows.app.views.detail.data")
    assert detail["tokens"] == flow["tokens"]  # the heat maps follow the same display
    frame.locator('[data-control="units"]').select_option("tokens")
    tab.settle()
    assert frame.evaluate(f"() => {FLOW}.legend") == ""  # raw attention: the legend says nothing about a view
    frame.locator('[data-control="targets"]').select_option("special")
    tab.settle()
    assert "View: hide special tokens as targets" in frame.locator("#af-detail .af-note").inner_text()


def test_display_values_in_a_copied_url_are_checked_against_the_registries(tab, browser):
    tab.open()
    tab.set_state({"run": MAIN_RUN, "targets": "special", "units": "tokens", "edges": "layer"})
    url = tab.page.url
    assert "targets%3Dspecial" in url
    copy = Tab(browser, tab.base_url)
    try:
        copy.open(url)
        assert {k: copy.state()[k] for k in ("targets", "units", "edges")} == {
            "targets": "special", "units": "tokens", "edges": "layer"}
    finally:
        copy.close()
    edited = Tab(browser, tab.base_url)
    try:
        edited.open(url.replace("special", "everything").replace("layer", "rainbow"))
        state = edited.state()
        assert state["targets"] == "auto" and state["edges"] == "head"  # unknown values fall back to the defaults
        assert state["units"] == "tokens" and not edited.errors
    finally:
        edited.close()


def test_per_head_graph_colours_edges_by_head_or_layer_and_keeps_the_overlay(tab):
    frame = tab.open()
    tab.set_state({"run": OVERLAY_RUN})
    assert frame.locator('[data-control="edges"]').is_hidden()  # only the per-head graph has edge colours
    mean_edges = frame.evaluate(f"() => {FLOW}.edges.length")
    frame.locator('[data-control="method"]').select_option("per_head")
    tab.settle()
    flow = frame.evaluate(f"() => {FLOW}")
    assert flow["perHead"] and flow["colourBy"] == "head"
    assert len(flow["edges"]) >= mean_edges and all(e["heads"] for e in flow["edges"])
    assert "per-head graph" in flow["influenceLabel"]
    influence = frame.evaluate(f"() => {INFLUENCE}")
    assert influence["what"].startswith("per-head graph") and influence["cur"] == flow["influence"]
    svg = ET.parse(download(tab, "flow", "svg")).getroot()
    strokes = {p.get("stroke") for p in svg.iter(f"{SVG}path")}
    head_colours = frame.evaluate(f"""() => {{
        const view = window.attnflows.app.views.flow;
        return [...new Set({FLOW}.edges.map((e) => view.edgeColourOf(e, "head")))];
    }}""")
    assert len(head_colours) > 1 and set(head_colours) <= strokes
    by_head = tab.pixels("flow")["hash"]
    frame.locator('[data-control="edges"]').select_option("layer")
    tab.settle()
    assert frame.evaluate(f"() => {FLOW}.colourBy") == "layer" and tab.pixels("flow")["hash"] != by_head
    # The comparison overlay traces the per-head graph in both snapshots (on raw attention this run has all three kinds).
    tab.set_state({"targets": "none", "units": "tokens"})
    with tab.page.expect_request(lambda r: "/compare?" in r.url and "mode=any_head" in r.url):
        frame.locator('[data-control="overlay"]').select_option("pretrained")
    tab.settle()
    classes = frame.evaluate(f"() => [...new Set({FLOW}.edges.map((e) => e.cls))].sort()")
    assert classes == ["first", "second", "shared"]
    assert "colours edges by comparison" in frame.locator("#af-flow .af-note").inner_text()
    tab.screenshot("per-head-graph-overlay")

"""Across examples, explain a flip, and edge lifetimes, in Chromium against a real TensorBoard.

The run is tests/analysis/flip_run.py's constructed run, where the answer is known: example 0's
head (1, 2) moves from [CLS] to "bad" between steps 10 and 20, and its prediction flips there.
"""

from __future__ import annotations

import pytest

from tests.analysis.flip_run import BAD, MOVED

from .conftest import Tab, TensorBoard, _skip_without_browser


@pytest.fixture(scope="module")
def flip_tensorboard(tmp_path_factory):
    _skip_without_browser()
    from attnflows_callback.store import write_marker_events_file

    from tests.analysis.flip_run import constructed_run

    root = tmp_path_factory.mktemp("flip_logdir")
    constructed_run(root / "flip")
    write_marker_events_file(root / "flip")
    server = TensorBoard(root, expect_runs=1)
    yield server
    server.stop()


@pytest.fixture
def flip_tab(browser, flip_tensorboard):
    t = Tab(browser, flip_tensorboard.url)
    t.open()
    yield t
    t.close()
    assert not t.dialogs, f"a dialog opened: {t.dialogs}"
    assert not t.errors, f"console errors: {t.errors}; failed requests: {t.failed_requests}"


def view_data(tab, view: str):
    return tab.frame.evaluate("(v) => window.attnflows.app.views[v].data", view)


def canvas(tab, view: str):
    return tab.frame.locator(f'canvas[data-view="{view}"]')


def tooltip(tab) -> str:
    return tab.frame.locator(".af-tooltip").text_content()


def test_a_flip_mark_is_a_link_that_opens_the_explanation(flip_tab):
    frame = flip_tab.frame
    assert "Click a flip mark" in frame.locator('[data-panel="explain"]').text_content()
    links = frame.locator(".af-flip-link")
    assert links.count() == 1  # only example 0 flipped, once
    link = frame.locator('.af-flip-link[data-flip-example="0"][data-flip-step="20"]')
    link.click()
    flip_tab.settle()
    state = flip_tab.state()
    assert (state["example"], state["step"]) == (0, 20)
    data = view_data(flip_tab, "explain")
    assert (data["step_before"], data["step_after"], data["flipped"]) == (10, 20, True)
    assert (data["heads"][0]["layer"], data["heads"][0]["head"]) == MOVED
    assert any(e["to"] == BAD for e in data["edges_gained"])
    assert max(data["words"], key=lambda w: w["change"])["word"] == "bad"
    assert flip_tab.pixels("explain")["painted"] > 1000
    note = frame.locator('[data-panel="explain"] .af-note').text_content()
    assert "attnflows explain RUN --example 0 --step 20" in note
    # The top-ranked head row: hover names it, click selects it in the flow.
    first = frame.evaluate("() => window.attnflows.app.views.explain.panel.layout.heads[0].y")
    canvas(flip_tab, "explain").hover(position={"x": 60, "y": first + 6})
    assert "layer 1, head 2" in tooltip(flip_tab)
    canvas(flip_tab, "explain").click(position={"x": 60, "y": first + 6})
    flip_tab.settle()
    assert flip_tab.state()["heads"] == "1:2"
    frame.locator('[data-panel="explain"] button', has_text="Close").click()
    flip_tab.settle()
    assert view_data(flip_tab, "explain") is None


def test_a_flip_link_works_from_the_keyboard(flip_tab):
    flip_tab.set_state({"step": 0})
    flip_tab.frame.locator(".af-flip-link").focus()
    flip_tab.page.keyboard.press("Enter")
    flip_tab.settle()
    assert flip_tab.state()["step"] == 20 and view_data(flip_tab, "explain")["step_after"] == 20


def test_across_examples_finds_the_head_that_changed_for_the_flipped_examples(flip_tab):
    frame = flip_tab.frame
    assert view_data(flip_tab, "aggregate")["count"] == 2
    options = frame.locator('[data-control="selection"] option')
    assert [options.nth(k).get_attribute("value") for k in range(options.count())] == [
        "all", "flipped", "class:0", "class:1"]
    frame.locator('[data-control="selection"]').select_option("flipped")
    flip_tab.settle()
    data = view_data(flip_tab, "aggregate")
    assert data["examples"] == [0] and data["selection"] == "flipped"
    js = data["heads"]["js"]["mean"]
    assert max((v, l, h) for l, row in enumerate(js) for h, v in enumerate(row))[1:] == MOVED
    assert "Mean over 1 example" in frame.locator('[data-panel="aggregate"] .af-note').text_content()
    geom = frame.evaluate("() => window.attnflows.app.views.aggregate.geom")
    layer, head = MOVED
    x = geom["x"] + head * geom["cell"] + geom["cell"] / 2
    y = geom["y"] + (geom["L"] - 1 - layer) * geom["cell"] + geom["cell"] / 2
    canvas(flip_tab, "aggregate").hover(position={"x": x, "y": y})
    assert "layer 1, head 2" in tooltip(flip_tab) and "over 1 examples" in tooltip(flip_tab)
    canvas(flip_tab, "aggregate").click(position={"x": x, "y": y})
    flip_tab.settle()
    assert flip_tab.state()["heads"] == "1:2"
    # Before the flip nothing has flipped yet: a clear message, not a blank card.
    flip_tab.set_state({"step": 10})
    assert "No examples whose prediction flipped between steps 0 and 10" in \
        frame.locator('[data-panel="aggregate"]').text_content()


def test_edge_lifetimes_highlight_the_edge_and_jump_to_where_it_appeared(flip_tab):
    frame = flip_tab.frame
    flip_tab.set_state({"tau": 0.25})
    data = view_data(flip_tab, "lifetimes")
    assert data["steps"] == [0, 10, 20] and data["step"] == 20
    edges = [tuple(e[:3]) for e in data["edges"]]
    to_bad, to_cls = edges.index((1, 0, BAD)), edges.index((1, 0, 0))
    assert data["present"][to_bad] == [0, 0, 1] and data["appeared"][to_bad] == 20
    assert data["present"][to_cls] == [1, 1, 1] and data["appeared"][to_cls] == 0
    before = flip_tab.pixels("flow")["hash"]
    x = frame.evaluate("() => window.attnflows.app.views.lifetimes.panel.layout.xs[2]")
    strip = canvas(flip_tab, "lifetimes")
    strip.hover(position={"x": x, "y": 8 + to_bad * 11 + 5})
    assert frame.evaluate("() => window.attnflows.app.views.flow.highlight") == {"l": 1, "i": 0, "j": BAD}
    assert flip_tab.pixels("flow")["hash"] != before
    assert "appeared at step 20" in tooltip(flip_tab)
    frame.locator('[data-panel="timeline"] .af-card-title').hover()  # leaving the strips clears the highlight
    assert frame.evaluate("() => window.attnflows.app.views.flow.highlight") is None
    assert flip_tab.pixels("flow")["hash"] == before
    strip.click(position={"x": x, "y": 8 + to_cls * 11 + 5})
    flip_tab.settle()
    assert flip_tab.state()["step"] == 0
    assert view_data(flip_tab, "lifetimes")["step"] == 0
    for kind in ("png", "svg"):
        assert frame.locator(f'[data-panel="lifetimes"] [data-export="{kind}"]').is_enabled()

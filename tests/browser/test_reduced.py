"""Reduced runs and grouped-query attention in the tab (issue 16): a run recorded with rows="cls" shows a notice
where a view needs every attention row, instead of drawing it; the head grid brackets the heads that share a
key/value head.

A real TensorBoard serves three runs recorded here: a tiny Llama (4 query heads sharing 2 key/value heads) in
full and with rows="cls", and a tiny BERT (no grouping).
"""

from __future__ import annotations

import pytest

from .conftest import Tab, TensorBoard, checked_tab
from .test_frontend import download

FULL_RUN = "llama_full"
CLS_RUN = "llama_cls"
BERT_RUN = "bert"
FULL_ROW_VIEWS = ("flow", "influence", "lifetimes", "detail")


@pytest.fixture(scope="module")
def reduced_tensorboard(tmp_path_factory):
    from tests.helpers import write_run

    from .conftest import _skip_without_browser

    _skip_without_browser()
    root = tmp_path_factory.mktemp("reduced_logdir")
    write_run(root / FULL_RUN, family="llama", steps=(0, 10))
    write_run(root / CLS_RUN, family="llama", steps=(0, 10), rows="cls")
    write_run(root / BERT_RUN, steps=(0, 10))
    server = TensorBoard(root, expect_runs=3)
    yield server
    server.stop()


@pytest.fixture
def reduced_tab(browser, reduced_tensorboard):
    with checked_tab(browser, reduced_tensorboard) as t:
        yield t


def open_run(tab: Tab, run: str, **state):
    tab.open()
    tab.set_state({"run": run, "example": 1, **state})
    return tab.frame


def panel_message(frame, panel: str) -> tuple[str, str]:
    box = frame.locator(f'[data-panel="{panel}"] .af-msg')
    return box.locator(".af-msg-title").inner_text(), box.locator(".af-msg-detail").inner_text()


def test_a_cls_only_run_says_which_views_need_full_rows_instead_of_drawing_them(reduced_tab):
    frame = open_run(reduced_tab, CLS_RUN)
    for panel in FULL_ROW_VIEWS:
        title, detail = panel_message(frame, panel)
        assert "needs full attention rows" in title, panel
        assert "only the classification token's row (rows='cls')" in detail and "rows='all'" in detail, panel
    banner = frame.locator(".af-banners").inner_text()
    assert "recorded only the classification token's attention row" in banner
    # What one row gives is drawn: the timeline and the head grid coloured by change.
    assert reduced_tab.pixels("timeline")["painted"] and reduced_tab.pixels("heads")["painted"]
    assert frame.evaluate("() => window.attnflows.app.views.heads.panel.ready") is True
    # The pattern class needs every row: a notice, not a grid of guesses.
    reduced_tab.set_state({"metric": "pattern"})
    title, detail = panel_message(frame, "heads")
    assert title == "pattern class needs full attention rows." and "rows='all'" in detail
    # The tab never asked the server for what it cannot have.
    assert not [r for r in reduced_tab.failed_requests if r.startswith("409")]


def test_a_full_run_of_the_same_model_draws_every_view(reduced_tab):
    frame = open_run(reduced_tab, FULL_RUN)
    for panel in FULL_ROW_VIEWS:
        assert frame.evaluate(f"() => window.attnflows.app.views['{panel}'].panel.ready") is True, panel
    assert "rows='cls'" not in frame.locator(".af-banners").inner_text()


def test_the_head_grid_brackets_heads_that_share_a_key_value_head(reduced_tab):
    frame = open_run(reduced_tab, FULL_RUN)
    layout = frame.evaluate("() => window.attnflows.app.views.heads.panel.layout")
    assert layout["groups"] == [{"kv": 0, "first": 0, "last": 1}, {"kv": 1, "first": 2, "last": 3}]
    columns, cell = layout["columns"], layout["cell"]
    assert columns[1] - columns[0] == cell and columns[2] - columns[1] > cell  # a gap between the groups only
    note = frame.locator('[data-panel="heads"] .af-note').inner_text()
    assert "Grouped-query attention: the 4 heads share 2 key/value heads, 2 each" in note
    svg = download(reduced_tab, "heads", "svg").read_text()
    assert ">KV0<" in svg and ">KV1<" in svg
    # A click on the first head after the gap selects head 2.
    frame.locator('canvas[data-view="heads"]').click(position={"x": columns[2] + cell / 2, "y": layout["y"] + cell / 2})
    reduced_tab.settle()
    assert reduced_tab.state()["heads"] == f"{layout['L'] - 1}:2"  # the top row is the deepest layer


def test_a_model_without_grouped_query_attention_draws_no_brackets(reduced_tab):
    frame = open_run(reduced_tab, BERT_RUN)
    layout = frame.evaluate("() => window.attnflows.app.views.heads.panel.layout")
    assert layout["groups"] is None
    assert [b - a for a, b in zip(layout["columns"], layout["columns"][1:])] == [layout["cell"]] * 3
    assert "KV0" not in download(reduced_tab, "heads", "svg").read_text()

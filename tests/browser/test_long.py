"""Long sequences in the tab (issue 16): the flow view opens fitted to its card with thinned token labels,
zooms and pans along the token axis with hit-testing that follows, and the token influence thins its
labels too. A real TensorBoard serves a constructed 300-token run whose trace is known.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from .conftest import Tab, TensorBoard, checked_tab

RUN = "long300"
T, LAYERS, HEADS = 300, 2, 2
FAR = (150, 299)  # where the first token's attention goes, besides itself


def _long_run(run_dir) -> None:
    """Every token attends to itself, except the first, which spreads its attention over 0, 150 and 299."""
    from attnflows_callback.store import RunWriter

    tokens = [f"w{i}" for i in range(T)]
    writer = RunWriter(
        run_dir,
        meta={"probe_id": "long", "model": {"identity": "long"}, "streams": {"self": {"layers": LAYERS, "heads": HEADS}},
              "classification_position": "first"},
        probe_arrays={"texts": [" ".join(tokens)], "labels": np.array([0]), "label_names": ["a", "b"],
                      "input_ids": [[1] * T], "tokens": tokens, "truncated": np.zeros(1, bool)},
    )
    attention = np.broadcast_to(np.eye(T, dtype=np.float32), (LAYERS, HEADS, T, T)).copy()
    attention[:, :, 0, :] = 0
    attention[:, :, 0, [0, *FAR]] = 1 / 3
    for step in (0, 10):
        writer.write_snapshot(step, attention={"self": [attention]}, logits=np.array([[0.0, 1.0]]))
    writer.set_status("finished")
    writer.close()


@pytest.fixture(scope="module")
def long_tensorboard(tmp_path_factory):
    from .conftest import _skip_without_browser

    _skip_without_browser()
    root = tmp_path_factory.mktemp("long_logdir")
    _long_run(root / RUN)
    server = TensorBoard(root, expect_runs=1)
    yield server
    server.stop()


@pytest.fixture
def long_tab(browser, long_tensorboard):
    with checked_tab(browser, long_tensorboard) as t:
        t.open()
        t.set_state({"run": RUN, "tau": 0.2})
        yield t


def geometry(tab: Tab) -> dict:
    return tab.frame.evaluate("""() => {
        const view = window.attnflows.app.views.flow;
        const g = view.geom;
        const card = document.querySelector('[data-panel="flow"] .af-scroll').clientWidth;
        return {start: g.start, count: g.count, T: g.T, every: g.every, spacing: g.spacing, width: g.width, card,
                label: document.querySelector('[data-control="token-window"]').textContent};
    }""")


def hover(tab: Tab, position: int, layer: int) -> str:
    """Move the mouse over the node of ``position`` at ``layer`` (-1: the inputs); the tooltip's text."""
    box = tab.frame.evaluate("""([i, l]) => {
        const view = window.attnflows.app.views.flow;
        const r = view.panel.canvas.getBoundingClientRect();
        return [r.left + view.x(view.geom, i), r.top + view.y(view.geom, l)];
    }""", [position, layer])
    frame_box = tab.page.query_selector("iframe[src*='plugin_entry.html?name=attnflows']").bounding_box()
    tab.page.mouse.move(frame_box["x"] + box[0], frame_box["y"] + box[1])
    return tab.frame.evaluate("() => document.querySelector('.af-tooltip')?.textContent || ''")


def click(tab: Tab, control: str, times: int = 1):
    for _ in range(times):
        tab.frame.click(f'[data-panel="flow"] [data-control="{control}"]')


def test_a_long_sequence_opens_fitted_to_the_card_with_every_kth_label(long_tab):
    g = geometry(long_tab)
    assert (g["start"], g["count"], g["T"]) == (0, T, T)
    assert g["width"] <= g["card"] + 1  # no sideways scrolling: all 300 tokens fit
    assert g["every"] in (2, 5, 10) and g["spacing"] * g["every"] >= 12  # labels at least 12 px apart
    assert g["label"] == f"all {T} tokens, every {g['every']}th label"
    # The far tokens are drawn where the hit-test finds them (to a pixel: at ~2 px a token, one either side).
    for position, layer in ((150, -1), (299, 0), (40, 1)):
        found = re.search(r"position (\d+): w(\d+)", hover(long_tab, position, layer))
        assert found and found[1] == found[2] and abs(int(found[1]) - position) <= 1


def test_zooming_and_panning_move_the_window_and_hit_testing_follows(long_tab):
    click(long_tab, "zoom-in", 2)  # 300 -> 150 -> 75 tokens
    g = geometry(long_tab)
    assert g["count"] == 75 and g["start"] == 113  # about the centre
    assert g["label"].startswith(f"tokens 113–187 of {T}")
    assert g["every"] == 1 or g["spacing"] * g["every"] >= 12
    assert "position 150: w150" in hover(long_tab, 150, 0)
    click(long_tab, "pan-right", 4)  # half a window each, stopped by the end of the axis
    g = geometry(long_tab)
    assert (g["start"], g["count"]) == (T - 75, 75)
    assert "position 299: w299" in hover(long_tab, 299, 1)
    # A click picks the token under the mouse as the trace's source, at its layer.
    hover(long_tab, 260, 1)
    frame_box = long_tab.page.query_selector("iframe[src*='plugin_entry.html?name=attnflows']").bounding_box()
    x, y = long_tab.frame.evaluate("""() => { const v = window.attnflows.app.views.flow;
        const r = v.panel.canvas.getBoundingClientRect(); return [r.left + v.x(v.geom, 260), r.top + v.y(v.geom, 1)]; }""")
    long_tab.page.mouse.click(frame_box["x"] + x, frame_box["y"] + y)
    long_tab.settle()
    assert (long_tab.state()["source"], long_tab.state()["layer"]) == (260, 1)
    click(long_tab, "zoom-all")
    assert geometry(long_tab)["count"] == T


def test_the_window_resets_for_another_example_and_keeps_across_steps(long_tab):
    click(long_tab, "zoom-in")
    before = geometry(long_tab)
    long_tab.set_state({"step": 0})
    assert geometry(long_tab)["count"] == before["count"] == 150  # same tokens: the window stays
    long_tab.set_state({"source": 5, "layer": 0})
    assert geometry(long_tab)["count"] == 150


def test_the_token_influence_thins_its_labels_and_fits_the_card(long_tab):
    g = long_tab.frame.evaluate("""() => { const v = window.attnflows.app.views.influence;
        return {every: v.geom.every, group: v.geom.group, width: v.geom.width,
                card: document.querySelector('[data-panel="influence"] .af-scroll').clientWidth}; }""")
    assert g["every"] > 1 and g["group"] * g["every"] >= 12
    assert g["width"] <= g["card"] + 1


def test_the_head_detail_averages_a_long_sequence_over_blocks_that_fit_the_card(long_tab):
    g = long_tab.frame.evaluate("""() => { const v = window.attnflows.app.views.detail;
        return {block: v.geom.block, T: v.geom.T, cell: v.geom.cell, width: v.panel.canvas.getBoundingClientRect().width,
                card: document.querySelector('[data-panel="detail"] .af-scroll').clientWidth,
                tip: v.describe({i: 0, j: 0}), tip1: v.describe({i: 1, j: 1})}; }""")
    assert g["block"] > 1 and g["T"] == -(-T // g["block"]) and g["cell"] >= 3
    assert g["width"] <= g["card"] + 1
    b = g["block"]
    assert g["tip"][0] == f"w0 … w{b - 1} (0–{b - 1}) → w0 … w{b - 1} (0–{b - 1})"
    # Block (0, 0): the first token's 1/3 on itself and the identity on the others, averaged over b x b cells.
    assert g["tip"][1].endswith(f"{(1 / 3 + b - 1) / b ** 2:.4f}")
    assert g["tip1"][2].endswith(f"{1 / b:.4f}")  # a block on the diagonal: b ones over b x b cells


def test_a_long_example_row_shows_the_start_of_its_text_and_its_title_holds_all_of_it(long_tab):
    full = " ".join(f"w{i}" for i in range(T))
    row = long_tab.frame.locator('.af-example[data-example="0"] .af-ex-text')
    shown = row.inner_text()
    assert shown.endswith("…") and full.startswith(shown[:-1]) and len(shown) < len(full) // 4
    assert row.get_attribute("title") == full
    long_tab.frame.fill(".af-search", "w299")  # the search still reads the whole text
    long_tab.frame.wait_for_function("() => document.querySelectorAll('.af-example').length === 1")

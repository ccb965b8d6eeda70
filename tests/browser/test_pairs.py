"""Sentence pairs in the tab (issue 11): both segments in the picker, a colour band per segment and a tick at
their boundary along the token axes of the flow, head detail and token-influence views, a legend naming
the segments, and a format-1 run's notes as a notice; a single-sentence run shows none of it.

A real TensorBoard serves three runs recorded here from a tiny BERT with the real MiniLM tokenizer.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import h5py
import pytest

from tests.truth import HYPOTHESES, PAIR_LABELS, PREMISES

from .conftest import ARTIFACTS, Tab, TensorBoard
from .test_frontend import download

PAIR_RUN = "pairs/current"
OLD_PAIR_RUN = "pairs/format1"
SINGLE_RUN = "single"
SEGMENT_RGB = [(0x56, 0xB4, 0xE9), (0xCC, 0x79, 0xA7)]  # segments.js: SEGMENT_COLOURS
EXAMPLE = 3  # the longest pair: "children are playing football ..." / "kids play a game outside ..."


def _pair_run(run_dir: Path) -> None:
    from attnflows_callback import AttentionRecorder, ProbeSet

    from tests.helpers import nudge, tiny_model, tokenizer

    model = tiny_model("bert", seed=2)
    probe = ProbeSet(PREMISES, HYPOTHESES, labels=PAIR_LABELS, label_names=["contradiction", "entailment"])
    with AttentionRecorder(model, tokenizer(), probe, run_dir, hparams={"lr": 1e-3, "pairs": True}) as recorder:
        recorder.snapshot(0)
        nudge(model, seed=5)
        recorder.snapshot(10)


@pytest.fixture(scope="module")
def pair_tensorboard(tmp_path_factory):
    from tests.helpers import write_run

    from .conftest import _skip_without_browser

    _skip_without_browser()
    root = tmp_path_factory.mktemp("pair_logdir")
    _pair_run(root / PAIR_RUN)
    _pair_run(root / OLD_PAIR_RUN)
    meta = root / OLD_PAIR_RUN / "attnflows" / "run.json"  # as format 1 wrote it: no segment ids stored
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "format_version": 1}))
    with h5py.File(root / OLD_PAIR_RUN / "attnflows" / "probe.h5", "a") as f:
        del f["model_inputs"], f["sequence_ids"]
    write_run(root / SINGLE_RUN, steps=(0, 10))
    server = TensorBoard(root, expect_runs=3)
    yield server
    server.stop()


@pytest.fixture
def pair_tab(browser, pair_tensorboard):
    t = Tab(browser, pair_tensorboard.url)
    yield t
    t.close()
    assert not t.dialogs, f"a dialog opened: {t.dialogs}"
    assert not t.errors, f"console errors: {t.errors}; failed requests: {t.failed_requests}"


def open_run(tab: Tab, run: str, **state):
    tab.open()
    tab.set_state({"run": run, "example": EXAMPLE, **state})
    return tab.frame


def expected_boundary() -> int:
    from tests.helpers import tokenizer

    ids = tokenizer()(PREMISES[EXAMPLE], HYPOTHESES[EXAMPLE]).sequence_ids()
    return ids.index(1)


def pixel(tab: Tab, view: str, x: float, y: float) -> tuple[int, int, int, int]:
    """The RGBA of a view's canvas at CSS-pixel (x, y)."""
    return tuple(tab.frame.evaluate(
        """([view, x, y]) => {
            const c = document.querySelector(`canvas[data-view="${view}"]`);
            const scale = c.width / parseFloat(c.style.width);
            return [...c.getContext("2d").getImageData(Math.floor(x * scale), Math.floor(y * scale), 1, 1).data];
        }""",
        [view, x, y],
    ))


def close_to(rgba, rgb, tolerance=6) -> bool:
    return rgba[3] == 255 and all(abs(a - b) <= tolerance for a, b in zip(rgba, rgb))


def svg_texts(tab: Tab, panel: str) -> str:
    return download(tab, panel, "svg").read_text()


def test_a_pair_shows_both_segments_in_the_picker(pair_tab):
    frame = open_run(pair_tab, PAIR_RUN)
    for i, (premise, hypothesis) in enumerate(zip(PREMISES, HYPOTHESES)):
        segments = frame.locator(f'.af-example[data-example="{i}"] .af-ex-segment')
        assert segments.count() == 2
        assert [segments.nth(k).text_content() for k in (0, 1)] == [premise, hypothesis]
        assert [segments.nth(k).get_attribute("data-segment") for k in (0, 1)] == ["0", "1"]
    # The search finds a pair by either segment.
    frame.locator(".af-search").fill("asleep")
    pair_tab.settle()
    assert frame.locator(".af-example").count() == 1
    assert frame.locator(".af-example").get_attribute("data-example") == "1"


def test_the_flow_view_draws_a_band_per_segment_the_boundary_and_a_legend(pair_tab):
    frame = open_run(pair_tab, PAIR_RUN)
    boundary = expected_boundary()
    seg = frame.evaluate("() => window.attnflows.app.views.flow.data.segments")
    assert seg["boundary"] == boundary and seg["names"] == ["first segment", "second segment"]
    g = frame.evaluate("() => window.attnflows.app.views.flow.geom")
    left = 64  # flow.js LEFT
    band_y = g["barTop"] + g["barH"] + 4
    first_x = left + (boundary - 2 + 0.5) * g["spacing"]  # the premise's last word ([SEP] is boundary - 1)
    second_x = left + (boundary + 0.5) * g["spacing"]
    assert close_to(pixel(pair_tab, "flow", first_x, band_y), SEGMENT_RGB[0])
    assert close_to(pixel(pair_tab, "flow", second_x, band_y), SEGMENT_RGB[1])
    # [CLS] and [SEP] belong to no segment: no band under them.
    assert pixel(pair_tab, "flow", left + 0.5 * g["spacing"], band_y)[3] == 0
    # The tick: a dark dash above the deepest layer's row at the boundary, nothing one token to the left.
    tick_x, top = left + boundary * g["spacing"], 22 - 9  # flow.js TOP; the dash starts at TOP - 10
    assert sum(pixel(pair_tab, "flow", tick_x, top + k)[3] for k in range(3)) > 0
    assert sum(pixel(pair_tab, "flow", tick_x - g["spacing"], top + k)[3] for k in range(3)) == 0
    svg = svg_texts(pair_tab, "flow")
    for label in ("first segment", "second segment", "segment boundary"):
        assert f">{label}</text>" in svg
    ARTIFACTS.mkdir(exist_ok=True)
    frame.locator('[data-panel="flow"]').screenshot(path=str(ARTIFACTS / "view-flow-pair.png"))


def test_the_head_detail_and_token_influence_mark_the_segments(pair_tab):
    frame = open_run(pair_tab, PAIR_RUN, detail="1:2")
    boundary = expected_boundary()
    data = frame.evaluate("""() => {const d = window.attnflows.app.views.detail.data;
        return {keys: d.keySegments, queries: d.querySegments}}""")
    assert data["keys"]["boundary"] == boundary == data["queries"]["boundary"]
    g = frame.evaluate("() => window.attnflows.app.views.detail.geom")
    below = g["top"] + 4 + g["side"] + 2
    for x0 in g["x0"]:  # every map: the key band under it, the query band left of it
        assert close_to(pixel(pair_tab, "detail", x0 + (boundary - 2 + 0.5) * g["cell"], below), SEGMENT_RGB[0])
        assert close_to(pixel(pair_tab, "detail", x0 + (boundary + 0.5) * g["cell"], below), SEGMENT_RGB[1])
        assert close_to(pixel(pair_tab, "detail", x0 - 3, g["top"] + 4 + (boundary + 0.5) * g["cell"]), SEGMENT_RGB[1])
    svg = svg_texts(pair_tab, "detail")
    assert ">first segment</text>" in svg and ">second segment</text>" in svg
    assert frame.evaluate("() => window.attnflows.app.views.influence.data.segments.boundary") == boundary
    assert ">second segment</text>" in svg_texts(pair_tab, "influence")
    ARTIFACTS.mkdir(exist_ok=True)
    for panel in ("detail", "influence", "picker"):
        frame.locator(f'[data-panel="{panel}"]').screenshot(path=str(ARTIFACTS / f"view-{panel}-pair.png"))


def test_a_single_sentence_run_shows_no_segments(pair_tab):
    frame = open_run(pair_tab, SINGLE_RUN, detail="1:2", example=0)
    assert frame.locator(".af-ex-segment").count() == 0
    assert frame.locator(".af-example .af-ex-text").count() == frame.locator(".af-example").count()
    state = frame.evaluate("""() => {const v = window.attnflows.app.views;
        return [v.flow.data.segments, v.detail.data.keySegments, v.detail.data.querySegments,
                v.influence.data.segments]}""")
    assert state == [None, None, None, None]
    for panel in ("flow", "detail", "influence"):
        assert "segment" not in svg_texts(pair_tab, panel)
    assert frame.locator(".af-banners").inner_text() == ""


def test_a_format_1_pair_run_shows_its_notes_and_both_segments_without_a_guessed_boundary(pair_tab, pair_tensorboard):
    with urllib.request.urlopen(f"{pair_tensorboard.url}/data/plugin/attnflows/runs", timeout=10) as r:
        notes = {run["run"]: run["notes"] for run in json.load(r)["runs"]}
    assert notes[PAIR_RUN] == [] and len(notes[OLD_PAIR_RUN]) == 1
    frame = open_run(pair_tab, OLD_PAIR_RUN)
    banner = frame.locator(".af-banners").inner_text()
    assert "A note on how this run was recorded." in banner and notes[OLD_PAIR_RUN][0] in banner
    assert frame.locator(f'.af-example[data-example="{EXAMPLE}"] .af-ex-segment').count() == 2
    # Its tokens' segments were not stored: the views draw no boundary rather than guess one.
    assert frame.evaluate("() => window.attnflows.app.views.flow.data.segments") is None
    frame = open_run(pair_tab, PAIR_RUN)
    assert "recorded" not in frame.locator(".af-banners").inner_text()


def test_segments_for_finds_the_spans_and_boundary_and_draws_nothing_it_cannot_know(pair_tab):
    frame = pair_tab.open()
    result = frame.evaluate("""async () => {
        const {segmentsFor, unitSegmentIds} = await import(new URL("/data/plugin/attnflows/static/segments.js", location.origin).href);
        const toks = ["<s>", "a", "b", "</s>", "</s>", "c", "</s>"];   // RoBERTa's pair template
        const pair = {text: "a b", text_pair: "c", tokens: toks, sequence_ids: [-1, 0, 0, -1, -1, 1, -1]};
        const shown = (seg) => seg && {spans: seg.spans, boundary: seg.boundary};
        return {
            roberta: shown(segmentsFor(pair, toks)),
            single: segmentsFor({...pair, text_pair: null, sequence_ids: [-1, 0, 0, -1, -1, 0, -1]}, toks),
            unknown: segmentsFor({...pair, sequence_ids: null}, toks),
            truncated: segmentsFor({...pair, sequence_ids: [-1, 0, 0, -1, -1, 0, -1]}, toks),
            otherAxis: segmentsFor(pair, ["<pad>", "x"]),
            given: shown(segmentsFor(pair, ["a", "b", "c"], [0, 0, 1])),
            // Special tokens hidden and word pieces merged: the units "a b" (positions 1, 2) and "c" (5).
            words: shown(segmentsFor(pair, ["a b", "c"], unitSegmentIds(pair.sequence_ids, [[1, 2], [5]]))),
            noUnits: unitSegmentIds(pair.sequence_ids, undefined),
        };
    }""")
    assert result == {
        "roberta": {"spans": [{"segment": 0, "start": 1, "end": 3}, {"segment": 1, "start": 5, "end": 6}],
                    "boundary": 5},
        "single": None, "unknown": None, "truncated": None, "otherAxis": None,
        "given": {"spans": [{"segment": 0, "start": 0, "end": 2}, {"segment": 1, "start": 2, "end": 3}], "boundary": 2},
        "words": {"spans": [{"segment": 0, "start": 0, "end": 1}, {"segment": 1, "start": 1, "end": 2}], "boundary": 1},
        "noUnits": None,
    }

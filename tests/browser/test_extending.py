"""Recipes 2 and 3 of docs/extending.md, followed to the letter on a copy of the plugin, in a real browser.

The copy gets one new Python file and one registration for an analysis method, and one new
ES module and one registration line for a view; a real TensorBoard serves the copy, and the
tab must offer the method in its menu, draw what the server computed for it, and show the view.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from .conftest import Tab, TensorBoard

TOY_METHOD = '''
"""A toy analysis: every input token gets an equal share, along one edge from the source."""

import numpy as np


def uniform_share(graph):
    length = graph.attention.shape[-1]
    edges = np.array([[0, graph.source, j, 1.0 / length] for j in range(length)])
    return edges, np.full(length, 1.0 / length)
'''

METHOD_REGISTRATION = '''
from .toy_method import uniform_share  # noqa: E402
register_flow_method(FlowMethod("uniform", "uniform share (toy)", uniform_share, "an equal share per token"))
'''

TOY_VIEW = """
// A toy view: one bar per token of the selected example.
import {CanvasView} from "./view.js";

export class TokenBars extends CanvasView {
  static id = "bars";
  static title = "Token bars";
  static depends = ["data", "run", "example"];
  static slot = "wide";

  update() {
    if (!this.app.probe) return;
    this.data = {tokens: this.app.tokens};
    this.panel.paint();
  }

  size(width) {
    return {width, height: 60};
  }

  draw(p) {
    this.data.tokens.forEach((_t, i) => p.rect(20 * i, 10, 16, 30, {fill: "#0072B2"}));
    p.text(4, 54, `${this.data.tokens.length} tokens`, {size: 11});
  }

  hitTest(x) {
    const i = Math.floor(x / 20);
    return i >= 0 && i < this.data.tokens.length ? {i} : null;
  }

  describe({i}) {
    return [`token ${i}: ${this.data.tokens[i]}`];
  }
}
"""


@pytest.fixture(scope="module")
def extended_tensorboard(tmp_path_factory):
    from tests.helpers import write_run

    root = tmp_path_factory.mktemp("extended")
    plugin = Path(__file__).resolve().parents[2] / "tb_plugin"
    copy = root / "site" / "attnflows_tb"
    shutil.copytree(plugin, copy, ignore=shutil.ignore_patterns("__pycache__"))
    # Recipe 2: one new file, one registration.
    (copy / "toy_method.py").write_text(TOY_METHOD)
    with open(copy / "registry.py", "a") as f:
        f.write(METHOD_REGISTRATION)
    # Recipe 3: one new file, one registration line (and its import).
    (copy / "static" / "tokenbars.js").write_text(TOY_VIEW)
    views = (copy / "static" / "views.js").read_text()
    views = views.replace('import {checkView} from "./view.js";',
                          'import {checkView} from "./view.js";\nimport {TokenBars} from "./tokenbars.js";')
    views = views.replace("  RunComparison,\n", "  RunComparison,\n  TokenBars,\n")
    (copy / "static" / "views.js").write_text(views)
    write_run(root / "logs" / "toy", steps=(0, 10))
    server = TensorBoard(root / "logs", expect_runs=1, pythonpath=root / "site")
    yield server
    server.stop()


def test_a_registered_method_is_in_the_menu_and_drawn_from_the_server(browser, extended_tensorboard):
    tab = Tab(browser, extended_tensorboard.url)
    try:
        frame = tab.open()
        menu = frame.locator('[data-control="method"] option')
        assert menu.all_inner_texts() == ["raw attention", "rollout", "max-flow", "per-head graph (any head ≥ τ)",
                                      "uniform share (toy)"]
        frame.locator('[data-control="method"]').select_option("uniform")
        tab.settle()
        data = frame.evaluate("() => window.attnflows.app.views.flow.data")
        length = len(data["tokens"])
        assert data["influence"] == pytest.approx([1 / length] * length, abs=1e-6)
        assert data["influenceLabel"] == "an equal share per token" and len(data["edges"]) == length
        assert tab.pixels("flow")["painted"] > 1000
        assert frame.locator("#af-influence .af-note").inner_text().startswith("Uniform share (toy) from")
        assert not tab.errors, (tab.errors, tab.failed_requests)
    finally:
        tab.close()


def test_a_registered_view_is_laid_out_drawn_and_hit_tested(browser, extended_tensorboard):
    tab = Tab(browser, extended_tensorboard.url)
    try:
        frame = tab.open()
        assert tab.pixels("bars")["painted"] > 500
        assert frame.locator('[data-panel="bars"] .af-card-title').inner_text() == "Token bars"
        frame.locator('canvas[data-view="bars"]').hover(position={"x": 5, "y": 20})
        assert frame.locator(".af-tooltip").inner_text().startswith("token 0: [CLS]")
        assert not tab.errors, (tab.errors, tab.failed_requests)
    finally:
        tab.close()


@pytest.mark.parametrize(("state", "expected"), [
    ("method%3Dbogus%26metric%3Dnope%26overlay%3Dx", ("raw", "change", "none")),
    ("method%3Duniform%26metric%3Dentropy%26overlay%3Dpretrained", ("uniform", "entropy", "pretrained")),
])
def test_url_state_is_checked_against_the_registries(browser, extended_tensorboard, state, expected):
    tab = Tab(browser, extended_tensorboard.url)
    try:
        tab.open(f"{extended_tensorboard.url}/#attnflows&af={state}")
        got = tab.state()
        assert (got["method"], got["metric"], got["overlay"]) == expected
        assert not tab.errors, (tab.errors, tab.failed_requests)
    finally:
        tab.close()

"""Screenshots of the Attention Flows tab's default state, for docs/frontend.md.

Starts a real TensorBoard on LOGDIR, opens the tab fresh in headless Chromium (as a new user
would: the first run, example 0, the latest step, every option at its default), and saves the
flow and token-influence cards; then the flow card with raw attention (the view bar's targets
``none``, units ``tokens``) and with the per-head graph, for comparison. Prints what the default flow
reaches, so the captions can be checked against the data.

Usage: python docs/img/capture_tab.py LOGDIR [RUN]   (writes docs/img/tab-*.png)
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for tests.browser
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Tab, TensorBoard

OUT = Path(__file__).resolve().parent


def capture(tab: Tab, name: str) -> None:
    for panel in ("flow", "influence"):
        tab.frame.locator(f'[data-panel="{panel}"]').screenshot(path=str(OUT / f"tab-{name}-{panel}.png"))


def main(logdir: str, run: str | None = None) -> None:
    server = TensorBoard(Path(logdir), expect_runs=1)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            tab = Tab(browser, server.url)
            tab.open()
            if run:
                tab.set_state({"run": run})
            flow = tab.frame.evaluate("() => window.attnflows.app.views.flow.data")
            roles = flow["trace"]["display"]["roles"] if flow["trace"]["display"] else None
            reached = sorted({e["j"] for e in flow["edges"] if e["l"] == 0})
            print("display:", tab.frame.evaluate("() => window.attnflows.app.display"))
            print("inputs reached:", [flow["tokens"][j] for j in reached],
                  "roles:", None if roles is None else [roles[j] for j in reached])
            influence = tab.frame.evaluate("() => window.attnflows.app.views.influence.data")
            print("influence pre -> cur:", [f"{t} {a:.3f}->{b:.3f}" for t, a, b in
                                            zip(influence["tokens"], influence["pre"], influence["cur"])])
            capture(tab, "default")
            tab.set_state({"targets": "none", "units": "tokens"})
            tab.frame.locator('[data-panel="flow"]').screenshot(path=str(OUT / "tab-raw-flow.png"))
            tab.set_state({"targets": "auto", "units": "auto", "method": "per_head"})
            tab.frame.locator('[data-panel="flow"]').screenshot(path=str(OUT / "tab-per-head-flow.png"))
            print("errors:", tab.errors, tab.failed_requests)
            tab.close()
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main(*sys.argv[1:3])

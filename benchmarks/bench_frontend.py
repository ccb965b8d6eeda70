"""Frontend timings in headless Chromium against a real TensorBoard: first render and scrubber frames.

Targets (issue 6): the tab's first render <= 1 s, a step-scrubber frame <= 100 ms. Two runs are
recorded: the tests' tiny model (2 layers x 4 heads, ~10 tokens) and a 12 layers x 12 heads model
on 128-token probe texts. The baseline is TensorBoard's own shell in the same browser: the time
from navigation until it has created the plugin's iframe.

Scrubbing is measured twice: moves back to back (every step is new to the server), and moves
1.5 s apart (the frontend has prefetched the neighbouring steps meanwhile, as when a user looks
at each step). "Response" is the input event until the scrubber, step label and timeline marker
are repainted; "frame" is until every view has been redrawn for the new step.

    .venv/bin/python benchmarks/bench_frontend.py [--moves 16] [--paced 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import Figure, median, percentile, report  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, TensorBoard  # noqa: E402

STEPS = (0, 10, 20, 30, 40)
BENCH = "frontend"

SCRUB_JS = """async ([moves, pauseMs]) => {
    const app = window.attnflows.app;
    const slider = document.querySelector('.af-scrubber');
    const n = app.steps.length;
    const out = [];
    let direction = 1;
    for (let m = 0; m < moves; m++) {
        if (pauseMs) await new Promise(r => setTimeout(r, pauseMs));
        const cur = Number(slider.value);
        if (cur + direction < 0 || cur + direction >= n) direction = -direction;
        slider.value = String(cur + direction);
        const t0 = performance.now();
        slider.dispatchEvent(new Event('input', {bubbles: true}));
        await new Promise(r => requestAnimationFrame(() => r()));
        const response = performance.now() - t0;
        await app.settled();
        await new Promise(r => requestAnimationFrame(() => r()));
        out.push([response, performance.now() - t0]);
    }
    return out;
}"""


def record_large(run_dir: Path) -> None:
    from attnflows_callback import AttentionRecorder

    from tests.helpers import PROBE_TEXTS, nudge, probe_set, tiny_model, tokenizer

    words = " ".join(PROBE_TEXTS).split()
    texts = [" ".join((words * 4)[k * 7:k * 7 + 120]) for k in range(2)]
    model = tiny_model("bert", layers=12, heads=12, hidden=96)
    recorder = AttentionRecorder(model, tokenizer(), probe_set(texts, [0, 1]), run_dir, max_length=128,
                                 hparams={"layers": 12, "heads": 12})
    for k, step in enumerate(STEPS):
        if k:
            nudge(model, seed=step)
        recorder.snapshot(step)
    recorder.close("finished")


def measure(browser, url: str, run: str, moves: int = 0, pause_ms: int = 0, *, example: int | None = None,
            timeout_ms: int = 60000, rounds: int = 1) -> dict:
    """Open the tab on ``run`` (and ``example``) in a fresh page; first render, then ``moves`` scrubber moves,
    ``rounds`` times over (the frames of the last round: with 2, every step has been shown before)."""
    context = browser.new_context(viewport={"width": 1440, "height": 1600})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    state = f"run%3D{run}" + ("" if example is None else f"%26example%3D{example}")
    start = time.perf_counter()
    page.goto(f"{url}/#attnflows&af={state}")
    handle = page.wait_for_selector("iframe[src*='plugin_entry.html?name=attnflows']", state="attached")
    shell = time.perf_counter() - start
    frame = handle.content_frame()
    frame.wait_for_function("() => window.attnflows && window.attnflows.app.renders > 0 && window.attnflows.app.pending === 0",
                            timeout=timeout_ms)
    # performance.now() in the frame counts from the frame's own navigation start.
    first = frame.evaluate("""async () => { await window.attnflows.settled();
        await new Promise(r => requestAnimationFrame(() => r())); return performance.now(); }""") / 1000
    frames = []
    for _ in range(rounds if moves else 0):
        frames = frame.evaluate(SCRUB_JS, [moves, pause_ms])
    context.close()
    if errors:
        print(f"console errors during {run}: {errors[:3]}")
    return {"shell": shell, "first": first, "response": [f[0] / 1000 for f in frames],
            "full": [f[1] / 1000 for f in frames]}


def figures(label: str, first: dict, rapid: dict, paced: dict) -> list[Figure]:
    out = [Figure(BENCH, f"{label}: first render of the tab", first["first"] * 1000, "ms", first["shell"] * 1000,
                  "TensorBoard shell until the plugin iframe exists", "<= 1000 ms", first["first"] <= 1.0,
                  "iframe navigation start -> every view painted")]
    for name, r, note in (("rapid", rapid, "moves back to back, each step new to the server"),
                          ("paced", paced, "moves 1.5 s apart, neighbouring steps prefetched")):
        out.append(Figure(BENCH, f"{label}: scrubber response, {name}", median(r["response"]) * 1000, "ms",
                          goal="<= 100 ms", met=percentile(r["response"], 95) <= 0.1,
                          note=f"median; p95 {percentile(r['response'], 95) * 1000:.0f} ms; "
                               "input -> scrubber, step label, timeline marker repainted"))
        out.append(Figure(BENCH, f"{label}: scrubber frame, all views, {name}", median(r["full"]) * 1000, "ms",
                          goal="<= 100 ms", met=percentile(r["full"], 95) <= 0.1,
                          note=f"median; p95 {percentile(r['full'], 95) * 1000:.0f} ms; {note}"))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=16, help="back-to-back scrubber moves per run (default 16)")
    parser.add_argument("--paced", type=int, default=8, help="paced scrubber moves per run (default 8)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"skipped: {CHROMIUM} is missing")
        return 0
    from playwright.sync_api import sync_playwright

    from tests.helpers import write_run

    with tempfile.TemporaryDirectory() as tmp:
        logdir = Path(tmp) / "logdir"
        t = time.perf_counter()
        write_run(logdir / "tiny", steps=STEPS)
        record_large(logdir / "large")
        print(f"recorded the runs in {time.perf_counter() - t:.1f} s")
        server = TensorBoard(logdir, expect_runs=2)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                measure(browser, server.url, "tiny")  # warm the browser's and TensorBoard's own caches
                found = []
                for run, label in (("tiny", "2x4 heads, ~10 tokens"), ("large", "12x12 heads, 128 tokens")):
                    first = measure(browser, server.url, run)
                    rapid = measure(browser, server.url, run, args.moves)
                    paced = measure(browser, server.url, run, args.paced, 1500)
                    found += figures(label, first, rapid, paced)
                browser.close()
        finally:
            server.stop()
    report(found)
    return 0


if __name__ == "__main__":
    sys.exit(main())

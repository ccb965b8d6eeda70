"""A real TensorBoard serving runs recorded from tiny models, and headless Debian Chromium driving it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

HOSTILE_TEXTS = ["<img src=x onerror=alert(1)> was great", "</script><script>alert(2)</script> so bad"]
MAIN_RUN = "sweep/lr_1e-3"
OTHER_RUN = "sweep/lr_3e-4"
OVERLAY_RUN = "overlay/sharpened"
STEPS = (0, 10, 20, 30)


def _skip_without_browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run browser tests")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright package is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_layer_run(run_dir: Path) -> None:
    """A one-layer model whose probe has a one-token example: two of the states that need a message."""
    from attnflows_callback import AttentionRecorder, ProbeSet
    from attnflows_callback.probe import TokenizedProbe

    from tests.helpers import tiny_model, tokenizer

    probe = ProbeSet(["x", "hello world"], labels=[0, 1], label_names=["negative", "positive"])
    tokenized = TokenizedProbe(probe_set=probe, input_ids=[[101], [101, 7592, 2088, 102]],
                               tokens=[["[CLS]"], ["[CLS]", "hello", "world", "[SEP]"]], word_ids=None,
                               truncated=[False, False], tokenizer_name="minilm-by-hand", max_length=64)
    recorder = AttentionRecorder(tiny_model("bert", layers=1), tokenizer(), tokenized, run_dir, hparams={"layers": 1})
    recorder.snapshot(0)
    recorder.snapshot(5)
    recorder.close("finished")


def _sharpened_run(run_dir: Path) -> None:
    """Attention that changes a lot between two snapshots, so a trace keeps some edges, loses some, gains some."""
    import torch

    from attnflows_callback import AttentionRecorder

    from tests.helpers import probe_set, tiny_model, tokenizer

    model = tiny_model("bert", seed=3)
    recorder = AttentionRecorder(model, tokenizer(), probe_set(), run_dir, hparams={"lr": 0.1, "sharpened": True})
    generator = torch.Generator().manual_seed(7)

    def sharpen(scale):
        with torch.no_grad():
            for layer in model.bert.encoder.layer:
                for lin in (layer.attention.self.query, layer.attention.self.key):
                    lin.weight.mul_(scale).add_(torch.randn(lin.weight.shape, generator=generator))

    sharpen(4)  # peaked attention from the start ...
    recorder.snapshot(0)
    sharpen(1)  # ... that moves some of its peaks by step 10
    recorder.snapshot(10)
    recorder.close("finished")


@pytest.fixture(scope="session")
def logdir(tmp_path_factory) -> Path:
    _skip_without_browser()
    from tests.helpers import PROBE_LABELS, PROBE_TEXTS, write_run

    root = tmp_path_factory.mktemp("logdir")
    texts = PROBE_TEXTS + HOSTILE_TEXTS
    labels = PROBE_LABELS + [1, 0]
    write_run(root / MAIN_RUN, steps=STEPS, texts=texts, labels=labels, hparams={"lr": 1e-3, "seed": 0}, seed=0)
    write_run(root / OTHER_RUN, steps=STEPS, texts=texts, labels=labels, hparams={"lr": 3e-4, "seed": 1}, seed=1)
    write_run(root / "states/training", steps=(0, 10), close_status=None)
    failed = write_run(root / "states/failed", steps=(0, 10, 20), close_status="failed")
    # A shard that cannot be read: the reader skips it and the run lists it as a problem.
    shard = failed / "attnflows" / "snapshots" / "step-000000000020.h5"
    shard.write_bytes(b"not an HDF5 file" * 8)
    _one_layer_run(root / "states/one_layer")
    _sharpened_run(root / OVERLAY_RUN)
    return root


class TensorBoard:
    def __init__(self, logdir: Path, expect_runs: int, pythonpath: Path | None = None):
        """``pythonpath``: a folder put first on the server's PYTHONPATH (a modified copy of the plugin)."""
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(logdir.parent / f"tensorboard-{self.port}.log", "w")
        exe = Path(sys.executable).with_name("tensorboard")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tensorboard.main"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if pythonpath is not None:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(cmd + ["--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/data/plugin/attnflows/runs", timeout=5) as r:
                    if len(json.load(r)["runs"]) >= expect_runs:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError(f"TensorBoard did not come up with {expect_runs} runs; see {self.log.name}")
            time.sleep(0.5)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def tensorboard(logdir):
    server = TensorBoard(logdir, expect_runs=6)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def empty_tensorboard(tmp_path_factory):
    _skip_without_browser()
    server = TensorBoard(tmp_path_factory.mktemp("empty_logdir"), expect_runs=0)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    _skip_without_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Tab:
    """One browser page on TensorBoard's Attention Flows tab, with what went wrong collected."""

    def __init__(self, browser, base_url: str):
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": 1440, "height": 2200}, accept_downloads=True)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.failed_requests: list[str] = []
        self.page.on("response", lambda r: r.status >= 400 and self.failed_requests.append(f"{r.status} {r.url}"))

        def on_dialog(dialog):
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        self.page.on("dialog", on_dialog)
        self.frame = None

    def open(self, url: str | None = None):
        self.page.goto(url or f"{self.base_url}/#attnflows")
        handle = self.page.wait_for_selector("iframe[src*='plugin_entry.html?name=attnflows']", state="attached",
                                             timeout=60000)
        self.frame = handle.content_frame()
        self.frame.wait_for_selector(".af-app[data-renders]", state="attached", timeout=60000)
        self.settle()
        return self.frame

    def settle(self):
        self.frame.wait_for_function("() => window.attnflows && window.attnflows.app.pending === 0", timeout=30000)
        self.frame.evaluate("() => window.attnflows.settled()")

    def state(self) -> dict:
        return self.frame.evaluate("() => ({...window.attnflows.app.state, step: window.attnflows.app.step})")

    def set_state(self, patch: dict):
        self.frame.evaluate("(p) => window.attnflows.app.store.set(p)", patch)
        self.settle()

    def pixels(self, view: str) -> dict:
        """Size, painted-pixel count and a hash of a view's canvas."""
        return self.frame.evaluate(
            """(view) => {
                const c = document.querySelector(`canvas[data-view="${view}"]`);
                if (!c || !c.isConnected || !c.width) return {painted: 0, hash: 0, width: 0};
                const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                let painted = 0, hash = 0;
                for (let i = 0; i < d.length; i += 4) {
                    if (d[i + 3]) painted++;
                    hash = (Math.imul(hash, 31) + d[i] * 65536 + d[i + 1] * 256 + d[i + 2] + d[i + 3]) | 0;
                }
                return {painted, hash, width: c.width, height: c.height};
            }""",
            view,
        )

    def screenshot(self, name: str):
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self):
        self.context.close()


@contextlib.contextmanager
def checked_tab(browser, server: TensorBoard):
    """A :class:`Tab` on ``server``; on the way out, no dialog may have opened and no console error been logged."""
    t = Tab(browser, server.url)
    yield t
    t.close()
    assert not t.dialogs, f"a dialog opened: {t.dialogs}"
    assert not t.errors, f"console errors: {t.errors}; failed requests: {t.failed_requests}"


@pytest.fixture
def tab(browser, tensorboard):
    with checked_tab(browser, tensorboard) as t:
        yield t

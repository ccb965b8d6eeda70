"""Against a real `tensorboard` process on a loopback port: listed, live, and robust to a corrupted shard."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers import nudge, probe_set, tiny_model, tokenizer

from .conftest import PREFIX

WAIT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(base: str, path: str):
    """(status, body bytes) of GET base + path."""
    try:
        with urllib.request.urlopen(base + path, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def tensorboard_process(root, log_path, extra_args=()):
    """A real ``tensorboard`` on a free loopback port over ``root`` (output to ``log_path``); yields its base URL."""
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(root), "--host", "127.0.0.1", "--port",
             str(port), "--reload_interval", "1", *extra_args], stdout=log, stderr=subprocess.STDOUT)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module", params=["auto", "false"], ids=["load_fast=auto", "load_fast=false"])
def server(request, logdir, tmp_path_factory):
    """A TensorBoard process over a small logdir: a good run and one with a corrupted shard."""
    mode = request.param
    root = tmp_path_factory.mktemp(f"server-{mode}") / "logs"
    for name in ("sweep/lr_1", "corrupt"):
        shutil.copytree(logdir / name, root / name)
    with tensorboard_process(root, root.parent / "tensorboard.log",
                             [] if mode == "auto" else ["--load_fast", "false"]) as base:
        wait_for(lambda: json.loads(fetch(base, "/data/plugins_listing")[1])["attnflows"]["enabled"],
                 f"the plugin to be enabled under load_fast={mode}")
        yield base, root, mode


def runs(base: str) -> dict:
    status, body = fetch(base, f"{PREFIX}/runs")
    assert status == 200
    return {r["run"]: r for r in json.loads(body)["runs"]}


def test_plugin_is_listed_enabled_and_serves_its_frontend(server):
    base, _, _ = server
    listing = json.loads(fetch(base, "/data/plugins_listing")[1])["attnflows"]
    assert listing["enabled"] and listing["tab_name"] == "Attention Flows"
    status, body = fetch(base, f"{PREFIX}/index.js")
    assert status == 200 and b"render" in body
    assert set(runs(base)) == {"sweep/lr_1", "corrupt"}


def test_a_corrupted_shard_costs_only_its_own_snapshot(server):
    base, _, _ = server
    corrupt = runs(base)["corrupt"]
    assert corrupt["steps"] == [0, 20]
    assert [p["file"] for p in corrupt["problems"]] == ["step-000000000010.h5"]
    for step in (0, 20):
        assert fetch(base, f"{PREFIX}/attention?run=corrupt&example=0&step={step}")[0] == 200
        assert fetch(base, f"{PREFIX}/flow?run=corrupt&example=0&step={step}&method=rollout")[0] == 200
    status, body = fetch(base, f"{PREFIX}/attention?run=corrupt&example=0&step=10")
    assert status == 404 and json.loads(body)["error"]
    assert fetch(base, f"{PREFIX}/summary?run=corrupt")[0] == 200


def test_a_live_recorder_shows_new_steps_without_a_restart(server):
    from attnflows_callback import AttentionRecorder

    base, root, mode = server
    model = tiny_model("bert", seed=3)
    recorder = AttentionRecorder(model, tokenizer(), probe_set(), root / f"live-{mode}", hparams={"lr": 1e-3})
    try:
        recorder.snapshot(0)
        recorder.flush()
        name = f"live-{mode}"
        wait_for(lambda: runs(base).get(name, {}).get("steps") == [0], "the new run to appear")
        assert runs(base)[name]["status"] == "running"
        for step in (5, 10):
            nudge(model, seed=step)
            recorder.snapshot(step)
            recorder.flush()
            wait_for(lambda: runs(base)[name]["steps"][-1] == step, f"step {step} to appear")
        assert fetch(base, f"{PREFIX}/attention?run={name}&example=0&step=10")[0] == 200
        summary = json.loads(fetch(base, f"{PREFIX}/summary?run={name}")[1])
        assert summary["steps"] == [0, 5, 10]
    finally:
        recorder.close()
    wait_for(lambda: runs(base)[name]["status"] == "finished", "the finished status")

"""Discovery (tb_plugin/runs.py), bounded caches and live refresh (tb_plugin/run_caches.py), and the pure helpers."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest

from attnflows_tb import api, metadata, params, run_caches
from attnflows_tb.errors import BadRequest, NotFound, safe_text
from attnflows_tb.runs import AttentionCache, RunCache, RunCatalog, run_directory

from .conftest import PREFIX, make_app, snapshot_path


def test_catalog_keeps_only_attnflows_runs_inside_the_logdir(logdir):
    names = ["sweep/lr_1", "gpt", ".", "../outside/secret_run", "/etc", "sweep\\lr_1", "sweep/../gpt", "escape",
             "escape_data", "no_such_run", "sweep", "sweep//lr_1"]
    catalog = RunCatalog(str(logdir), lambda ctx, eid: names)
    assert sorted(catalog.table(None, "").dirs) == ["gpt", "sweep/lr_1"]
    with pytest.raises(NotFound):
        catalog.lookup("escape", None, "")
    assert catalog.lookup("gpt", None, "") == logdir.resolve() / "gpt"


def test_catalog_asks_tensorboard_again_for_an_unknown_name(logdir):
    listed = [["gpt"]]
    catalog = RunCatalog(str(logdir), lambda ctx, eid: listed[0], ttl=3600)
    assert list(catalog.table(None, "").dirs) == ["gpt"]
    listed[0] = ["gpt", "t5"]
    with pytest.raises(NotFound):  # a fresh listing is reused: unknown names cannot flood TensorBoard
        catalog.lookup("t5", None, "")
    catalog.ttl = 0
    assert catalog.lookup("t5", None, "") == logdir.resolve() / "t5"


def test_run_directory_refuses_a_data_folder_that_is_a_symlink_out(logdir):
    root = logdir.resolve()
    assert run_directory(root, "escape") is None and run_directory(root, "escape_data") is None
    assert run_directory(root, "sweep/lr_1") == root / "sweep" / "lr_1"


def test_open_runs_are_bounded_by_count(logdir):
    cache = RunCache(max_runs=2)
    for name in ("gpt", "t5", "sweep/lr_1"):
        cache.get(logdir / name)
    assert len(cache) == 2 and cache.peek(logdir / "gpt") is None
    assert cache.get(logdir / "gpt").run.steps.tolist() == [0, 5]  # reopened on demand


def test_open_runs_are_bounded_by_index_size_keeping_the_latest(logdir):
    cache = RunCache(max_runs=100, max_bytes=1)
    for name in ("gpt", "t5", "sweep/lr_1"):
        cache.get(logdir / name)
    assert len(cache) == 1 and cache.peek(logdir / "sweep" / "lr_1") is not None


def test_decoded_attention_cache_is_bounded_in_bytes(logdir):
    entry = RunCache().get(logdir / "sweep" / "lr_1")
    one = entry.run.attention(0, 0).nbytes
    cache = AttentionCache(max_bytes=int(2.5 * one))
    for i in range(6):
        cache.get(entry, i, 0, "self")
    assert 0 < cache._bytes <= cache.max_bytes and 1 <= len(cache._items) < 6
    assert not cache.get(entry, 5, 0, "self").flags.writeable


class _WaitCountingEvent(threading.Event):
    """An Event that counts the threads blocked in wait(), so a test can wait for them instead of sleeping."""

    def __init__(self):
        super().__init__()
        self._waiting = threading.Condition()
        self.waiters = 0

    def wait(self, timeout=None):
        with self._waiting:
            self.waiters += 1
            self._waiting.notify_all()
        return super().wait(timeout)

    def until_waiters(self, n: int, timeout: float = 30) -> bool:
        with self._waiting:
            return self._waiting.wait_for(lambda: self.waiters >= n, timeout)


@pytest.fixture
def watched_decodes(monkeypatch):
    """Each decode's `done` event counts its waiters; yields the list of decodes started."""
    started: list = []

    class WatchedDecoding(run_caches._Decoding):
        def __init__(self):
            super().__init__()
            self.done = _WaitCountingEvent()
            started.append(self)

    monkeypatch.setattr(run_caches, "_Decoding", WatchedDecoding)
    return started


def test_requests_arriving_together_decode_an_example_once(logdir, watched_decodes):
    entry = RunCache().get(logdir / "sweep" / "lr_1")
    decodes = []
    read = entry.run.attention
    release = threading.Event()

    def held_read(*args):
        decodes.append(args)
        assert release.wait(30)  # held until the other three requests wait for this decode
        return read(*args)

    entry.run.attention = held_read
    cache = AttentionCache()
    results = [None] * 4

    def request(k):
        results[k] = cache.get(entry, 1, 0, "self")

    threads = [threading.Thread(target=request, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    try:
        assert watched_decodes and watched_decodes[0].done.until_waiters(3), "the other requests never waited"
    finally:
        release.set()
    for thread in threads:
        thread.join()
    assert decodes == [(1, 0, "self")]
    assert all(r is results[0] for r in results)
    np.testing.assert_array_equal(results[0], read(1, 0, "self"))


def test_a_decode_that_fails_fails_each_waiting_request_and_blocks_none(logdir, watched_decodes):
    entry = RunCache().get(logdir / "sweep" / "lr_1")
    release = threading.Event()

    def broken_read(*args):
        release.wait(30)  # the first decode fails only once the other requests wait for it
        raise OSError("truncated shard")

    entry.run.attention = broken_read
    cache = AttentionCache()
    errors = []

    def request():
        try:
            cache.get(entry, 1, 0, "self")
        except OSError as err:
            errors.append(err)

    threads = [threading.Thread(target=request) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        assert watched_decodes and watched_decodes[0].done.until_waiters(2), "the other requests never waited"
    finally:
        release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert len(errors) == 3 and not cache._decoding


def test_live_run_shows_new_steps_status_and_removals_without_a_restart(tmp_path, logdir):
    from werkzeug.test import Client

    live = tmp_path / "logs" / "live"
    shutil.copytree(logdir / "sweep" / "lr_1", live)
    for step in (10, 20):
        snapshot_path(live, step).unlink()
    client = Client(make_app(tmp_path / "logs", multiplexer=False))

    def listed():
        return client.get(f"{PREFIX}/runs").json["runs"][0]

    assert listed()["steps"] == [0]
    assert client.get(f"{PREFIX}/summary", query_string={"run": "live"}).json["steps"] == [0]
    for step in (10, 20):  # published as the writer does: a dot-file renamed into place
        tmp = snapshot_path(live, step).with_name(f".step-{step}.tmp")
        shutil.copy(snapshot_path(logdir / "sweep" / "lr_1", step), tmp)
        os.replace(tmp, snapshot_path(live, step))
    assert listed()["steps"] == [0, 10, 20]
    assert client.get(f"{PREFIX}/summary", query_string={"run": "live"}).json["steps"] == [0, 10, 20]
    assert client.get(f"{PREFIX}/attention", query_string={"run": "live", "example": 0, "step": 20}).status_code == 200
    (live / "attnflows" / "status.json").write_text('{"status": "failed"}')
    assert listed()["status"] == "failed"
    snapshot_path(live, 20).unlink()
    assert listed()["steps"] == [0, 10]
    assert client.get(f"{PREFIX}/attention", query_string={"run": "live", "example": 0, "step": 20}).status_code == 404


def test_plugins_listing_does_no_per_run_work_and_a_refused_run_is_logged_once(tmp_path, logdir, monkeypatch, caplog):
    import logging
    import time

    from werkzeug.test import Client

    from attnflows_tb import runs as runs_module

    root = tmp_path / "logs"
    for k in range(40):
        shutil.copytree(logdir / "gpt", root / f"run_{k:02d}")
    (root / "escape").symlink_to(logdir / "gpt", target_is_directory=True)  # a real run, reached by a link out
    checked = []
    real_run_directory = runs_module.run_directory
    monkeypatch.setattr(runs_module, "run_directory", lambda *a, **k: checked.append(a[1]) or real_run_directory(*a, **k))
    caplog.set_level(logging.WARNING, logger="attnflows_tb.runs")
    client = Client(make_app(root, multiplexer=False))
    deadline = time.monotonic() + 60
    while not client.get("/data/plugins_listing").json["attnflows"]["enabled"]:
        assert time.monotonic() < deadline, "the plugin never became active"
        time.sleep(0.1)
    checked.clear()
    for _ in range(50):
        assert client.get("/data/plugins_listing").json["attnflows"]["enabled"]
    assert checked == []  # not one run looked at on TensorBoard's listing path
    for _ in range(3):
        assert len(client.get(f"{PREFIX}/runs").json["runs"]) == 40
        time.sleep(metadata.RUN_TABLE_TTL_S + 0.1)  # the run table is built again each time
    assert len(checked) >= 2 * 41  # /runs does look (its first table may be the scanner's)
    refused = [r for r in caplog.records if "points outside the logdir" in r.getMessage()]
    assert [r.getMessage() for r in refused] == ["attnflows: run 'escape' points outside the logdir; it is not served"]


def test_a_data_folder_swapped_for_a_symlink_out_after_listing_is_refused_at_once(tmp_path, logdir):
    from werkzeug.test import Client

    root = tmp_path / "logs"
    shutil.copytree(logdir / "gpt", root / "swap")
    outside = tmp_path / "outside"
    shutil.copytree(logdir / "sweep" / "lr_1" / "attnflows", outside / "attnflows")
    client = Client(make_app(root, multiplexer=False))
    assert [r["run"] for r in client.get(f"{PREFIX}/runs").json["runs"]] == ["swap"]
    assert client.get(f"{PREFIX}/probe", query_string={"run": "swap"}).status_code == 200  # opened and cached
    shutil.rmtree(root / "swap" / "attnflows")
    (root / "swap" / "attnflows").symlink_to(outside / "attnflows", target_is_directory=True)
    assert client.get(f"{PREFIX}/probe", query_string={"run": "swap"}).status_code == 404
    assert client.get(f"{PREFIX}/attention", query_string={"run": "swap", "example": 0, "step": 0}).status_code == 404
    assert client.get(f"{PREFIX}/runs").json["runs"] == []


# ------------------------------------------------------------ pure helpers
def test_frame_pads_the_header_to_four_bytes():
    for extra in range(8):
        body = api.frame({"x": "y" * extra}, np.ones((2, 3)))
        header, values = api.unframe(body)
        assert (len(body) - values.nbytes) % 4 == 0 and header["shape"] == [2, 3] and values.dtype == np.float32


def test_numbers_round_and_turn_non_finite_into_null():
    assert api.numbers([0.123456789, np.nan, np.inf, 0.0, -2.5e-9]) == [0.123457, None, None, 0.0, -2.5e-09]


def test_params_are_strict():
    assert params.integer({"s": "007"}, "s") == 7
    for bad in ("-1", "1.0", "1e3", "0x1", " 1", "", "١"):
        with pytest.raises(BadRequest):
            params.integer({"s": bad}, "s", required=True)
    for bad in ("nan", "inf", "1e-3", "-0.5", "2", "0.5.1"):
        with pytest.raises(BadRequest):
            params.real({"t": bad}, "t", low=0.0, high=1.0, default=0.1)
    assert params.heads({"heads": ""}) is None
    assert params.resolve_heads([(None, 0), (0, 1)], 2, 2) == [(0, 0), (0, 1), (1, 0)]
    assert params.resolve_heads([(None, 0), (None, 1)], 2, 2) is None


def test_safe_text_strips_paths_and_hdf5_details():
    text = safe_text("OSError: Unable to open file (name = '/home/u/run/x.h5', errno = 2) at /home/u/run/y.h5")
    assert "/home" not in text and "y.h5" in text


@pytest.mark.parametrize("module", ["api", "errors", "params", "registry", "runs", "wire_format"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"attnflows_tb.{module}"))
    assert result.failed == 0 and result.attempted > 0

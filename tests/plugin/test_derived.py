"""Each step's work done once, ahead of the browser (tb_plugin/derived.py, issue 16): the answers are the
same as computed in the request, the background thread fills the example's other snapshots, /aggregate
answers ``pending`` while it works, and the memory kept stays within its byte bounds.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from attnflows_callback.store import RunWriter
from attnflows_tb import api, changes, derived
from attnflows_tb.display import Display
from attnflows_tb.runs import AttentionCache, RunCache

STEPS = (0, 10, 20, 30)
LAYERS, HEADS = 2, 3
TOKENS = [["[CLS]", "the", "fil", "##m", "was", "bad", ".", "[SEP]"], ["[CLS]", "it", "was", "fine", "[SEP]"]]
WORD_IDS = [[-1, 0, 1, 1, 2, 3, 4, -1], [-1, 0, 1, 2, -1]]
DISPLAYS = (Display(), Display("special_punct", "words"), Display("special", "tokens"))


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def entry(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("derived") / "run"
    writer = RunWriter(run_dir, meta={"probe_id": "p", "model": {"identity": "m"}, "classification_position": "first",
                                      "streams": {"self": {"layers": LAYERS, "heads": HEADS}}},
                       probe_arrays={"texts": ["the film was bad .", "it was fine"], "labels": np.array([0, 1]),
                                     "label_names": ["negative", "positive"], "input_ids": [[1] * 8, [1] * 5],
                                     "tokens": TOKENS[0] + TOKENS[1], "word_ids": WORD_IDS,
                                     "truncated": np.zeros(2, bool)})
    rng = np.random.default_rng(0)
    for step in STEPS:
        attention = [_softmax(3 * rng.standard_normal((LAYERS, HEADS, len(t), len(t)))) for t in TOKENS]
        writer.write_snapshot(step, attention={"self": attention}, logits=rng.standard_normal((2, 2)))
    writer.set_status("finished")
    writer.close()
    return RunCache().get(run_dir)


def settle(cache: derived.StepCache, timeout: float = 30.0) -> None:
    """Wait until the background thread has run every queued job."""
    deadline = time.monotonic() + timeout
    while (cache._queued or not cache._jobs.empty()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not cache._queued, "the background thread did not finish"


@pytest.mark.parametrize("display", DISPLAYS, ids=["raw", "words", "special"])
@pytest.mark.parametrize("method, view", [("raw", None), ("rollout", None), ("flow", None), ("trace", None),
                                          ("trace", "raw"), ("trace", "rollout"), ("trace", "flow"),
                                          ("trace", "per_head")])
def test_flow_answers_from_the_kept_head_means_equal_those_computed_in_the_request(entry, display, method, view):
    plain, kept = AttentionCache(), derived.StepCache(warm=False)
    for step in (10, 20):
        for example in (0, 1):
            query = dict(example=example, step=step, method=method, view=view, display=display, tau=0.05)
            expected = api.flow_impl("r", entry, plain, **query)
            for _ in range(2):  # computed, then from the cache
                got = api.flow_impl("r", entry, kept, **query)
                if isinstance(expected, bytes):
                    (h1, v1), (h2, v2) = api.unframe(expected), api.unframe(got)
                    assert h1 == h2
                    np.testing.assert_allclose(v2, v1, atol=1e-6)
                else:
                    assert got == expected


def test_head_metrics_are_kept_per_example_and_step_and_equal_the_request_path(entry):
    kept = derived.StepCache(warm=False)
    for step in STEPS:
        for example in (None, 0, 1):
            assert api.heads_impl("r", entry, kept, step=step, example=example) == \
                api.heads_impl("r", entry, AttentionCache(), step=step, example=example)


def test_one_request_prepares_the_examples_other_snapshots_in_the_background(entry):
    cache = derived.StepCache()
    display = Display("special_punct", "words")
    api.flow_impl("r", entry, cache, example=1, step=20, method="trace", view="raw", display=display)
    settle(cache)
    for step in STEPS:
        key = derived._key("mean", entry, 1, step, "self", derived.display_key(display))
        assert key in cache._derived, f"step {step} was not prepared"
    assert cache.warmed == len(STEPS) - 1
    assert derived._key("mean", entry, 0, 10, "self", derived.display_key(display)) not in cache._derived


def test_aggregate_answers_pending_until_the_background_rows_are_ready_then_the_same_answer(entry, monkeypatch):
    expected = changes.aggregate_impl("r", entry, step=30)
    cache = derived.StepCache()
    monkeypatch.setattr(derived, "AGGREGATE_INLINE_VALUES", 0)  # any run counts as large: rows go to the background
    with pytest.raises(derived.Pending) as pending:
        changes.aggregate_impl("r", entry, step=30, cache=cache)
    assert (pending.value.ready, pending.value.needed) == (0, 2 * 2)  # 2 examples at steps 0 and 30
    settle(cache)
    assert changes.aggregate_impl("r", entry, step=30, cache=cache) == expected
    monkeypatch.setattr(derived, "AGGREGATE_INLINE_VALUES", 2**24)  # small runs: done in the request
    assert changes.aggregate_impl("r", entry, step=20, cache=derived.StepCache(warm=False)) == \
        changes.aggregate_impl("r", entry, step=20)


def test_the_route_answers_pending_json_that_the_tab_polls_then_the_answer(entry, monkeypatch):
    from werkzeug.test import Client

    from .conftest import PREFIX, make_app

    monkeypatch.setattr(derived, "AGGREGATE_INLINE_VALUES", 0)
    client = Client(make_app(entry.run_dir.parent, multiplexer=False))
    body = client.get(f"{PREFIX}/aggregate", query_string={"run": "run", "step": 10}).json
    assert body == {"run": "run", "step": 10, "pending": True, "ready": 0, "needed": 4}
    deadline = time.monotonic() + 30
    while body.get("pending") and time.monotonic() < deadline:
        time.sleep(0.05)
        body = client.get(f"{PREFIX}/aggregate", query_string={"run": "run", "step": 10}).json
    assert body["count"] == 2 and body["heads"]["js"]["mean"] and "pending" not in body


def test_kept_memory_stays_within_its_byte_bounds(entry):
    one_mean = derived.mean_shown(entry, AttentionCache(), 0, 0, "self", Display()).attention.nbytes
    budget = 3 * one_mean + 4096
    cache = derived.StepCache(max_bytes=2 * LAYERS * HEADS * 64 * 4, derived_bytes=budget)
    for step in STEPS:
        for example in (0, 1):
            for display in DISPLAYS:
                api.flow_impl("r", entry, cache, example=example, step=step, method="rollout", display=display)
                api.heads_impl("r", entry, cache, step=step, example=example)
                assert cache.derived_bytes_kept <= budget
                assert cache._bytes <= cache.max_bytes
    settle(cache)
    assert 0 < cache.derived_bytes_kept <= budget
    assert cache._bytes <= cache.max_bytes


def test_stopping_lets_the_running_job_finish_then_ends_the_background_thread_without_running_more():
    # Run for every cache at interpreter exit: a daemon thread inside HDF5 or numpy while Python tears
    # down crashed the test process with a segmentation fault after every test had passed.
    cache = derived.StepCache()
    started, release, done = threading.Event(), threading.Event(), []

    def job():
        started.set()
        release.wait(30)
        done.append("first")

    cache.submit(("first",), job)
    cache.submit(("second",), lambda: done.append("second"))
    assert started.wait(30)
    stopping = threading.Thread(target=cache.stop)
    stopping.start()
    release.set()
    stopping.join(30)
    assert done == ["first"]
    assert not cache._worker.is_alive()
    cache.submit(("third",), lambda: done.append("third"))  # a stopped cache starts no new thread
    assert not cache._worker.is_alive() and done == ["first"]

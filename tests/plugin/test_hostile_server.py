"""Hostile files against a real `tensorboard` process: each costs one 4xx for itself, and nothing else.

The logdir's own path holds spaces and parentheses, so that any path fragment in an error
body shows. Every request has a timeout: a request that blocks (a FIFO handed to HDF5, which
holds a process-wide lock) fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.helpers import PROBE_LABELS, PROBE_TEXTS, write_run, zstd_frame

from .conftest import PREFIX, snapshot_path
from .test_server import fetch, tensorboard_process, wait_for

BIDI_TEXT = "live \u202egnp.exe"
BIDI_RUN = "bidi\u202erun"


def replace_dataset(path: Path, name: str, **create) -> None:
    with h5py.File(path, "r+") as f:
        attrs = dict(f[name].attrs)
        del f[name]
        f.create_dataset(name, **create).attrs.update(attrs)


@pytest.fixture(scope="module")
def hostile(logdir, tmp_path_factory):
    """(base url, logdir, TensorBoard's log file) of a TensorBoard over good and hostile runs."""
    base_dir = tmp_path_factory.mktemp("hostile")
    root = base_dir / "pe rm (x)log dir"
    good = logdir / "sweep" / "lr_1"
    for name in ("good", "fifo_shard", "fifo_status", "fifo_probe", "bomb", "mixed", "shape"):
        shutil.copytree(good, root / name)
    snapshot_path(root / "fifo_shard", 10).unlink()
    os.mkfifo(snapshot_path(root / "fifo_shard", 10))
    for run, file in (("fifo_status", "status.json"), ("fifo_probe", "probe.h5")):
        (root / run / "attnflows" / file).unlink()
        os.mkfifo(root / run / "attnflows" / file)
    # A Zstandard frame of 4 MiB of zeros in place of example 0's [2, 4, 9, 9] codes (the default encoding).
    with h5py.File(snapshot_path(root / "bomb", 10), "r+") as f:
        f["attention/self/0"].id.write_direct_chunk((0, 0, 0, 0), zstd_frame(bytes(4 * 2**20)))
    replace_dataset(snapshot_path(root / "mixed", 10), "logits", data=np.zeros((6, 3), np.float32))
    with h5py.File(snapshot_path(root / "shape", 20), "r+") as f:
        f["attention/self/0"].attrs["shape"] = np.array([2, 4, 3, 3])
    write_run(root / BIDI_RUN, steps=(0,), texts=[BIDI_TEXT] + PROBE_TEXTS[1:], labels=PROBE_LABELS)
    outside = base_dir / "outside"
    shutil.copytree(good, outside / "secret_run")
    (root / "escape").symlink_to(outside / "secret_run", target_is_directory=True)

    log_path = base_dir / "tensorboard.log"
    with tensorboard_process(root, log_path) as base:
        wait_for(lambda: json.loads(fetch(base, "/data/plugins_listing")[1])["attnflows"]["enabled"],
                 "the plugin to be enabled")
        wait_for(lambda: len(json.loads(fetch(base, f"{PREFIX}/runs")[1])["runs"]) == 7, "every run to be listed")
        yield base, root, log_path


def get(base: str, route: str, **query):
    return fetch(base, f"{PREFIX}/{route}?{urllib.parse.urlencode(query)}")


def listing(base: str) -> tuple[dict, dict]:
    status, body = get(base, "runs")
    assert status == 200
    body = json.loads(body)
    return {r["run"]: r for r in body["runs"]}, {s["run"]: s["reason"] for s in body["skipped"]}


def test_fifos_cost_their_own_file_and_block_no_other_request(hostile):
    base, _, _ = hostile
    for _ in range(3):  # each listing would leave one more thread stuck on a FIFO
        runs, skipped = listing(base)
    assert runs["fifo_shard"]["steps"] == [0, 20]
    assert runs["fifo_shard"]["problems"] == [{"file": "step-000000000010.h5", "reason": (
        "UnsafeFileError: step-000000000010.h5 is a FIFO; attnflows reads only regular files inside the run")}]
    assert runs["fifo_status"]["status"] == "unknown" and runs["fifo_status"]["steps"] == [0, 10, 20]
    assert skipped == {"fifo_probe": "UnsafeFileError: probe.h5 is a FIFO; attnflows reads only regular files "
                                     "inside the run"}
    assert get(base, "probe", run="fifo_probe")[0] == 404
    assert get(base, "attention", run="fifo_shard", example=0, step=10)[0] == 404
    for run in ("good", "fifo_shard", "fifo_status"):
        assert get(base, "attention", run=run, example=0, step=20)[0] == 200
        assert get(base, "summary", run=run)[0] == 200


def test_a_compression_bomb_costs_one_404_and_a_problem(hostile):
    base, _, _ = hostile
    status, body = get(base, "attention", run="bomb", example=0, step=10)
    assert status == 404 and "declares 4194304 bytes; the shape needs 648" in json.loads(body)["error"]
    assert get(base, "attention", run="bomb", example=1, step=10)[0] == 200  # the rest of the shard reads
    assert get(base, "flow", run="bomb", example=2, step=10, method="rollout")[0] == 200
    problems = listing(base)[0]["bomb"]["problems"]
    assert [p["file"] for p in problems] == ["step-000000000010.h5"]


@pytest.mark.parametrize("run, bad_step", [("mixed", 10), ("shape", 20)])
def test_mixed_shapes_make_their_shards_problems_and_every_route_answers(hostile, run, bad_step):
    base, _, _ = hostile
    entry = listing(base)[0][run]
    good_steps = [s for s in (0, 10, 20) if s != bad_step]
    assert entry["steps"] == good_steps and [p["file"] for p in entry["problems"]] == [f"step-{bad_step:012d}.h5"]
    for route, query in (("probe", {}), ("summary", {}), ("heads", {"step": good_steps[-1]})):
        status, body = get(base, route, run=run, **query)
        assert status == 200, body
    probe = json.loads(get(base, "probe", run=run)[1])
    assert probe["steps"] == good_steps and len(probe["predictions"]) == 2
    for step in good_steps:
        assert get(base, "attention", run=run, example=0, step=step)[0] == 200
    assert get(base, "attention", run=run, example=0, step=bad_step)[0] == 404
    assert get(base, "compare", run=run, step=good_steps[0], other_run="good", other_step=0)[0] == 200


def test_error_bodies_carry_no_path_fragment_and_echo_no_query_value(hostile):
    base, root, _ = hostile
    requests = [("probe", {"run": "fifo_probe"}), ("attention", {"run": "good", "example": 0, "step": 987654321}),
                ("attention", {"run": "good", "example": 424242, "step": 0}),
                ("attention", {"run": "good", "example": 0, "step": 0, "layer": 31337}),
                ("flow", {"run": "good", "example": 0, "step": 0, "method": "trace", "source": 8675309}),
                ("flow", {"run": "good", "example": 0, "step": 0, "method": "rollout", "heads": "0:77"}),
                ("attention", {"run": "bomb", "example": 0, "step": 10}), ("probe", {"run": "no such run 5551212"})]
    for route, query in requests:
        status, body = get(base, route, **query)
        text = body.decode("utf-8")
        assert 400 <= status < 500 and set(json.loads(text)) == {"error"}, text
        for fragment in ("pe rm", "(x)", "log dir", str(root.parent), "987654321", "424242", "31337", "8675309",
                         "77", "5551212"):
            assert fragment not in text, (fragment, text)
    _, skipped = listing(base)
    assert all("pe rm" not in reason and "log dir" not in reason for reason in skipped.values())


def test_bidi_controls_in_texts_and_run_names_never_reach_the_browser(hostile):
    base, _, _ = hostile
    runs, _ = listing(base)
    served = BIDI_RUN.replace("\u202e", "\ufffd")
    assert served in runs and BIDI_RUN not in runs
    status, body = get(base, "probe", run=served)  # the served name is the name to ask for
    assert status == 200
    text = body.decode("utf-8")
    assert "\u202e" not in text and json.loads(text)["examples"][0]["text"] == "live \ufffdgnp.exe"
    status, body = get(base, "probe", run=BIDI_RUN)
    assert status == 404


def test_a_run_pointing_outside_is_logged_once_and_plugins_listing_does_no_run_work(hostile):
    base, _, log_path = hostile
    for _ in range(2):  # two rounds, further apart than the run table is reused
        for _ in range(15):
            status, body = fetch(base, "/data/plugins_listing")
            assert status == 200 and json.loads(body)["attnflows"]["enabled"]
        for _ in range(3):
            assert "escape" not in listing(base)[0]
        time.sleep(2.5)
    log = log_path.read_text(errors="replace")
    assert log.count("points outside the logdir") == 1, log[-3000:]

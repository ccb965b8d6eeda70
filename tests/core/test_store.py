"""The run directory: encodings, crash safety under SIGKILL, and a reader that survives bad shards."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from attnflows_callback import ENCODINGS, NotARunError, open_run
from attnflows_callback.store import FORMAT_VERSION, RunExistsError, RunWriter, get_encoding
from tests.helpers import softmax_rows, write_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_encoding_round_trip_within_its_documented_error(name):
    encoding = get_encoding(name)
    rng = np.random.default_rng(0)
    weights = softmax_rows(rng.normal(scale=3, size=(3, 4, 7, 9))).astype(np.float32)
    weights[0, 0, 0] = [1, 0, 0, 0, 0, 0, 0, 0, 0]
    decoded = encoding.decode(encoding.encode(weights), weights.shape)
    assert decoded.dtype == np.float32 and decoded.shape == weights.shape
    error = np.abs(decoded - weights).max()
    assert error <= encoding.max_abs_error + 1e-7
    assert encoding.max_abs_error <= 2e-3


def test_compact_streams_of_the_earlier_preset_still_decode_as_documented():
    import lzma

    from attnflows_callback.store import COMPACT_FILTERS

    weights = softmax_rows(np.random.default_rng(1).normal(scale=3, size=(2, 3, 6, 6))).astype(np.float32)
    codes = np.rint(weights * 255).astype(np.uint8).swapaxes(-1, -2).tobytes()
    written_before = lzma.compress(codes, format=lzma.FORMAT_RAW, filters=COMPACT_FILTERS)  # preset 6
    encoding = get_encoding("compact")
    decoded = encoding.decode(np.frombuffer(written_before, np.uint8), weights.shape)
    np.testing.assert_array_equal(decoded, encoding.decode(encoding.encode(weights), weights.shape))
    assert np.abs(decoded - weights).max() <= encoding.max_abs_error + 1e-7


def test_unknown_encoding_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=r"encoding must be one of \['compact', 'float16', 'uint8', 'zstd-u8'\]"):
        get_encoding("png")


def test_reader_api(tmp_path):
    write_run(tmp_path / "run", steps=(0, 3, 9))
    run = open_run(tmp_path / "run")
    assert run.steps.tolist() == [0, 3, 9]
    assert (run.num_examples, run.num_layers, run.num_heads, run.streams) == (6, 2, 4, ["self"])
    assert run.texts[0] == "the film was not good at all" and run.labels[:2] == [0, 1]
    assert run.tokens(3) == ["[CLS]", "it", "was", "fine", "[SEP]"]
    weights = run.attention(3, 9)
    assert weights.shape == (2, 4, 5, 5) and weights.dtype == np.float32
    assert run.logits(9).shape == (6, 2) and run.predictions(9).shape == (6,)
    assert set(run.summary(9)) == {"entropy", "js_from_start", "cosine_from_start"}
    assert run.meta["format_version"] == FORMAT_VERSION and run.meta["probe_id"] == run.probe_id
    assert run.status["status"] == "finished" and run.problems == []
    assert open_run(tmp_path / "run" / "attnflows").steps.tolist() == [0, 3, 9]  # the data folder opens too
    with pytest.raises(IndexError, match=r"example must be an integer in \[0, 6\)"):
        run.attention(6, 0)
    with pytest.raises(KeyError, match="step 4 is not a snapshot"):
        run.attention(0, 4)
    with pytest.raises(KeyError, match=r"stream must be one of \['self'\]"):
        run.attention(0, 0, stream="cross")


def test_a_directory_that_is_not_a_run_gets_a_clear_error(tmp_path):
    with pytest.raises(NotARunError, match="is not an attnflows run"):
        open_run(tmp_path)
    (tmp_path / "attnflows").mkdir()
    (tmp_path / "attnflows" / "run.json").write_text("{not json")
    with pytest.raises(NotARunError, match="not valid JSON"):
        open_run(tmp_path)


def test_corrupted_truncated_and_future_shards_are_skipped_and_reported(tmp_path):
    run_dir = write_run(tmp_path / "run", steps=(0, 1, 2, 3))
    snaps = run_dir / "attnflows" / "snapshots"
    (snaps / "step-000000000001.h5").write_bytes((snaps / "step-000000000001.h5").read_bytes()[:300])
    (snaps / "step-000000000002.h5").write_bytes(b"\x00garbage" * 50)
    with h5py.File(snaps / "step-000000000003.h5", "r+") as f:
        f.attrs["format_version"] = 99
    run = open_run(run_dir)
    assert run.steps.tolist() == [0]
    reasons = {p.file: p.reason for p in run.problems}
    assert set(reasons) == {"step-000000000001.h5", "step-000000000002.h5", "step-000000000003.h5"}
    assert "unknown format version 99" in reasons["step-000000000003.h5"]
    assert all(str(tmp_path) not in r for r in reasons.values())  # safe to show: no absolute paths
    assert run.attention(0, 0).shape[0] == 2


def test_links_out_of_the_run_are_refused(tmp_path):
    run_dir = write_run(tmp_path / "run", steps=(0, 1, 2))
    snaps = run_dir / "attnflows" / "snapshots"
    outside = tmp_path / "secret.h5"
    with h5py.File(outside, "w") as f:
        f["data"] = np.zeros(4)
    (snaps / "step-000000000001.h5").unlink()
    (snaps / "step-000000000001.h5").symlink_to(outside)
    with h5py.File(snaps / "step-000000000002.h5", "r+") as f:
        del f["attention/self/0"]
        f["attention/self/0"] = h5py.ExternalLink(str(outside), "data")
    run = open_run(run_dir)
    reasons = {p.file: p.reason for p in run.problems}
    assert "symbolic link" in reasons["step-000000000001.h5"]
    assert "ExternalLink" in reasons["step-000000000002.h5"]
    assert run.steps.tolist() == [0]


def test_refresh_sees_new_and_purged_snapshots_while_a_reader_is_open(tmp_path):
    run_dir = write_run(tmp_path / "run", steps=(0, 5))
    run = open_run(run_dir)
    run.attention(0, 5)  # hold a handle open: the writer must not be blocked by it
    write_run(run_dir, steps=(5, 6, 7), resume=True)  # resume at 5 replaces 5 and appends
    assert run.refresh() == [5, 6, 7]
    assert run.steps.tolist() == [0, 5, 6, 7]


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    sys.path.insert(0, {root!r})
    from attnflows_callback.store import RunWriter
    from tests.helpers import softmax_rows
    lengths = [5, 9, 13]
    writer = RunWriter(sys.argv[1], meta={{"probe_id": "p", "model": {{"identity": "m"}},
                        "streams": {{"self": {{"layers": 2, "heads": 3}}}}}},
                       probe_arrays={{"texts": ["a", "b", "c"], "input_ids": [[1] * n for n in lengths],
                                      "tokens": ["t"] * sum(lengths), "truncated": np.zeros(3, bool)}},
                       resume=True, marker_events_file=False)
    rng = np.random.default_rng(int(sys.argv[2]))
    step = (writer.steps() or [-1])[-1] + 1
    print("ready", flush=True)
    while True:
        attention = {{"self": [softmax_rows(rng.normal(size=(2, 3, n, n))).astype(np.float32) for n in lengths]}}
        writer.write_snapshot(step, attention=attention, logits=rng.normal(size=(3, 2)))
        step += 1
    """
)


def test_snapshot_survives_sigkill_mid_write_with_a_reader_alongside(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=ROOT))
    run_dir = tmp_path / "run"
    rng = random.Random(0)
    seen_steps = 0
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(run_dir), str(attempt)], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        # A reader reads everything while the writer writes, until it has seen a few new snapshots
        # (a random number, so the kill lands at different points of a write): polled, not timed.
        wanted = seen_steps + rng.randint(1, 4)
        deadline = time.monotonic() + 120  # only a hung writer gets here
        reader = None
        while reader is None or len(reader.steps) < wanted:
            assert time.monotonic() < deadline, "the writer wrote too few snapshots in 120 s"
            try:
                reader = reader or open_run(run_dir)
            except (NotARunError, OSError):
                continue
            reader.refresh()
            for step in reader.steps[-3:]:
                assert reader.attention(2, int(step)).shape == (2, 3, 13, 13)
            assert reader.problems == []
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        run = open_run(run_dir)
        assert run.problems == [], run.problems
        assert run.steps.tolist() == list(range(len(run.steps)))  # no gaps, nothing half-written
        for step in run.steps:
            weights = run.attention(1, int(step))
            np.testing.assert_allclose(weights.sum(-1), 1.0, atol=9 * 2e-3)
        assert len(run.steps) > seen_steps
        seen_steps = len(run.steps)
        with h5py.File(run_dir / "attnflows" / "snapshots" / f"step-{run.steps[-1]:012d}.h5", "r") as f:
            assert f.attrs["step"] == run.steps[-1]  # plain h5py opens the newest shard, no h5clear


def test_writer_refuses_another_probe_set_or_model_and_keeps_what_is_there(tmp_path):
    def writer(probe_id="p", identity="m", **kw):
        return RunWriter(tmp_path, meta={"probe_id": probe_id, "model": {"identity": identity},
                                         "streams": {"self": {"layers": 1, "heads": 1}}},
                         probe_arrays={"texts": ["a"], "input_ids": [[1, 2]], "tokens": ["x", "y"],
                                       "truncated": np.zeros(1, bool)}, **kw)

    first = writer()
    first.write_snapshot(0, attention={"self": [np.full((1, 1, 2, 2), 0.5, np.float32)]})
    with pytest.raises(RunExistsError, match="being written by another writer"):
        writer(resume=True)  # one writer per run, even in one process
    first.close()
    with pytest.raises(RunExistsError, match="another probe set"):
        writer(probe_id="q")
    with pytest.raises(RunExistsError, match="another model"):
        writer(identity="n")
    with pytest.raises(RunExistsError, match="pass resume=True"):
        writer()
    assert open_run(tmp_path).steps.tolist() == [0]
    replaced = writer(probe_id="q", overwrite=True)
    assert replaced.steps() == [] and json.loads((tmp_path / "attnflows" / "run.json").read_text())["probe_id"] == "q"


def test_encoder_decoder_streams_come_in_canonical_order_with_the_encoder_first(tmp_path):
    run = open_run(write_run(tmp_path / "t5", steps=(0,), family="t5", labels=None))
    assert run.streams == ["encoder", "decoder", "cross"] and run.default_stream == "encoder"
    assert run.stream_tokens(0, "cross")[0][0] == "<start>"

"""A hostile or damaged file in a run costs its own snapshot, in bounded time and memory, and nothing else.

Each case is a real file on disk read by the real reader: FIFOs and devices where HDF5 files
or JSON should be, compression bombs, declared sizes that do not fit the run, links swapped in
after the run was indexed. Reads that could block run in a subprocess with a timeout, so a
regression fails instead of hanging the suite.
"""

import json
import lzma
import os
import shutil
import subprocess
import sys
import textwrap
import tracemalloc

import h5py
import numpy as np
import pytest

from attnflows_callback import NotARunError, open_run
from attnflows_callback.store import COMPACT_ENCODE_FILTERS, UnsafeFileError, decompress_exactly
from tests.helpers import write_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    # compact: these tests forge LZMA streams; tests/core/test_encodings_standard.py forges zstd-u8 chunks
    return write_run(tmp_path_factory.mktemp("hostile") / "run", steps=(0, 10, 20), encoding="compact")


@pytest.fixture()
def run_copy(recorded, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(recorded, copy)
    return copy


def shard(run_dir, step):
    return run_dir / "attnflows" / "snapshots" / f"step-{step:012d}.h5"


def in_subprocess(code: str, timeout: float = 120) -> dict:
    """Run ``code`` (which prints one JSON line) in a fresh interpreter; a blocked open fails the test."""
    script = f"import sys, json\nsys.path.insert(0, {ROOT!r})\n" + textwrap.dedent(code)
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("the reader blocked on a hostile file") from None
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------- non-regular files
def test_fifos_in_place_of_a_shard_and_the_status_cost_their_own_file_only(run_copy):
    shard(run_copy, 10).unlink()
    os.mkfifo(shard(run_copy, 10))
    (run_copy / "attnflows" / "status.json").unlink()
    os.mkfifo(run_copy / "attnflows" / "status.json")
    found = in_subprocess(f"""
        from attnflows_callback import open_run
        run = open_run({str(run_copy)!r})
        print(json.dumps({{"steps": run.steps.tolist(), "problems": [[p.file, p.reason] for p in run.problems],
                           "status": run.status["status"], "shape": list(run.attention(0, 20).shape)}}))
    """)
    assert found["steps"] == [0, 20] and found["status"] == "unknown" and found["shape"] == [2, 4, 9, 9]
    assert found["problems"] == [["step-000000000010.h5",
                                  "UnsafeFileError: step-000000000010.h5 is a FIFO; attnflows reads only regular "
                                  "files inside the run"]]


def test_a_fifo_probe_or_run_json_refuses_the_run_without_blocking(run_copy, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run_copy, other)
    (run_copy / "attnflows" / "probe.h5").unlink()
    os.mkfifo(run_copy / "attnflows" / "probe.h5")
    (other / "attnflows" / "run.json").unlink()
    os.mkfifo(other / "attnflows" / "run.json")
    found = in_subprocess(f"""
        from attnflows_callback import open_run
        errors = []
        for path in ({str(run_copy)!r}, {str(other)!r}):
            try:
                open_run(path)
            except OSError as err:
                errors.append([type(err).__name__, str(err)])
        print(json.dumps(errors))
    """)
    assert found[0] == ["UnsafeFileError", "probe.h5 is a FIFO; attnflows reads only regular files inside the run"]
    assert found[1][0] == "NotARunError"


def test_a_symlink_swapped_in_after_the_run_was_indexed_is_refused_when_opened(run_copy, tmp_path):
    outside = tmp_path / "outside.h5"
    shutil.copy(shard(run_copy, 20), outside)
    run = open_run(run_copy)
    assert run.steps.tolist() == [0, 10, 20]
    shard(run_copy, 20).unlink()
    shard(run_copy, 20).symlink_to(outside)  # the index still lists step 20 as a regular file
    before = os.stat(outside).st_atime_ns
    os.utime(outside, ns=(0, os.stat(outside).st_mtime_ns))
    with pytest.raises(UnsafeFileError, match="step-000000000020.h5 is a symbolic link"):
        run.attention(0, 20)
    assert os.stat(outside).st_atime_ns == 0 != before  # HDF5 never opened it
    assert run.attention(0, 10).shape == (2, 4, 9, 9)


# ---------------------------------------------------------------- size limits
def test_decode_refuses_a_stream_that_inflates_past_its_declared_shape_with_bounded_memory():
    bomb = lzma.compress(bytes(64 * 2**20), format=lzma.FORMAT_RAW, filters=COMPACT_ENCODE_FILTERS)
    assert len(bomb) < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="inflates to more than the 1000 bytes its shape declares"):
            decompress_exactly(bomb, 1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20  # the decoder's 8 MiB dictionary and at most expected + 1 bytes out, not 64 MiB
    good = lzma.compress(bytes(10), format=lzma.FORMAT_RAW, filters=COMPACT_ENCODE_FILTERS)
    with pytest.raises(ValueError, match="inflates to 10 bytes, its shape declares 11"):
        decompress_exactly(good, 11)
    with pytest.raises(ValueError, match="followed by other data"):
        decompress_exactly(good + bytes(4 * 2**20), 10)  # lzma.decompress would decode 4 Mi empty streams


def replace_dataset(path, name, **create):
    with h5py.File(path, "r+") as f:
        attrs = dict(f[name].attrs) if name in f else {}
        if name in f:
            del f[name]
        ds = f.create_dataset(name, **create)
        ds.attrs.update(attrs)


def test_a_compression_bomb_in_a_shard_is_one_problem_and_costs_bounded_memory(run_copy):
    # 4 MiB of zeros in a 669-byte stream, within the size a [2, 4, 9, 9] stream may take: refused
    # after 2*4*9*9 + 1 bytes of output.
    bomb = lzma.compress(bytes(4 * 2**20), format=lzma.FORMAT_RAW, filters=COMPACT_ENCODE_FILTERS)
    replace_dataset(shard(run_copy, 10), "attention/self/0", data=np.frombuffer(bomb, np.uint8))
    # 200 MiB of zeros (31 KB of stream): more stream than any [2, 4, 9, 9] tensor needs, refused unread.
    bigger = lzma.compress(bytes(200 * 2**20), format=lzma.FORMAT_RAW, filters=COMPACT_ENCODE_FILTERS)
    replace_dataset(shard(run_copy, 20), "attention/self/0", data=np.frombuffer(bigger, np.uint8))
    tracemalloc.start()
    try:
        run = open_run(run_copy)
        with pytest.raises(ValueError, match="inflates to more than the 648 bytes its shape declares"):
            run.attention(0, 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * 2**20  # the decoder's 8 MiB dictionary; not 4 MiB more, nor 200 MiB
    assert run.steps.tolist() == [0, 10]
    assert run.problems[0].file == "step-000000000020.h5" and "more than 'compact' needs" in run.problems[0].reason
    assert run.attention(1, 10).shape == (2, 4, 7, 7)  # the rest of the bombed shard still reads


def test_zero_bytes_where_a_stream_belongs_are_refused_unread(run_copy):
    # 4 MiB of zero bytes (a few KB on disk with deflate): lzma.decompress would read each as a stream.
    replace_dataset(shard(run_copy, 20), "attention/self/1", data=np.zeros(4 * 2**20, np.uint8),
                    compression="gzip", chunks=(2**20,))
    assert shard(run_copy, 20).stat().st_size < 200_000
    run = open_run(run_copy)
    assert run.steps.tolist() == [0, 10]
    assert "stores 4194304 values of uint8, more than 'compact' needs" in run.problems[0].reason


def test_a_logits_dataset_declared_huge_is_refused_before_it_is_read(run_copy):
    replace_dataset(shard(run_copy, 10), "logits", shape=(6, 2**26), dtype=np.float32, compression="gzip",
                    chunks=(1, 2**20))  # 1.5 GiB declared, a few KB on disk
    assert shard(run_copy, 10).stat().st_size < 100_000
    tracemalloc.start()
    try:
        run = open_run(run_copy)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20  # not 1.5 GiB
    assert run.steps.tolist() == [0, 20]
    assert "logits have shape [6, 67108864]" in run.problems[0].reason


def test_mixed_logits_and_attention_shapes_make_those_shards_problems(run_copy):
    replace_dataset(shard(run_copy, 10), "logits", data=np.zeros((6, 3), np.float32))
    with h5py.File(shard(run_copy, 20), "r+") as f:
        f["attention/self/2"].attrs["shape"] = np.array([2, 4, 3, 3])
    run = open_run(run_copy)
    assert run.steps.tolist() == [0]
    reasons = {p.file: p.reason for p in run.problems}
    assert "logits have 3 classes; this run's snapshots have 2" in reasons["step-000000000010.h5"]
    assert "declares shape [2, 4, 3, 3]; run.json and the probe say [2, 4, 12, 12]" in reasons["step-000000000020.h5"]
    assert run.logits(0).shape == (6, 2)


def test_a_summary_of_another_shape_is_a_problem(run_copy):
    replace_dataset(shard(run_copy, 10), "summary/self/entropy", data=np.zeros((6, 2, 5), np.float32))
    run = open_run(run_copy)
    assert run.steps.tolist() == [0, 20]
    assert "has shape [6, 2, 5]; this run needs [6, 2, 4]" in run.problems[0].reason


def test_a_huge_run_json_is_refused(run_copy):
    with open(run_copy / "attnflows" / "run.json", "ab") as f:
        f.write(b" " * (17 * 2**20))
    with pytest.raises(UnsafeFileError, match="run.json is larger than"):
        open_run(run_copy)


def test_a_directory_that_is_not_a_run_still_says_so(tmp_path):
    with pytest.raises(NotARunError):
        open_run(tmp_path)

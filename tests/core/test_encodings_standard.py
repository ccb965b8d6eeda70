"""The default encoding ``zstd-u8``: a standard HDF5 filter any h5py reads, every older encoding still read.

Shards of the default encoding open with plain h5py after ``import hdf5plugin`` (the snippet in
docs/format.md runs here as written, in an interpreter that never imports attnflows), and what
it reads equals what attnflows reads. A filtered chunk that lies about its size, is corrupted or
carries another filter is refused for that tensor only, before the filter allocates anything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from attnflows_callback import ENCODINGS, open_run
from attnflows_callback.encodings import DEFAULT_ENCODING, ZSTD_FILTER_ID, zstd_frame_content_size
from tests.core.test_hostile_files import shard
from tests.helpers import write_run, zstd_frame

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("zstd") / "run", steps=(0, 10))


@pytest.fixture()
def run_copy(recorded, tmp_path):
    return shutil.copytree(recorded, tmp_path / "run")


def documented_snippet() -> str:
    """The code block of docs/format.md's "Reading a shard without attnflows"."""
    with open(os.path.join(ROOT, "docs", "format.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## Reading a shard without attnflows"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_default_is_zstd_u8_with_a_standard_filter_and_its_scale_and_axes_on_each_dataset(recorded):
    assert DEFAULT_ENCODING == "zstd-u8" and open_run(recorded).meta["encoding"] == "zstd-u8"
    with h5py.File(shard(recorded, 10), "r") as f:
        assert f.attrs["encoding"] == "zstd-u8"
        ds = f["attention/self/0"]
        plist = ds.id.get_create_plist()
        assert [plist.get_filter(k)[0] for k in range(plist.get_nfilters())] == [ZSTD_FILTER_ID]
        assert ds.dtype == np.uint8 and ds.shape == ds.chunks == (2, 4, 9, 9)
        assert ds.attrs["axes"] == "layer,head,key,query" and ds.attrs["scale"] == pytest.approx(1 / 255)


def test_the_documented_snippet_reads_a_shard_with_plain_h5py_as_attnflows_does(recorded, tmp_path):
    # Run as written in a fresh interpreter that cannot import attnflows, from the run's folder.
    os.symlink(recorded, tmp_path / "run")
    script = documented_snippet() + "\nimport json, sys\nprint(json.dumps({'modules': sorted(m for m in sys.modules if m.startswith('attnflows')), 'weights': weights.tolist()}))\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["modules"] == []
    stock = np.asarray(result["weights"])
    ours = open_run(recorded).attention(3, 10)
    assert stock.shape == ours.shape == (2, 4, 5, 5)
    np.testing.assert_allclose(stock, ours, atol=1e-6)


@pytest.mark.parametrize("name", ["compact", "uint8", "float16", "zstd-u8"])
def test_every_encoding_writes_shards_that_still_read_within_its_error(name, tmp_path):
    run_dir = write_run(tmp_path / "run", steps=(0, 2), encoding=name)
    run = open_run(run_dir)
    assert run.meta["encoding"] == name and run.problems == []
    reference = open_run(run_dir)  # a second reader, decoding cold
    for i in range(run.num_examples):
        weights = run.attention(i, 2)
        assert weights.dtype == np.float32 and weights.shape == run.expected_shape(i)
        np.testing.assert_array_equal(weights, reference.attention(i, 2))
        rows = weights.sum(axis=-1)  # softmax rows, each within the encoding's error per weight
        assert np.abs(rows - 1).max() <= ENCODINGS[name].max_abs_error * weights.shape[-1] + 1e-6


def test_resuming_a_compact_run_keeps_writing_compact_shards(tmp_path):
    run_dir = write_run(tmp_path / "run", steps=(0, 2), encoding="compact")
    write_run(run_dir, steps=(5,), resume=True)  # today's default is zstd-u8; the run keeps its own
    run = open_run(run_dir)
    assert run.steps.tolist() == [0, 2, 5] and run.meta["encoding"] == "compact" and run.problems == []
    with h5py.File(shard(run_dir, 5), "r") as f:
        assert f.attrs["encoding"] == "compact"
    assert run.attention(0, 5).shape == (2, 4, 9, 9)


def test_a_zstd_u8_shard_from_before_the_scale_attribute_would_still_read(run_copy):
    # The decode rule is the encoding's, not the attribute's: a shard lacking it reads the same.
    before = open_run(run_copy).attention(0, 10)
    with h5py.File(shard(run_copy, 10), "r+") as f:
        del f["attention/self/0"].attrs["scale"]
    np.testing.assert_array_equal(open_run(run_copy).attention(0, 10), before)


# ------------------------------------------------------------------ hostile filtered chunks
def put_chunk(path, name: str, frame: bytes) -> None:
    with h5py.File(path, "r+") as f:
        f[name].id.write_direct_chunk((0, 0, 0, 0), frame)


def test_a_frame_declaring_more_than_the_shape_needs_is_refused_before_anything_is_allocated(run_copy):
    # 16 MiB of zeros in a frame small enough for example 0's [2, 4, 9, 9] codes: HDF5's filter
    # would allocate and decode all of it; refused after reading the frame header.
    bomb = zstd_frame(bytes(16 * 2**20))
    assert len(bomb) < 648 and zstd_frame_content_size(bomb) == 16 * 2**20
    put_chunk(shard(run_copy, 10), "attention/self/0", bomb)
    # 256 MiB of zeros (8 KB of frame): more than any [2, 4, 9, 9] chunk needs, refused before it is read.
    put_chunk(shard(run_copy, 0), "attention/self/0", zstd_frame(bytes(256 * 2**20)))
    run = open_run(run_copy)
    with pytest.raises(ValueError, match="the Zstandard frame declares 16777216 bytes; the shape needs 648"):
        run.attention(0, 10)
    assert run.attention(1, 10).shape == (2, 4, 7, 7)  # the rest of the shard still reads
    with pytest.raises(ValueError, match="stores a chunk of 8[0-9]{3} bytes .*'zstd-u8' stores at most 842"):
        run.attention(0, 0)


def test_a_corrupted_filtered_chunk_is_a_clean_error_for_that_tensor_only(run_copy):
    with h5py.File(shard(run_copy, 10), "r") as f:
        frame, other = (f[f"attention/self/{i}"].id.read_direct_chunk((0, 0, 0, 0))[1] for i in (0, 2))
    put_chunk(shard(run_copy, 10), "attention/self/0", frame[:len(frame) // 2])  # header intact, blocks cut
    put_chunk(shard(run_copy, 10), "attention/self/2", other[:7] + b"\xff" * (len(other) - 7))  # blocks scrambled
    put_chunk(shard(run_copy, 10), "attention/self/1", b"not zstd at all, just text")
    run = open_run(run_copy)
    # HDF5's own filter would hand back uninitialised memory here, without an error.
    with pytest.raises(ValueError, match="'/attention/self/0': the Zstandard frame does not decode"):
        run.attention(0, 10)
    with pytest.raises(ValueError, match="'/attention/self/2': the Zstandard frame does not decode"):
        run.attention(2, 10)
    with pytest.raises(ValueError, match="'/attention/self/1': not a Zstandard frame"):
        run.attention(1, 10)
    assert run.attention(3, 10).shape == (2, 4, 5, 5) and run.attention(0, 0).shape == (2, 4, 9, 9)


def test_a_zstd_u8_dataset_of_another_filter_chunking_or_dtype_is_refused(run_copy):
    codes = np.zeros((2, 4, 9, 9), np.uint8)
    for i, create in enumerate(({"compression": "gzip"}, {"compression": ZSTD_FILTER_ID, "chunks": (2, 2, 9, 9)})):
        with h5py.File(shard(run_copy, 10), "r+") as f:
            attrs = dict(f["attention/self/0"].attrs)
            del f["attention/self/0"]
            f.create_dataset("attention/self/0", data=codes, **({"chunks": codes.shape} | create)).attrs.update(attrs)
        run = open_run(run_copy)
        with pytest.raises(ValueError, match=["not a Zstandard frame", "is not chunked as 'zstd-u8' writes"][i]):
            run.attention(0, 10)
        assert run.attention(1, 10).shape == (2, 4, 7, 7)
    with h5py.File(shard(run_copy, 10), "r+") as f:
        attrs = dict(f["attention/self/0"].attrs)
        del f["attention/self/0"]
        f.create_dataset("attention/self/0", data=codes.astype(np.float32)).attrs.update(attrs)
    run = open_run(run_copy)
    assert run.steps.tolist() == [0] and "'zstd-u8' writes uint8 codes [2, 4, 9, 9]" in run.problems[0].reason


def test_hdf5plugin_loads_on_the_first_zstd_u8_read_not_when_a_run_is_opened(recorded):
    script = f"""
import json, sys
from attnflows_callback import open_run
run = open_run({str(recorded)!r})
indexed = "hdf5plugin" in sys.modules
run.attention(0, 10)
print(json.dumps({{"indexed": indexed, "read": "hdf5plugin" in sys.modules, "steps": run.steps.tolist()}}))
"""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"indexed": False, "read": True, "steps": [0, 10]}


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """One 12 x 12 x 180-token example (4.7M codes, over LAYER_CHUNK_VALUES): stored one chunk per layer."""
    from benchmarks.bench_frontend_long import write_synthetic_run

    run_dir = tmp_path_factory.mktemp("long") / "run"
    write_synthetic_run(run_dir, 180, examples=2, steps=(0,))
    return run_dir


def test_a_long_example_is_stored_a_layer_per_chunk_and_one_layer_reads_alone(long_run):
    from attnflows_callback.encodings import LAYER_CHUNK_VALUES

    assert 12 * 12 * 180 * 180 > LAYER_CHUNK_VALUES
    with h5py.File(shard(long_run, 0)) as f:
        assert f["attention/self/0"].chunks == (1, 12, 180, 180)
        assert f["mean/self/none/0"].chunks == (12, 180, 180)  # 389k codes: one chunk
    run = open_run(long_run)
    whole = run.attention(0, 0)
    assert run.reads_a_layer_alone(0, 0)
    for layer in (0, 7, 11):
        np.testing.assert_array_equal(run.attention(0, 0, layer=layer), whole[layer : layer + 1])
    with pytest.raises(ValueError, match=r"layer must be an integer in \[0, 11\], got 12"):
        run.attention(0, 0, layer=12)


def test_a_damaged_layer_chunk_fails_that_tensor_and_no_other_layer(long_run, tmp_path):
    run_dir = shutil.copytree(long_run, tmp_path / "run")
    with h5py.File(shard(run_dir, 0), "r+") as f:
        dataset = f["attention/self/0"]
        frame = dataset.id.read_direct_chunk((3, 0, 0, 0))[1]
        dataset.id.write_direct_chunk((3, 0, 0, 0), frame[: len(frame) // 2])
    run = open_run(run_dir)
    with pytest.raises(ValueError, match="'/attention/self/0': the Zstandard frame does not decode"):
        run.attention(0, 0)
    with pytest.raises(ValueError, match="the Zstandard frame does not decode"):
        run.attention(0, 0, layer=3)
    assert run.attention(0, 0, layer=4).shape == (1, 12, 180, 180)
    assert run.attention(1, 0).shape == (12, 12, 180, 180)


def test_a_short_example_reads_one_layer_by_cutting_it_from_the_whole(recorded):
    run = open_run(recorded)
    assert not run.reads_a_layer_alone(0, 10)
    part = run.attention(0, 10, layer=1)
    np.testing.assert_array_equal(part, run.attention(0, 10)[1:2])
    assert part.base is None  # a copy: a cache that keeps it holds one layer, not the whole tensor

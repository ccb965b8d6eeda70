"""What the hostile-file defences cost, and what they save, each against its baseline in this process.

- A compression bomb (64 MiB of zeros behind a 648-byte shape): the limited decode
  (`store.decompress_exactly`) against plain `lzma.decompress`, in time and peak traced memory.
- Zero bytes where a stream belongs (256 KiB: `lzma.decompress` reads each as an empty stream).
- Reading one example's attention through the checked reader (`open_regular` + fstat, the
  descriptor handed to HDF5, shapes checked against the run) against plain `h5py.File(path)` and
  `lzma.decompress`, as the reader did before. Goal: <= 1.5x.
- Writing one shard built in memory and published by Python against HDF5 writing the temporary
  file itself (both `uint8` encoding, fsync of file and folder). Goal: <= 1.5x.

Shards hold MiniLM-shaped attention (6 layers x 12 heads, 4 examples of 49 tokens), synthetic.

Run: python benchmarks/bench_safety.py
"""

from __future__ import annotations

import lzma
import os
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from _common import Figure, report

LAYERS, HEADS, TOKENS, EXAMPLES = 6, 12, 49, 4


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_pair(fn, baseline, repeat: int) -> tuple[float, float]:
    """Medians of ``fn`` and ``baseline`` timed alternately, so a busy machine slows both alike."""
    first, second = [], []
    for _ in range(repeat):
        for times, call in ((first, fn), (second, baseline)):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return statistics.median(first), statistics.median(second)


def peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def refused(fn):
    def call():
        try:
            fn()
        except ValueError:
            pass
    return call


def attention(rng) -> np.ndarray:
    logits = rng.normal(scale=3, size=(LAYERS, HEADS, TOKENS, TOKENS))
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)).astype(np.float32)


def run() -> list[Figure]:
    import h5py

    from attnflows_callback import open_run
    from attnflows_callback.store import COMPACT_ENCODE_FILTERS, COMPACT_FILTERS, RunWriter, decompress_exactly

    figures = []
    bomb = lzma.compress(bytes(64 * 2**20), format=lzma.FORMAT_RAW, filters=COMPACT_ENCODE_FILTERS)

    def plain_bomb():
        lzma.decompress(bomb, format=lzma.FORMAT_RAW, filters=COMPACT_FILTERS)

    limited_bomb = refused(lambda: decompress_exactly(bomb, 648))
    figures.append(Figure("safety", "bomb decode time (64 MiB of zeros, 648-byte shape)", timed(limited_bomb, 5), "s",
                          timed(plain_bomb, 3), "lzma.decompress"))
    figures.append(Figure("safety", "bomb decode peak memory", peak_bytes(limited_bomb) / 2**20, "MiB",
                          peak_bytes(plain_bomb) / 2**20, "lzma.decompress"))
    zeros = bytes(256 * 2**10)
    figures.append(Figure("safety", "256 KiB of zero bytes as a stream", timed(refused(lambda: decompress_exactly(zeros, 648)), 5),
                          "s", timed(lambda: lzma.decompress(zeros, format=lzma.FORMAT_RAW, filters=COMPACT_FILTERS), 1),
                          "lzma.decompress"))

    rng = np.random.default_rng(0)
    tokens = [f"t{k}" for k in range(TOKENS)]
    meta = {"probe_id": "bench", "model": {"identity": "bench"}, "streams": {"self": {"layers": LAYERS, "heads": HEADS}}}
    probe = {"texts": ["x"] * EXAMPLES, "input_ids": [[1] * TOKENS] * EXAMPLES, "tokens": tokens * EXAMPLES,
             "truncated": np.zeros(EXAMPLES, bool)}
    snapshot = {"self": [attention(rng) for _ in range(EXAMPLES)]}
    with tempfile.TemporaryDirectory() as folder:
        writer = RunWriter(Path(folder) / "run", meta=meta, probe_arrays=probe, marker_events_file=False,
                           encoding="uint8")
        steps = iter(range(10**6))

        def hdf5_writes_the_file():
            tmp = writer.snapshot_dir / ".direct.tmp"
            with h5py.File(tmp, "w", libver="latest") as f:
                for i, weights in enumerate(snapshot["self"]):
                    stored = writer.encoding.encode(weights)
                    f.create_dataset(f"attention/self/{i}", data=stored,
                                     **writer.encoding.dataset_options(stored.shape)).attrs["shape"] = weights.shape
            for path in (tmp, writer.snapshot_dir):
                fd = os.open(path, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            os.replace(tmp, Path(folder) / "direct.h5")

        checked_write, direct_write = timed_pair(lambda: writer.write_snapshot(next(steps), attention=snapshot),
                                                 hdf5_writes_the_file, 7)
        figures.append(Figure("safety", "write one shard (4 examples, in memory then published)", checked_write, "s",
                              direct_write, "HDF5 writes the file", "<= 1.5x"))
        writer.close()

        run = open_run(Path(folder) / "run")
        shards = sorted((Path(folder) / "run" / "attnflows" / "snapshots").glob("step-*.h5"))
        examples = iter(range(10**6))

        def checked_read():
            k = next(examples)
            handle = run._files.pop(int(k % len(shards)), None)  # a cold handle each time: the open is measured
            if handle is not None:
                handle.close()
            run.attention(k % EXAMPLES, int(k % len(shards)))

        def plain_read():
            k = next(examples)
            with h5py.File(shards[k % len(shards)], "r") as f:
                ds = f[f"attention/self/{k % EXAMPLES}"]
                shape = tuple(ds.attrs["shape"])
                ds[()].reshape(shape).astype(np.float32) * np.float32(1 / 255)

        checked, plain = timed_pair(checked_read, plain_read, 40)
        figures.append(Figure("safety", "read one example's attention (open, checks, decode)", checked, "s",
                              plain, "h5py.File(path) + read + decode", "<= 1.5x"))
        run.close()
    for figure in figures:
        if figure.goal:
            figure.met = figure.ratio <= 1.5
    return figures


if __name__ == "__main__":
    report(run())

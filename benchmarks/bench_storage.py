"""Bytes per stored attention weight, and max error, for each encoding on real MiniLM attention.

The attention is the pre-trained MiniLM's on the bundled 64-example probe set. Each encoding
is measured as whole shard files written by `RunWriter` (all overhead included), against what
users would otherwise store: raw float32 (`torch.save`), float16 + shuffle + gzip in HDF5, and
8-bit grayscale PNG images per head (the TensorBoard-images habit). Goal: <= 0.5 B/weight
for the default (``zstd-u8``) and ``compact``; bench_compression.py compares them and the
other standard HDF5 filters.

Run: python benchmarks/bench_storage.py
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib

import numpy as np

from _common import Figure, bundled_probe, report


def png_bytes(image: np.ndarray) -> bytes:
    """A minimal 8-bit grayscale PNG (what an image summary per head would store)."""
    height, width = image.shape
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def run() -> list[Figure]:
    from attnflows_callback import ProbeSet, capture_probe
    from tests.helpers import minilm_classifier, tokenizer

    model = minilm_classifier()
    short = bundled_probe()
    # Four bundled sentences per example: mean ~49 tokens, the "up to 64 tokens" case.
    long = ProbeSet([" ".join(short.texts[(k + j) % len(short)] for j in range(4)) for k in range(len(short))])
    figures = []
    for label, probe_set in (("bundled probe", short), ("4-sentence probe", long)):
        probe = probe_set.tokenize(tokenizer())
        attention = capture_probe(model, probe).attention
        mean_tokens = sum(len(ids) for ids in probe.input_ids) / len(probe)
        figures += measure(probe, attention, f"{label}, mean {mean_tokens:.0f} tokens")
    return figures


def measure(probe, attention, label: str) -> list[Figure]:
    import h5py
    import torch

    from attnflows_callback import ENCODINGS, open_run
    from attnflows_callback.encodings import DEFAULT_ENCODING
    from attnflows_callback.store import RunWriter

    weights = sum(a.size for a in attention["self"])
    figures = []

    buffer = io.BytesIO()
    torch.save([torch.from_numpy(a) for a in attention["self"]], buffer)
    raw = len(buffer.getvalue()) / weights
    figures.append(Figure("storage", f"raw float32 (torch.save), {label}", raw, "B/weight", note="max error 0"))

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for i, a in enumerate(attention["self"]):
            f.create_dataset(str(i), data=a.astype(np.float16), compression="gzip", shuffle=True, chunks=a.shape)
    figures.append(Figure("storage", f"float16 + shuffle + gzip (HDF5), {label}", len(buffer.getvalue()) / weights, "B/weight",
                          raw, "raw float32"))

    png = sum(len(png_bytes(np.rint(head * 255).astype(np.uint8))) for a in attention["self"] for layer in a for head in layer)
    figures.append(Figure("storage", f"PNG image per head (8-bit), {label}", png / weights, "B/weight", raw, "raw float32",
                          note="max error 1/510"))

    for name in sorted(ENCODINGS):
        with tempfile.TemporaryDirectory() as run_dir:
            writer = RunWriter(run_dir, meta={"probe_id": probe.probe_id, "model": {"identity": "MiniLM"},
                                              "streams": {"self": {"layers": 6, "heads": 12}}},
                               probe_arrays={"texts": list(probe.probe_set.texts), "input_ids": probe.input_ids,
                                             "tokens": [t for row in probe.tokens for t in row],
                                             "truncated": np.zeros(len(probe), bool)},
                               encoding=name, marker_events_file=False)
            path = writer.write_snapshot(0, attention=attention)
            size = os.path.getsize(path)
            run = open_run(run_dir)
            error = max(np.abs(run.attention(i, 0) - a).max() for i, a in enumerate(attention["self"]))
        sized = name in ("compact", DEFAULT_ENCODING)  # the goal holds for the default and the smallest
        goal = "<= 0.5 B/weight, error <= 2e-3" if sized else "error <= 2e-3" if name == "uint8" else ""
        met = (size / weights <= 0.5 and error <= 2e-3) if sized else (error <= 2e-3 if name == "uint8" else None)
        figures.append(Figure("storage", f"attnflows '{name}' shard, {label}", size / weights, "B/weight", raw, "raw float32",
                              goal, met, note=f"max error {error:.2e}; {weights} weights, whole shard file"))
    return figures


if __name__ == "__main__":
    report(run())

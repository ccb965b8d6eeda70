"""Attention encodings of the snapshot shards: ``compact`` (default), ``uint8`` and ``float16``.

docs/format.md ("Encodings") gives each one's bytes on disk and error; the reader decodes with
the same object the writer encoded with, named in ``run.json`` and in each shard.
"""

from __future__ import annotations

import lzma

import numpy as np

from . import checks


class Encoding:
    """How attention weights in [0, 1] are stored in a shard: dtype, codec and decode rule."""

    name: str
    max_abs_error: float

    def encode(self, weights: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def decode(self, stored: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def dataset_options(self, shape: tuple[int, ...]) -> dict:
        raise NotImplementedError

    def max_stored_size(self, shape: tuple[int, ...]) -> int:
        """Elements the stored dataset of a ``shape`` tensor may hold; checked before it is read."""
        raise NotImplementedError


def _codes(weights: np.ndarray) -> np.ndarray:
    """``round(w * 255)`` as uint8: max abs error 1/510 (< 2e-3) on [0, 1]."""
    return np.rint(np.clip(weights, 0.0, 1.0) * 255.0).astype(np.uint8)


def _from_codes(codes: np.ndarray) -> np.ndarray:
    return codes.astype(np.float32) * np.float32(1.0 / 255.0)


class CompactUint8(Encoding):
    """uint8 codes, transposed key-major, in one raw LZMA2 stream (the default).

    Max abs error 1/510 (< 2e-3). Quantisation is already near-optimal for a max-error
    bound, so the gain is in the coder: LZMA2's context-modelled range coder packs the
    codes about 15% smaller than deflate (docs/benchmarks.md), and key-major order lines
    up the columns of "vertical" heads. Stored as a 1-D uint8 dataset with a ``shape``
    attribute; decode with ``lzma.decompress(data, format=lzma.FORMAT_RAW,
    filters=COMPACT_FILTERS)``, reshape to ``[L, H, Tk, Tq]`` and swap the last two axes.
    """

    name = "compact"
    max_abs_error = 0.5 / 255

    def encode(self, weights: np.ndarray) -> np.ndarray:
        keymajor = np.ascontiguousarray(_codes(weights).swapaxes(-1, -2))
        packed = lzma.compress(keymajor.tobytes(), format=lzma.FORMAT_RAW, filters=COMPACT_ENCODE_FILTERS)
        return np.frombuffer(packed, dtype=np.uint8)

    def decode(self, stored: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        expected = int(np.prod(shape, dtype=np.int64))
        raw = decompress_exactly(stored.tobytes(), expected)
        keymajor_shape = (*shape[:-2], shape[-1], shape[-2])
        codes = np.frombuffer(raw, dtype=np.uint8).reshape(keymajor_shape).swapaxes(-1, -2)
        return _from_codes(codes)

    def max_stored_size(self, shape: tuple[int, ...]) -> int:
        """The largest stream that can hold ``shape``'s codes (LZMA2 stores incompressible data plus 3 bytes per 64 KiB)."""
        expected = int(np.prod(shape, dtype=np.int64))
        return expected + 3 * (expected // 65536 + 1) + 64

    def dataset_options(self, shape):
        return {}


COMPACT_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6, "lc": 4, "lp": 0, "pb": 0}]


def decompress_exactly(data: bytes, expected: int) -> bytes:
    """Decode one raw LZMA2 stream that must inflate to exactly ``expected`` bytes.

    The output is capped at ``expected + 1`` bytes, so a bomb costs at most that much memory
    and time; a stream that inflates to more or less, or trails other data (``lzma.decompress``
    would decode each trailing stream, slowly), is refused with a ValueError.

    Example:
        >>> packed = lzma.compress(bytes(100), format=lzma.FORMAT_RAW, filters=COMPACT_ENCODE_FILTERS)
        >>> len(decompress_exactly(packed, 100))
        100
        >>> decompress_exactly(packed, 99)
        Traceback (most recent call last):
        ...
        ValueError: the attention stream inflates to more than the 99 bytes its shape declares
    """
    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=COMPACT_FILTERS)
    try:
        raw = decoder.decompress(data, max_length=expected + 1)
    except lzma.LZMAError as err:
        raise ValueError(f"the attention stream is not valid LZMA2 ({err})") from None
    if len(raw) > expected:
        raise ValueError(f"the attention stream inflates to more than the {expected} bytes its shape declares")
    if len(raw) < expected:
        raise ValueError(f"the attention stream inflates to {len(raw)} bytes, its shape declares {expected}")
    if decoder.unused_data or (not decoder.eof and decoder.decompress(b"", max_length=1)):
        raise ValueError("the attention stream is followed by other data")
    return raw

# Preset 4 encodes these codes in half the time of preset 6 at the same size on the bundled probe
# (+2% on 49-token examples); its 4 MiB dictionary is within the 8 MiB that COMPACT_FILTERS
# decodes with, so every stream, old or new, decodes with COMPACT_FILTERS.
COMPACT_ENCODE_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 4, "lc": 4, "lp": 0, "pb": 0}]


class Uint8(Encoding):
    """uint8 codes with HDF5's own deflate filter: any HDF5 tool can read them (max error 1/510)."""

    name = "uint8"
    max_abs_error = 0.5 / 255

    def encode(self, weights: np.ndarray) -> np.ndarray:
        return _codes(weights)

    def decode(self, stored: np.ndarray, shape) -> np.ndarray:
        return _from_codes(stored)

    def dataset_options(self, shape):
        return {"compression": "gzip", "compression_opts": 9, "chunks": shape}

    def max_stored_size(self, shape: tuple[int, ...]) -> int:
        return int(np.prod(shape, dtype=np.int64))


class Float16(Encoding):
    """float16 with byte shuffle and deflate: exact to half precision (error <= 2**-12 on [0, 1])."""

    name = "float16"
    max_abs_error = 2.0**-12

    def encode(self, weights: np.ndarray) -> np.ndarray:
        return weights.astype(np.float16)

    def decode(self, stored: np.ndarray, shape) -> np.ndarray:
        return stored.astype(np.float32)

    def dataset_options(self, shape):
        return {"compression": "gzip", "compression_opts": 6, "shuffle": True, "chunks": shape}

    def max_stored_size(self, shape: tuple[int, ...]) -> int:
        return int(np.prod(shape, dtype=np.int64))


ENCODINGS: dict[str, Encoding] = {e.name: e for e in (CompactUint8(), Uint8(), Float16())}
DEFAULT_ENCODING = "compact"


def get_encoding(name: str) -> Encoding:
    return ENCODINGS[checks.one_of("encoding", name, ENCODINGS)]

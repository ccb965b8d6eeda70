"""Attention encodings of the snapshot shards: ``zstd-u8`` (default), ``compact``, ``uint8`` and ``float16``.

docs/format.md ("Encodings") gives each one's bytes on disk and error; the reader decodes with
the same object the writer encoded with, named in ``run.json`` and in each shard. Shards of
every encoding stay readable: an encoding is never removed, only the default changes.
"""

from __future__ import annotations

import ctypes
import functools
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

    def dataset_attrs(self) -> dict:
        """Attributes the writer puts on each attention dataset beside its ``shape``."""
        return {}

    def check_stored(self, dataset, shape: tuple[int, ...]) -> None:
        """Refuse (ValueError) a stored ``dataset`` whose decode could cost more than ``shape`` needs.

        Called by the reader for every example when it indexes a shard and before it reads a
        tensor, so it must stay cheap: dtype and shape, no data.
        """

    def read(self, dataset, shape: tuple[int, ...]) -> np.ndarray:
        """The stored array of ``dataset`` (already passed :meth:`check_stored`), ready for :meth:`decode`."""
        return dataset[()]

    def reads_layers(self, dataset, shape: tuple[int, ...]) -> bool:
        """Whether :meth:`read_layer` reads one layer of this dataset alone."""
        return False

    def read_layer(self, dataset, shape: tuple[int, ...], layer: int) -> np.ndarray | None:
        """What :meth:`decode` needs for layer ``layer`` alone (shape ``(1, *shape[1:])``), or None when this
        dataset cannot be read a layer at a time (the caller decodes it whole)."""
        return None


def _codes(weights: np.ndarray) -> np.ndarray:
    """``round(w * 255)`` as uint8: max abs error 1/510 (< 2e-3) on [0, 1]."""
    return np.rint(np.clip(weights, 0.0, 1.0) * 255.0).astype(np.uint8)


def _from_codes(codes: np.ndarray) -> np.ndarray:
    return codes.astype(np.float32) * np.float32(1.0 / 255.0)


def _keymajor_codes(weights: np.ndarray) -> np.ndarray:
    """:func:`_codes` of ``[..., Tq, Tk]`` weights, stored key-major ``[..., Tk, Tq]`` (contiguous)."""
    return np.ascontiguousarray(_codes(weights).swapaxes(-1, -2))


def _keymajor_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The stored key-major shape of a ``[..., Tq, Tk]`` tensor's codes."""
    return (*shape[:-2], shape[-1], shape[-2])


class CompactUint8(Encoding):
    """uint8 codes, transposed key-major, in one raw LZMA2 stream (the default before ``zstd-u8``).

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
        packed = lzma.compress(_keymajor_codes(weights).tobytes(), format=lzma.FORMAT_RAW,
                               filters=COMPACT_ENCODE_FILTERS)
        return np.frombuffer(packed, dtype=np.uint8)

    def decode(self, stored: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        expected = int(np.prod(shape, dtype=np.int64))
        raw = decompress_exactly(stored.tobytes(), expected)
        codes = np.frombuffer(raw, dtype=np.uint8).reshape(_keymajor_shape(shape)).swapaxes(-1, -2)
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


ZSTD_FILTER_ID = 32015  # HDF5's registered Zstandard filter (hdf5plugin.ZSTD_ID)
_ZSTD_MAGIC = 0xFD2FB528


class ZstdUint8(Encoding):
    """uint8 codes ``round(w * 255)``, key-major ``[L, H, Tk, Tq]``, HDF5's Zstandard filter (the default).

    Max abs error 1/510 (< 2e-3). A standard HDF5 filter (id 32015, shipped by ``hdf5plugin``):
    plain h5py reads a shard after ``import hdf5plugin``, and
    ``ds[()].swapaxes(-1, -2) * ds.attrs["scale"]`` is the attention ``[L, H, Tq, Tk]``
    (key-major order, as in ``compact``, puts the columns of "vertical" heads next to each
    other: 6% fewer bytes at 49 tokens). Against ``compact`` it is 12 to 14% larger and encodes
    and decodes several times faster (``benchmarks/bench_compression.py``).

    One chunk, or one per layer for a tensor above :data:`LAYER_CHUNK_VALUES` codes (then
    :meth:`read_layer` decodes one layer alone). Decoding is bounded and checked: :meth:`read`
    refuses a dataset chunked otherwise or whose chunks exceed their compress bound, and decodes
    each raw chunk itself into exactly the bytes its shape needs (:func:`zstd_decompress_exactly`),
    never through HDF5's filter.

    Example:
        >>> enc = ZstdUint8()
        >>> w = np.random.default_rng(0).dirichlet(np.ones(5), size=(2, 3, 4)).astype(np.float32)
        >>> enc.encode(w).shape, w.shape  # stored key-major
        ((2, 3, 5, 4), (2, 3, 4, 5))
        >>> float(abs(enc.decode(enc.encode(w), w.shape) - w).max()) <= enc.max_abs_error
        True
    """

    name = "zstd-u8"
    max_abs_error = 0.5 / 255
    level = 9  # bench_compression.py: level 15 is 1-6% smaller but encodes 2-10x slower; the writer shares the CPU with training
    scale = 1.0 / 255.0

    def encode(self, weights: np.ndarray) -> np.ndarray:
        return _keymajor_codes(weights)

    def decode(self, stored: np.ndarray, shape) -> np.ndarray:
        return _from_codes(stored.swapaxes(-1, -2))

    def dataset_options(self, shape):
        import hdf5plugin  # noqa: F401  (registers the filter with h5py; only the writer needs that)

        return {"chunks": _chunk_shape(shape), "compression": ZSTD_FILTER_ID, "compression_opts": (self.level,)}

    def dataset_attrs(self) -> dict:
        return {"scale": self.scale, "axes": "layer,head,key,query"}

    def max_stored_size(self, shape: tuple[int, ...]) -> int:
        return int(np.prod(shape, dtype=np.int64))

    def check_stored(self, dataset, shape: tuple[int, ...]) -> None:
        keymajor = _keymajor_shape(shape)
        if dataset.dtype != np.uint8 or dataset.shape != keymajor:
            raise ValueError(f"{dataset.name!r} holds {dataset.dtype} {list(dataset.shape)}; 'zstd-u8' writes uint8 "
                             f"codes {list(keymajor)}")

    def read(self, dataset, shape: tuple[int, ...]) -> np.ndarray:
        """The codes, decoded from the raw chunks into exactly the bytes ``shape`` needs.

        HDF5's Zstandard filter ignores decoder errors (a damaged frame reads as uninitialised
        memory, without an error), so the reader does not use it: it reads each raw chunk and
        decodes it with the libzstd that hdf5plugin ships, into a buffer of the declared size.
        """
        keymajor = _keymajor_shape(shape)
        chunk = self._chunk_of(dataset, keymajor)
        if chunk == keymajor:
            return self._read_chunk(dataset, keymajor, 0)
        codes = np.empty(keymajor, dtype=np.uint8)
        for layer in range(keymajor[0]):
            codes[layer] = self._read_chunk(dataset, chunk, layer)[0]
        return codes

    def reads_layers(self, dataset, shape: tuple[int, ...]) -> bool:
        keymajor = _keymajor_shape(shape)
        return self._chunk_of(dataset, keymajor) != keymajor

    def read_layer(self, dataset, shape: tuple[int, ...], layer: int) -> np.ndarray | None:
        keymajor = _keymajor_shape(shape)
        chunk = self._chunk_of(dataset, keymajor)
        return None if chunk == keymajor else self._read_chunk(dataset, chunk, layer)

    @staticmethod
    def _chunk_of(dataset, keymajor: tuple[int, ...]) -> tuple[int, ...]:
        """The dataset's chunk shape, refused unless it is one of the two this encoding writes
        (the whole tensor, or one layer of it: :func:`_chunk_shape`) and the chunks are all there."""
        chunk = tuple(dataset.chunks or ())
        per_layer = (1, *keymajor[1:])
        if chunk not in (keymajor, per_layer) or dataset.id.get_num_chunks() != keymajor[0] // chunk[0]:
            raise ValueError(f"{dataset.name!r} is not chunked as 'zstd-u8' writes {list(keymajor)} "
                             f"(one chunk, or one per layer)")
        return chunk

    def _read_chunk(self, dataset, chunk: tuple[int, ...], index: int) -> np.ndarray:
        """Chunk ``index`` along the first axis, decoded into exactly ``chunk``'s codes."""
        needed = int(np.prod(chunk, dtype=np.int64))
        offset = (index * chunk[0],) + (0,) * (len(chunk) - 1)
        info = dataset.id.get_chunk_info_by_coord(offset)
        bound = needed + needed // 256 + 192  # ZSTD_compressBound: incompressible data plus block headers
        if info.filter_mask or info.size is None or info.size > bound:
            raise ValueError(f"{dataset.name!r} stores a chunk of {info.size} bytes (filter mask {info.filter_mask}); "
                             f"'zstd-u8' stores at most {bound} for {list(chunk)}, filtered")
        try:
            raw = zstd_decompress_exactly(dataset.id.read_direct_chunk(offset)[1], needed)
        except ValueError as err:
            raise ValueError(f"{dataset.name!r}: {err}") from None
        return np.frombuffer(raw, dtype=np.uint8).reshape(chunk)


LAYER_CHUNK_VALUES = 2**21
"""A ``zstd-u8`` tensor of more codes than this (12 x 12 heads at 121 tokens and up, 6 x 12 at 171) is
stored one chunk per layer, so one layer decodes alone (the head detail); smaller ones, one chunk.
At 12 x 12 x 128 the head detail's layer then costs a sixth of the whole decode, for about the same
bytes and whole-decode time (benchmarks/measure_long_routes.py, docs/benchmarks.md); below this size a
whole decode takes a few milliseconds."""


def _chunk_shape(stored_shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(stored_shape) >= 3 and int(np.prod(stored_shape, dtype=np.int64)) > LAYER_CHUNK_VALUES:
        return (1, *stored_shape[1:])
    return tuple(stored_shape)


def zstd_decompress_exactly(frame: bytes, expected: int) -> bytes:
    """Decode a Zstandard ``frame`` that must inflate to exactly ``expected`` bytes (ValueError otherwise).

    The frame header must declare ``expected`` bytes, and the output buffer holds exactly that
    many, so a bomb costs nothing beyond them; a damaged frame is refused, never half-read.

    Example:
        >>> frame = bytes.fromhex("28b52ffd201b7d000048617474656e74696f6e0100f4ca11")  # b"attention" * 3
        >>> zstd_decompress_exactly(frame, 27)
        b'attentionattentionattention'
        >>> zstd_decompress_exactly(frame[:-2], 27)
        Traceback (most recent call last):
        ...
        ValueError: the Zstandard frame does not decode (Src size is incorrect)
    """
    declared = zstd_frame_content_size(frame)
    if declared != expected:
        said = "no size" if declared is None else f"{declared} bytes"
        raise ValueError(f"the Zstandard frame declares {said}; the shape needs {expected}")
    library = _zstd_library()
    out = ctypes.create_string_buffer(expected)
    written = library.ZSTD_decompress(out, expected, frame, len(frame))
    if library.ZSTD_isError(written):
        raise ValueError(f"the Zstandard frame does not decode ({library.ZSTD_getErrorName(written).decode()})")
    if written != expected:
        raise ValueError(f"the Zstandard frame decodes to {written} bytes; the shape needs {expected}")
    return out.raw


@functools.lru_cache(maxsize=1)
def _zstd_library():
    """libzstd as hdf5plugin ships it in its Zstandard filter (``ZSTD_decompress`` and friends are exported)."""
    import glob
    import os

    try:
        import hdf5plugin
    except ImportError:
        raise ValueError("reading 'zstd-u8' shards needs hdf5plugin: pip install hdf5plugin") from None
    paths = glob.glob(os.path.join(hdf5plugin.PLUGIN_PATH, "*h5zstd*"))
    if not paths:
        raise ValueError(f"hdf5plugin {hdf5plugin.version} ships no Zstandard filter; install hdf5plugin>=4")
    library = ctypes.CDLL(paths[0])
    library.ZSTD_decompress.restype = ctypes.c_size_t
    library.ZSTD_decompress.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)
    library.ZSTD_isError.restype = ctypes.c_uint
    library.ZSTD_isError.argtypes = (ctypes.c_size_t,)
    library.ZSTD_getErrorName.restype = ctypes.c_char_p
    library.ZSTD_getErrorName.argtypes = (ctypes.c_size_t,)
    return library


def zstd_frame_content_size(data: bytes) -> int | None:
    """The content size a Zstandard frame's header declares (RFC 8878, 3.1.1.1), or None if it declares none.

    HDF5's Zstandard filter allocates this many bytes and decodes at most that much.

    Example:
        >>> zstd_frame_content_size(bytes.fromhex("28b52ffd2064") + bytes(10))  # single segment, 1-byte size
        100
        >>> zstd_frame_content_size(b"PK")
        Traceback (most recent call last):
        ...
        ValueError: not a Zstandard frame
    """
    if len(data) < 6 or int.from_bytes(data[:4], "little") != _ZSTD_MAGIC:
        raise ValueError("not a Zstandard frame")
    descriptor = data[4]
    size_flag, single_segment, dict_flag = descriptor >> 6, (descriptor >> 5) & 1, descriptor & 3
    position = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dict_flag]
    width = (1 if single_segment else 0, 2, 4, 8)[size_flag]
    if width == 0:
        return None
    if len(data) < position + width:
        raise ValueError("not a Zstandard frame")
    size = int.from_bytes(data[position:position + width], "little")
    return size + 256 if width == 2 else size


ENCODINGS: dict[str, Encoding] = {e.name: e for e in (ZstdUint8(), CompactUint8(), Uint8(), Float16())}
DEFAULT_ENCODING = "zstd-u8"


def get_encoding(name: str) -> Encoding:
    return ENCODINGS[checks.one_of("encoding", name, ENCODINGS)]

"""What a run says its examples are, read once when it opens: the probe (``probe.h5``) and the streams (``run.json``).

:class:`RunProbe` is the part of a reader :class:`~attnflows_callback.reader.Run` that needs no
snapshot: the probe texts and labels, each example's tokens, word and segment ids, the inputs
the probe pass fed the model, and the streams with their layers and heads. The snapshots
themselves (index, checks, tensors) are :mod:`attnflows_callback.reader`'s.
"""

from __future__ import annotations

import h5py
import numpy as np

from .fileio import RegularH5File
from .fileio import read_h5_dataset as _read
from .fileio import safe_h5_object as _safe
from .schema import FORMAT_VERSION, PROBE_H5, PROBE_MODEL_INPUTS

STREAM_ORDER = {"self": 0, "encoder": 1, "decoder": 2, "cross": 3}


class RunProbe:
    """The probe and streams of a run (see :class:`~attnflows_callback.reader.Run`, which is one).

    ``Run.__init__`` sets ``meta`` (``run.json``) and ``data_dir`` before it calls
    :meth:`_load_probe`.
    """

    # ------------------------------------------------------------------ probe
    def _load_probe(self) -> None:
        path = self.data_dir / PROBE_H5
        with RegularH5File(path) as f:
            self.texts = [_str(x) for x in _read(f, "texts")]
            self.text_pairs = [_str(x) for x in _read(f, "text_pairs")] if "text_pairs" in f else None
            labels = _read(f, "labels") if "labels" in f else None
            self.labels = None if labels is None else [int(x) for x in labels]
            self.label_names = [_str(x) for x in _read(f, "label_names")] if "label_names" in f else None
            self._input_ids = [np.asarray(r, dtype=np.int64) for r in _read(f, "input_ids")]
            self._tokens = _ragged_strings(f, "tokens", self._input_ids)
            self._word_ids = [np.asarray(r) for r in _read(f, "word_ids")] if "word_ids" in f else None
            self._sequence_ids = [np.asarray(r) for r in _read(f, "sequence_ids")] if "sequence_ids" in f else None
            self._decoder_tokens = (
                _ragged_strings(f, "decoder_tokens", self._input_ids) if "decoder_tokens" in f else None
            )
            self.truncated = [bool(x) for x in _read(f, "truncated")]
            fed = _safe(f, PROBE_MODEL_INPUTS) if PROBE_MODEL_INPUTS in f else {}
            self._model_inputs = {name: [np.asarray(r, dtype=np.int64) for r in _read(f, f"{PROBE_MODEL_INPUTS}/{name}")]
                                  for name in fed}
        self.num_examples = len(self.texts)
        self.notes = _format_notes(self.meta, self.text_pairs is not None)

    @property
    def probe_id(self) -> str:
        return self.meta.get("probe_id", "")

    def tokens(self, i: int, stream: str | None = None) -> list[str]:
        """Tokens of example ``i``; for ``stream="decoder"`` the decoder's input tokens."""
        self._check_example(i)
        if stream == "decoder" and self._decoder_tokens is not None:
            return list(self._decoder_tokens[i])
        return list(self._tokens[i])

    def stream_tokens(self, i: int, stream: str | None = None) -> tuple[list[str], list[str]]:
        """(query tokens, key tokens) of example ``i`` in ``stream``."""
        stream = self._check_stream(stream)
        if stream in ("decoder", "cross"):
            return self.tokens(i, "decoder"), self.tokens(i, "decoder" if stream == "decoder" else None)
        return self.tokens(i), self.tokens(i)

    def word_ids(self, i: int) -> np.ndarray | None:
        """Word index of each token of example ``i`` (-1 for special tokens), if the tokenizer gave them."""
        self._check_example(i)
        return None if self._word_ids is None else self._word_ids[i].copy()

    def sequence_ids(self, i: int) -> np.ndarray | None:
        """Segment of each token of example ``i``: 0 the text, 1 the text pair, -1 special tokens.

        From format 2 on, when the tokenizer was a fast one; None otherwise.
        """
        self._check_example(i)
        return None if self._sequence_ids is None else self._sequence_ids[i].copy()

    def model_inputs(self, i: int) -> dict[str, np.ndarray]:
        """The unpadded inputs the probe pass fed the model for example ``i``, besides an all-ones mask.

        ``input_ids`` always; from format 2 on, also every tokenizer output the model's
        ``forward`` takes (``token_type_ids`` for a BERT pair). ``model(**run.model_inputs(i))``
        (as batch-of-one tensors) is the probe forward of example ``i``.
        """
        self._check_example(i)
        return {"input_ids": self._input_ids[i].copy(), **{k: v[i].copy() for k, v in self._model_inputs.items()}}

    def length(self, i: int) -> int:
        self._check_example(i)
        return len(self._input_ids[i])

    # ---------------------------------------------------------------- streams
    @property
    def streams(self) -> list[str]:
        """Stream names in canonical order: ``self``, or ``encoder``, ``decoder``, ``cross``."""
        return sorted(self.meta.get("streams", {}), key=lambda s: (STREAM_ORDER.get(s, len(STREAM_ORDER)), s))

    @property
    def default_stream(self) -> str:
        return self.streams[0]

    def stream_shape(self, stream: str | None = None) -> tuple[int, int]:
        """(layers, heads) of ``stream``."""
        info = self.meta["streams"][self._check_stream(stream)]
        return int(info["layers"]), int(info["heads"])

    @property
    def num_layers(self) -> int:
        return self.stream_shape()[0]

    @property
    def num_heads(self) -> int:
        return self.stream_shape()[1]

    # -------------------------------------------------------------- checks
    def _check_example(self, i) -> None:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self.num_examples:
            raise IndexError(f"example must be an integer in [0, {self.num_examples}), got {i!r}")

    def _check_stream(self, stream: str | None) -> str:
        if stream is None:
            return self.default_stream
        if stream not in self.meta.get("streams", {}):
            raise KeyError(f"stream must be one of {self.streams}, got {stream!r}")
        return stream


# ---------------------------------------------------------------- helpers
def _str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _ragged_strings(f: h5py.File, name: str, like: list[np.ndarray]) -> list[list[str]]:
    """Tokens are stored flat (one string dataset) and split by each example's length."""
    flat = [_str(x) for x in _read(f, name)]
    offsets = np.cumsum([0] + [len(r) for r in like])
    return [flat[offsets[k] : offsets[k + 1]] for k in range(len(like))]


def _format_notes(meta: dict, has_pairs: bool) -> list[str]:
    """What a reader should know about a run written by an older format."""
    if int(meta.get("format_version", FORMAT_VERSION)) >= 2:
        return []
    note = ("recorded by attnflows format 1, whose probe pass fed the model only input_ids and attention_mask, "
            "not the token_type_ids (segment ids) its tokenizer returns")
    if has_pairs:
        note += "; this sentence-pair run may carry segment-less attention: record it again to trust it"
    return [note]

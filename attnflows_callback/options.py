"""``RecorderOptions``: how attention is recorded, shared by the recorder and every trainer callback.

:class:`~attnflows_callback.recorder.AttentionRecorder`, the Lightning and Hugging Face
callbacks and :class:`~attnflows_callback.timeline.SnapshotTimeline` all take these options
as keyword arguments; each is documented and checked here, once, so a bad value fails when
the recorder or callback is built, before training starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from . import checks
from .reduction import Reduction
from .probe import DEFAULT_MAX_LENGTH, check_max_length
from .store import DEFAULT_ENCODING, ENCODINGS


@dataclass(frozen=True)
class RecorderOptions:
    """The recording options; every field is checked when the object is built.

    Raises:
        TypeError: a flag that is not a bool, or a count that is not an integer.
        ValueError: an unknown encoding or row mode, a count out of range, a repeated index.

    Example:
        >>> options = RecorderOptions(encoding="float16", layers=[2, 0], top_k=8)
        >>> options.as_kwargs()["layers"], options.reduction().top_k
        ([0, 2], 8)
        >>> RecorderOptions(encoding="zip")
        Traceback (most recent call last):
        ...
        ValueError: encoding must be one of ['compact', 'float16', 'uint8', 'zstd-u8'], got 'zip'
    """

    encoding: str = DEFAULT_ENCODING
    """``"zstd-u8"`` (default; uint8 codes + HDF5's standard Zstandard filter, max error 1/510),
    ``"compact"`` (uint8 codes + LZMA, same error, 11 to 12% smaller, several times slower),
    ``"uint8"`` (HDF5-native deflate, same error) or ``"float16"`` (see docs/format.md)."""
    max_length: int | None = DEFAULT_MAX_LENGTH
    """Tokens kept per probe example; None: the tokenizer's ``model_max_length``, at most 128
    (:data:`~attnflows_callback.probe.MAX_LENGTH_CAP`)."""
    batch_size: int = 16
    """Examples per probe forward batch."""
    strict: bool = False
    """Raise on I/O failure instead of warning and stopping the recording."""
    overwrite: bool = False
    """Replace a run directory that holds another probe set or model."""
    tensorboard: bool = True
    """Also log scalars and hparams to TensorBoard in the run directory."""
    layers: tuple[int, ...] | None = None
    """Layer indices to keep (every stream), or None for all (docs/scaling.md)."""
    heads: tuple[int, ...] | None = None
    """Head indices to keep, or None for all."""
    rows: str = "all"
    """``"all"``, or ``"cls"`` for the classification position's query row only."""
    top_k: int | None = None
    """Keep the k largest weights of each attention row and zero the rest, or None."""
    head_importance: bool = False
    """Also store the gradient-based head importance of Michel et al. (2019) per example and
    head when the probe set has labels (one backward pass through the probe batches;
    parameter gradients are never touched)."""
    health_warnings: bool = False
    """Warn in the training log (logger ``attnflows_callback.health``) when a head's attention
    collapses to one token or spreads out to uniform since step 0, or a layer's mass on
    special tokens rises (thresholds in docs/analysis.md). The health scalars go to
    TensorBoard either way (with ``tensorboard``)."""

    def __post_init__(self) -> None:
        checks.one_of("encoding", self.encoding, ENCODINGS)
        check_max_length(self.max_length)
        checks.integer("batch_size", self.batch_size)
        for name in ("strict", "overwrite", "tensorboard", "head_importance", "health_warnings"):
            checks.flag(name, getattr(self, name))
        reduction = Reduction(layers=self.layers, heads=self.heads, rows=self.rows, top_k=self.top_k)
        object.__setattr__(self, "layers", reduction.layers)  # sorted tuples, as the recorder keeps them
        object.__setattr__(self, "heads", reduction.heads)

    @classmethod
    def from_kwargs(cls, kwargs: dict) -> RecorderOptions:
        """The options among ``kwargs`` (saved callback state, say); missing ones take their defaults."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in kwargs.items() if key in names})

    def reduction(self) -> Reduction:
        """What of each attention tensor to keep (``layers``, ``heads``, ``rows``, ``top_k``)."""
        return Reduction(layers=self.layers, heads=self.heads, rows=self.rows, top_k=self.top_k)

    def as_kwargs(self) -> dict:
        """Plain JSON values (lists, not tuples), the keyword arguments of ``AttentionRecorder``."""
        values = asdict(self)
        values.update(self.reduction().describe())
        return values


RECORDER_OPTION_NAMES = tuple(f.name for f in fields(RecorderOptions))

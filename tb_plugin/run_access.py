"""A query's run-dependent values checked against an open run, and the attention it names as the view shows it.

Shared by the ``*_impl`` functions of :mod:`.api` and :mod:`.changes`: an unknown example,
step or stream is a :class:`~.errors.NotFound`, a value out of the run's bounds a
:class:`~.errors.BadRequest`; a shard that fails when read is a 404 for that snapshot only.
"""

from __future__ import annotations

import numpy as np

from . import display as display_options
from .display import Display
from .errors import BadRequest, NotFound
from .run_caches import AttentionCache, OpenRun

CROSS_STREAMS = ("cross",)  # queries and keys are different sequences: no rollout through them


def check_stream(entry: OpenRun, stream: str | None) -> str:
    if stream is None:
        return entry.run.default_stream
    if stream not in entry.run.streams:
        raise NotFound(f"unknown stream: this run has streams {entry.run.streams}")
    return stream


def check_step(entry: OpenRun, step: int, what: str = "step") -> int:
    try:
        entry.run.snapshot_info(step)
    except KeyError:
        raise NotFound(f"unknown {what}: it is not a readable snapshot of this run (see /runs)") from None
    return step


def check_example(entry: OpenRun, example: int) -> int:
    if not 0 <= example < entry.run.num_examples:
        raise NotFound(f"unknown example: the probe set has {entry.run.num_examples} examples")
    return example


def check_index(value: int, size: int, what: str) -> int:
    if not 0 <= value < size:
        raise BadRequest(f"{what} is out of range: it must be in [0, {size})")
    return value


def read_attention(entry: OpenRun, cache: AttentionCache, example: int, step: int, stream: str,
                   layer: int | None = None) -> np.ndarray:
    """Decoded attention ``[L, H, Tq, Tk]`` (``[1, H, Tq, Tk]`` of one ``layer``).

    A shard that fails now (damaged after it was indexed, holding a link out of the run, a
    shape that disagrees with the run, a stream that inflates past its shape) is a 404 for
    that snapshot only, and is recorded as a problem of the run for /runs.
    """
    try:
        return cache.get(entry, example, step, stream, layer)
    except (OSError, ValueError, KeyError, EOFError, RuntimeError) as err:
        reason = entry.note_read_problem(step, err)
        raise NotFound(f"the snapshot could not be read ({reason}); see the run's problems") from None


def classification_source(entry: OpenRun, length: int) -> int:
    """The classification position: 0 for encoders, the last token for decoders."""
    return length - 1 if entry.run.meta.get("classification_position") == "last" else 0


def shown_attention(entry: OpenRun, example: int, stream: str, attention: np.ndarray, display: Display):
    """``attention`` of ``example`` as ``display`` shows it (:func:`.display.transform`).

    Only self-attention is transformed (a cross-attention stream is shown raw, ``info`` None); word
    units need the example's word ids for the stream's tokens.
    """
    tokens, key_tokens = entry.run.stream_tokens(example, stream)
    if display.raw or stream in CROSS_STREAMS or attention.shape[-1] != attention.shape[-2] or tokens != key_tokens:
        return display_options.transform(attention, key_tokens, None, Display())
    return display_options.transform(attention, tokens, word_ids_of(entry, example, len(tokens)), display)


def word_ids_of(entry: OpenRun, example: int, length: int) -> list[int | None] | None:
    """``example``'s word ids as the view transforms take them (None for special tokens), when there are
    ``length`` of them."""
    word_ids = entry.run.word_ids(example)
    if word_ids is None or len(word_ids) != length:
        return None
    return [None if int(w) < 0 else int(w) for w in word_ids]


def head_selection(attention: np.ndarray, pairs: list[tuple[int, int]] | None) -> tuple[np.ndarray, list[int] | None]:
    """What to hand the analysis functions, whose ``heads`` selects the same heads in every layer.

    The same heads in every layer: the attention unchanged and those head indices. Different
    heads per layer: each layer's selected heads averaged into one head (the analysis
    averages the selected heads too), and ``None``.
    """
    if pairs is None:
        return attention, None
    per_layer = [[h for l, h in pairs if l == layer] for layer in range(attention.shape[0])]
    empty = [layer for layer, chosen in enumerate(per_layer) if not chosen]
    if empty:
        raise BadRequest("heads selects no head in some layer; this method needs at least one head per layer")
    if all(chosen == per_layer[0] for chosen in per_layer):
        return attention, per_layer[0]
    return np.stack([attention[layer, chosen].mean(axis=0) for layer, chosen in enumerate(per_layer)])[:, None], None

"""What the writer derives from each snapshot of long examples, so that no viewer has to.

A viewer scrubbing a 12 x 12 x 512-token example needs, per step, the head metrics of the head
grid and the head mean of the flow, the token influence, the edge lifetimes and the aggregate:
computed from the decoded attention that is seconds of work per step on two cores
(docs/benchmarks.md). The writer already holds the float32 attention, so it stores these beside
it, in the shard (docs/format.md, "Step products"):

- the per-head metrics of :func:`~.analysis.head_metrics` (``entropy`` is already a summary) and
  the :func:`~.analysis.pattern_class`, as summaries ``head_<metric>`` ``[E, L, H]``;
- the raw head mean ``[L, T, T]`` and the head mean as the default view shows it (``[L, W, W]``
  over words for a BERT-like input), per example, in the run's encoding (at least 12 x smaller than
  the attention at 12 heads), each with the classification token's row of the rollout through it
  (``[T]``, what the aggregate view averages).

Only for examples of at least :data:`MIN_TOKENS` tokens, whose per-step work costs a viewer more
than a frame: shorter ones are derived in a few milliseconds and their products would add a
third to a short probe's shard. Only for the self-attention streams over the probe's own tokens
and runs that keep every weight of every row (a reduced run's rows do not sum to 1).

Example:
    >>> import numpy as np
    >>> attn = np.random.default_rng(0).dirichlet(np.ones(4), size=(1, 2, 4)).astype(np.float32)
    >>> made = snapshot_products({"self": [attn]}, [["[CLS]", "fine", ".", "[SEP]"]], [[-1, 0, 1, -1]],
    ...                          classification_last=False, min_tokens=4)
    >>> sorted(made.summaries["self"])[:3], [(m.targets, m.values.shape) for m in made.means]
    (['head_cls', 'head_confidence', 'head_distance'], [('none', (1, 4, 4)), ('special_punct', (1, 4, 4))])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

MIN_TOKENS = 64
"""Examples shorter than this get no stored products (see the module docstring)."""

STREAMS = ("self", "encoder")
"""Streams whose queries and keys are the probe's own tokens: the ones with products."""

METRICS = ("cls", "sep", "punctuation", "self", "previous", "next", "distance", "confidence")
"""The :func:`~.analysis.head_metrics` stored as ``head_<name>`` summaries, beside ``head_pattern``."""

PATTERN = "pattern"


def summary_name(metric: str) -> str:
    """The summary a head metric is stored under: ``head_<metric>``.

    Example:
        >>> summary_name("cls")
        'head_cls'
    """
    return f"head_{metric}"


@dataclass(frozen=True)
class HeadMean:
    """One example's head mean ``values`` float32 ``[L, U, U]`` in ``stream`` under the named ``targets``
    (:data:`~.analysis.view.TARGET_SETS`), over ``units`` (``"tokens"``, or ``"words"`` with word pieces
    merged as the default view shows them), the mean share of attention the view ``hidden``, and the
    classification token's ``source_row`` ``[T]`` of the rollout through the token-level mean (what the
    aggregate view averages over examples)."""

    stream: str
    targets: str
    example: int
    values: np.ndarray
    hidden: float
    source_row: np.ndarray
    units: str = "tokens"


@dataclass
class StepProducts:
    """``summaries``: ``{stream: {name: [E, L, H]}}`` to add to the snapshot's; ``means``: :class:`HeadMean` s."""

    summaries: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    means: list[HeadMean] = field(default_factory=list)


def source_row_table(rows: Mapping[int, np.ndarray], examples: int, width: int) -> np.ndarray:
    """The source rows of a step's examples as one float32 ``[examples, width]`` table (``width``: the
    longest example's tokens), NaN past each row's end and in the rows of examples without one: what the
    aggregate reads for a step in one read.

    Example:
        >>> source_row_table({1: np.array([0.5, 0.5])}, 2, 3).tolist()
        [[nan, nan, nan], [0.5, 0.5, nan]]
    """
    table = np.full((examples, width), np.nan, dtype=np.float32)
    for i, row in rows.items():
        table[i, : len(row)] = row
    return table


def example_head_means(attention: np.ndarray, tokens: Sequence[str], word_ids: Sequence[int | None] | None,
                       source: int) -> list[tuple[str, np.ndarray, float, np.ndarray, str]]:
    """``(targets, mean, hidden, source row [T], units)`` for the raw head mean over tokens and, when it hides
    something, the default view's as it shows it (over words when it merges word pieces); the row is
    ``source``'s in the rollout through the token-level mean."""
    from .analysis import merge_word_pieces, rollout_row
    from .analysis.view import VIEW_DEFAULTS, checked_head_mean, view_keep, view_targets

    out = []
    default = view_targets(tokens, word_ids)
    for targets in dict.fromkeys(("none", default)):
        keep = None if targets == "none" else view_keep(tokens, word_ids, targets)
        mean, hidden = checked_head_mean(np.asarray(attention, dtype=np.float32), keep)
        row = rollout_row(mean[:, None].astype(np.float64), source).astype(np.float32)
        if targets == default != "none" and VIEW_DEFAULTS["words"] and word_ids is not None:
            out.append((targets, merge_word_pieces(mean, word_ids), round(hidden, 6), row, "words"))
        else:
            out.append((targets, mean, round(hidden, 6), row, "tokens"))
    return out


def example_head_metrics(attention: np.ndarray, tokens: Sequence[str], cls_index: int) -> dict[str, np.ndarray]:
    """``{head_<metric>: [L, H]}`` for :data:`METRICS` and ``head_pattern`` of one example's captured
    (float32, softmax) attention, computed in float32 one layer at a time."""
    from .analysis.metrics import checked_head_metrics, checked_pattern_scores, pattern_of

    tokens = list(tokens)
    per_layer = [checked_head_metrics(attention[layer : layer + 1], tokens, cls_index)
                 for layer in range(attention.shape[0])]
    out = {summary_name(m): np.concatenate([found[m] for found in per_layer]).astype(np.float32) for m in METRICS}
    out[summary_name(PATTERN)] = np.concatenate([pattern_of(checked_pattern_scores(attention[layer : layer + 1]))
                                                 for layer in range(attention.shape[0])]).astype(np.float32)
    return out


def snapshot_products(attention: Mapping[str, Sequence[np.ndarray]], tokens: Sequence[Sequence[str]],
                      word_ids: Sequence[Sequence[int]] | None, *, classification_last: bool,
                      min_tokens: int = MIN_TOKENS) -> StepProducts:
    """The step products of one snapshot (module docstring) for examples of at least ``min_tokens`` tokens.

    Args:
        attention: ``{stream: [L, H, T_i, T_i] per example}`` as captured (float32).
        tokens: the probe's tokens per example.
        word_ids: the probe's word ids per example (None or negative for special tokens), or None.
        classification_last: the classification token is the last one (decoders), else the first.
        min_tokens: the shortest example that gets products.

    Returns:
        Empty when no example is long enough. Head metrics are stored for every example of a
        stream once one is long enough (they are ``[E, L, H]`` arrays); head means only for the long ones.
    """
    made = StepProducts()
    for stream, per_example in attention.items():
        if stream not in STREAMS:
            continue
        if any(a.ndim != 4 or not a.shape[-1] == a.shape[-2] == len(tokens[i]) for i, a in enumerate(per_example)):
            continue  # not attention over the probe's own tokens
        long = [i for i, a in enumerate(per_example) if a.shape[-1] >= min_tokens]
        if not long:
            continue
        metrics = []
        per_example = [np.asarray(a, dtype=np.float32) for a in per_example]
        for i, a in enumerate(per_example):
            cls_index = a.shape[-1] - 1 if classification_last else 0
            metrics.append(example_head_metrics(a, tokens[i], cls_index))
        made.summaries[stream] = {name: np.stack([m[name] for m in metrics]) for name in metrics[0]}
        for i in long:
            ids = None if word_ids is None else [None if w is None or int(w) < 0 else int(w) for w in word_ids[i]]
            source = per_example[i].shape[-1] - 1 if classification_last else 0
            for targets, values, hidden, row, units in example_head_means(per_example[i], tokens[i], ids, source):
                made.means.append(HeadMean(stream, targets, i, values, hidden, row, units))
    return made

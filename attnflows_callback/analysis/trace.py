"""The Attention Flows trace and its comparison form (DeRose, Wang & Berger 2020, "Attention Flows:
Analyzing and Comparing Attention Mechanisms in Language Models").

Levels count from the input: level 0 holds the input tokens and level ``l + 1`` the output of
attention layer ``l``. A trace starts at ``source`` on level ``layer + 1`` and follows, layer by
layer towards the input, every edge whose head-averaged attention is at least ``tau``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from . import _checks

EDGE_DTYPE = np.dtype([("layer", np.int32), ("from_pos", np.int32), ("to_pos", np.int32), ("weight", np.float64)])
"""One traced edge: attention ``weight`` of position ``from_pos`` on ``to_pos`` in attention layer ``layer``."""

COMPARISON_EDGE_DTYPE = np.dtype(
    [
        ("layer", np.int32),
        ("from_pos", np.int32),
        ("to_pos", np.int32),
        ("weight_first", np.float64),
        ("weight_second", np.float64),
    ]
)

EDGE_LABELS = ("shared", "first", "second")
"""Comparison labels: the edge is in both traces, only in the first, only in the second."""


@dataclass(frozen=True)
class Trace:
    """What a trace reached.

    Attributes:
        source: the starting position.
        layer: the attention layer the trace starts from (its output is level ``layer + 1``).
        tau: the attention threshold.
        reached: bool ``[layer + 2, T]``; ``reached[level, pos]`` is True when the trace got there.
        edges: :data:`EDGE_DTYPE` records, top layer first, then by ``from_pos``, ``to_pos``.
        influence: float64 ``[T]``: the share of the source's attention that arrives at each
            input token along traced edges only (rollout restricted to the trace, no residual).
    """

    source: int
    layer: int
    tau: float
    reached: np.ndarray
    edges: np.ndarray
    influence: np.ndarray

    def tokens_at(self, level: int) -> np.ndarray:
        """Positions reached at ``level`` (0 = input tokens), sorted."""
        return np.flatnonzero(self.reached[level])


@dataclass(frozen=True)
class ComparisonTrace:
    """Two traces from the same start, and their edges labelled.

    Attributes:
        first, second: the two :class:`Trace` objects.
        edges: :data:`COMPARISON_EDGE_DTYPE` records of the union of both traces' edges, with the
            head-averaged attention of each snapshot on that edge.
        labels: str ``[E]``, one of :data:`EDGE_LABELS` per edge.
    """

    first: Trace
    second: Trace
    edges: np.ndarray
    labels: np.ndarray

    def count(self, label: str) -> int:
        """How many edges carry ``label``."""
        if label not in EDGE_LABELS:
            raise ValueError(f"label must be one of {list(EDGE_LABELS)}, got {label!r}")
        return int(np.count_nonzero(self.labels == label))


def trace(
    attn, *, source: int, layer: int | None = None, tau: float = 0.1, heads: Iterable[int] | None = None
) -> Trace:
    """Follow attention of at least ``tau`` from ``source`` back to the input (DeRose et al. 2020).

    With ``Ā_l`` the mean of the selected heads of layer ``l``: ``reached[layer + 1] = {source}``
    and, for ``l = layer .. 0``, the edges ``{(l, j, k, Ā_l[j, k]) : j in reached[l + 1], Ā_l[j, k] >= tau}``
    whose targets ``k`` form ``reached[l]``. ``influence = m_0`` with ``m_{layer+1} = e_source``
    and ``m_l = m_{l+1} @ (Ā_l * traced_l)``.

    Args:
        attn: ``[L, H, T, T]`` self-attention of one example; rows sum to 1.
        source: position to start from (0 for [CLS]).
        layer: attention layer to start from, ``0 .. L - 1``; ``None`` for the deepest.
        tau: attention threshold in ``[0, 1]``; ``0`` follows every edge.
        heads: head indices to average, or ``None`` for all heads.

    Returns:
        a :class:`Trace`.

    Raises:
        ValueError: bad ``attn`` (shape, NaN), or ``source``, ``layer``, ``tau`` or ``heads`` out of range.

    Example:
        >>> import numpy as np
        >>> attn = np.zeros((2, 1, 3, 3)); attn[:, 0] = [[0.5, 0.5, 0], [0, 1, 0], [0, 0, 1]]
        >>> result = trace(attn, source=0, tau=0.3)
        >>> [result.tokens_at(level).tolist() for level in range(3)]
        [[0, 1], [0, 1], [0]]
        >>> result.influence.tolist()
        [0.25, 0.75, 0.0]
    """
    maps, source, layer, tau = _trace_inputs(attn, source, layer, tau, heads)
    return _follow(maps, source, layer, tau)


def compare_trace(
    attn_a,
    attn_b,
    *,
    source: int,
    layer: int | None = None,
    tau: float = 0.1,
    heads: Iterable[int] | None = None,
) -> ComparisonTrace:
    """Trace two snapshots from the same start and label each edge (DeRose et al. 2020, comparison view).

    An edge ``(layer, from_pos, to_pos)`` is ``"shared"`` when both traces contain it,
    ``"first"`` when only the trace of ``attn_a`` does and ``"second"`` when only that of ``attn_b`` does.

    Args:
        attn_a: ``[L, H, T, T]`` attention of the first snapshot (e.g. the pre-trained model).
        attn_b: attention of the second snapshot, same shape.
        source, layer, tau, heads: as in :func:`trace`, applied to both.

    Returns:
        a :class:`ComparisonTrace`.

    Raises:
        ValueError: as :func:`trace`, or the two arrays differ in shape.

    Example:
        >>> import numpy as np
        >>> before = np.zeros((1, 1, 2, 2)); before[0, 0] = np.eye(2)
        >>> after = np.full((1, 1, 2, 2), 0.5)
        >>> result = compare_trace(before, after, source=0, tau=0.4)
        >>> list(zip(result.edges["to_pos"].tolist(), result.labels.tolist()))
        [(0, 'shared'), (1, 'second')]
    """
    first = _checks.attention(attn_a, "attn_a", square=True)
    second = _checks.attention(attn_b, "attn_b", square=True)
    _checks.same_shape(first, second, ("attn_a", "attn_b"))
    maps_a, source, layer, tau = _trace_inputs(first, source, layer, tau, heads)
    maps_b, *_ = _trace_inputs(second, source, layer, tau, heads)
    trace_a = _follow(maps_a, source, layer, tau)
    trace_b = _follow(maps_b, source, layer, tau)

    n_tokens = maps_a.shape[-1]
    keys_a = _edge_keys(trace_a.edges, n_tokens)
    keys_b = _edge_keys(trace_b.edges, n_tokens)
    union = np.union1d(keys_a, keys_b)
    # keys sort by (layer, from, to); flip the layer part so the top layer comes first, as in Trace.edges
    layer_of = union // (n_tokens * n_tokens)
    union = union[np.lexsort((union % (n_tokens * n_tokens), -layer_of))]
    in_a = np.isin(union, keys_a)
    in_b = np.isin(union, keys_b)
    edges = np.empty(union.size, dtype=COMPARISON_EDGE_DTYPE)
    edges["layer"], rest = np.divmod(union, n_tokens * n_tokens)
    edges["from_pos"], edges["to_pos"] = np.divmod(rest, n_tokens)
    edges["weight_first"] = maps_a[edges["layer"], edges["from_pos"], edges["to_pos"]]
    edges["weight_second"] = maps_b[edges["layer"], edges["from_pos"], edges["to_pos"]]
    labels = np.where(in_a & in_b, EDGE_LABELS[0], np.where(in_a, EDGE_LABELS[1], EDGE_LABELS[2]))
    return ComparisonTrace(first=trace_a, second=trace_b, edges=edges, labels=labels)


def _trace_inputs(attn, source, layer, tau, heads) -> tuple[np.ndarray, int, int, float]:
    attn = _checks.attention(attn, square=True)
    n_layers, n_heads, n_tokens, _ = attn.shape
    source = _checks.position(source, "source", n_tokens)
    layer = n_layers - 1 if layer is None else _checks.position(layer, "layer", n_layers)
    tau = _checks.probability(tau, "tau")
    maps = attn[:, _checks.head_indices(heads, n_heads)].mean(axis=1)
    return maps, source, layer, tau


def _follow(maps: np.ndarray, source: int, layer: int, tau: float) -> Trace:
    n_tokens = maps.shape[-1]
    reached = np.zeros((layer + 2, n_tokens), dtype=bool)
    reached[layer + 1, source] = True
    mass = np.zeros(n_tokens)
    mass[source] = 1.0
    edges = []
    for current in range(layer, -1, -1):
        traced = reached[current + 1][:, None] & (maps[current] >= tau)
        reached[current] = traced.any(axis=0)
        from_pos, to_pos = np.nonzero(traced)
        block = np.empty(from_pos.size, dtype=EDGE_DTYPE)
        block["layer"], block["from_pos"], block["to_pos"] = current, from_pos, to_pos
        block["weight"] = maps[current][from_pos, to_pos]
        edges.append(block)
        mass = mass @ np.where(traced, maps[current], 0.0)
    return Trace(
        source=source, layer=layer, tau=tau, reached=reached, edges=np.concatenate(edges), influence=mass
    )


def _edge_keys(edges: np.ndarray, n_tokens: int) -> np.ndarray:
    return (edges["layer"].astype(np.int64) * n_tokens + edges["from_pos"]) * n_tokens + edges["to_pos"]

"""The Attention Flows trace and its comparison form (DeRose, Wang & Berger 2020, "Attention Flows:
Analyzing and Comparing Attention Mechanisms in Language Models").

Levels count from the input: level 0 holds the input tokens and level ``l + 1`` the output of
attention layer ``l``. A trace starts at ``source`` on level ``layer + 1`` and follows, layer by
layer towards the input, every edge whose attention is at least ``tau``: the head average in mode
``"mean"``, any one selected head's own weight in mode ``"any_head"`` (the per-head graph).
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

TRACE_MODES = ("mean", "any_head")
"""How an edge passes ``tau``: the selected heads' average weight, or any one selected head's own weight."""

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
        edges: :data:`EDGE_DTYPE` records, top layer first, then by ``from_pos``, ``to_pos``. The
            weight is the head average in mode ``"mean"`` and the strongest selected head's weight
            in mode ``"any_head"``.
        influence: float64 ``[T]``: the share of the source's attention that arrives at each
            input token along traced edges only (rollout restricted to the trace, no residual);
            in mode ``"any_head"`` only the heads that pass ``tau`` on an edge carry mass over it.
            It sums to at most 1; :attr:`influence_share` rescales it to sum to 1.
        strongest_path: float64 ``[T]``: for each input token, the product of edge weights along
            its strongest traced path from the source (max-product); 0 where not reached.
        mode: one of :data:`TRACE_MODES`.
        heads: int ``[Hs]``: the selected heads, in the order of ``edge_heads``' columns.
        edge_heads: bool ``[E, Hs]`` in mode ``"any_head"`` (which selected heads pass ``tau`` on
            each edge: colour an edge by head, or by its layer ``edges["layer"]``); None in mode ``"mean"``.
    """

    source: int
    layer: int
    tau: float
    reached: np.ndarray
    edges: np.ndarray
    influence: np.ndarray
    strongest_path: np.ndarray | None = None
    mode: str = "mean"
    heads: np.ndarray | None = None
    edge_heads: np.ndarray | None = None

    @property
    def influence_share(self) -> np.ndarray:
        """:attr:`influence` divided by its sum (all zeros when nothing arrives)."""
        total = self.influence.sum()
        return self.influence / total if total > 0 else np.zeros_like(self.influence)

    def tokens_at(self, level: int) -> np.ndarray:
        """Positions reached at ``level`` (0 = input tokens), sorted."""
        return np.flatnonzero(self.reached[level])


@dataclass(frozen=True)
class ComparisonTrace:
    """Two traces from the same start, and their edges labelled.

    Attributes:
        first, second: the two :class:`Trace` objects.
        edges: :data:`COMPARISON_EDGE_DTYPE` records of the union of both traces' edges, with the
            attention of each snapshot on that edge (head average in mode ``"mean"``, the strongest
            selected head in mode ``"any_head"``).
        labels: str ``[E]``, one of :data:`EDGE_LABELS` per edge.
        heads_first, heads_second: bool ``[E, Hs]`` in mode ``"any_head"``: which selected heads
            pass ``tau`` on each edge in each snapshot (columns follow ``first.heads``); None in mode ``"mean"``.
    """

    first: Trace
    second: Trace
    edges: np.ndarray
    labels: np.ndarray
    heads_first: np.ndarray | None = None
    heads_second: np.ndarray | None = None

    def count(self, label: str) -> int:
        """How many edges carry ``label``."""
        if label not in EDGE_LABELS:
            raise ValueError(f"label must be one of {list(EDGE_LABELS)}, got {label!r}")
        return int(np.count_nonzero(self.labels == label))


def trace(
    attn,
    *,
    source: int,
    layer: int | None = None,
    tau: float = 0.1,
    heads: Iterable[int] | None = None,
    mode: str = "mean",
) -> Trace:
    """Follow attention of at least ``tau`` from ``source`` back to the input (DeRose et al. 2020).

    Mode ``"mean"``: with ``Ā_l`` the mean of the selected heads ``S`` of layer ``l``,
    ``reached[layer + 1] = {source}`` and, for ``l = layer .. 0``, the edges
    ``{(l, j, k, Ā_l[j, k]) : j in reached[l + 1], Ā_l[j, k] >= tau}`` whose targets ``k`` form
    ``reached[l]``. ``influence = m_0`` with ``m_{layer+1} = e_source`` and
    ``m_l = m_{l+1} @ (Ā_l * traced_l)``.

    Mode ``"any_head"`` (the per-head graph): the edge ``(l, j, k)`` is traced when
    ``j in reached[l + 1]`` and ``A_{l,h}[j, k] >= tau`` for at least one ``h in S``; its weight is
    ``max_{h in S} A_{l,h}[j, k]`` and ``edge_heads`` lists the passing heads. Only passing heads
    carry mass: ``m_l = m_{l+1} @ W_l`` with
    ``W_l[j, k] = (1 / |S|) sum_{h in S, A_{l,h}[j, k] >= tau} A_{l,h}[j, k]`` on traced edges.

    In both modes ``strongest_path[k] = s_0[k]`` with ``s_{layer+1} = e_source`` and
    ``s_l[k] = max_{j: (l, j, k) traced} s_{l+1}[j] * weight(l, j, k)`` (max-product).

    Args:
        attn: ``[L, H, T, T]`` self-attention of one example; rows sum to 1.
        source: position to start from (0 for [CLS]).
        layer: attention layer to start from, ``0 .. L - 1``; ``None`` for the deepest.
        tau: attention threshold in ``[0, 1]``; ``0`` follows every edge.
        heads: head indices to average (mode ``"mean"``) or to test one by one (``"any_head"``),
            or ``None`` for all heads.
        mode: one of :data:`TRACE_MODES`.

    Returns:
        a :class:`Trace`.

    Raises:
        ValueError: bad ``attn`` (shape, NaN), ``source``, ``layer``, ``tau`` or ``heads`` out of
            range, or an unknown ``mode``.

    Example:
        >>> import numpy as np
        >>> attn = np.zeros((2, 1, 3, 3)); attn[:, 0] = [[0.5, 0.5, 0], [0, 1, 0], [0, 0, 1]]
        >>> result = trace(attn, source=0, tau=0.3)
        >>> [result.tokens_at(level).tolist() for level in range(3)]
        [[0, 1], [0, 1], [0]]
        >>> result.influence.tolist()
        [0.25, 0.75, 0.0]

        Two heads that each look elsewhere: their average (0.5) passes ``tau = 0.6`` nowhere,
        each head's own weight (1.0) does.

        >>> attn = np.zeros((1, 2, 2, 2)); attn[0, 0, :, 0] = 1; attn[0, 1, :, 1] = 1
        >>> len(trace(attn, source=0, tau=0.6).edges)
        0
        >>> per_head = trace(attn, source=0, tau=0.6, mode="any_head")
        >>> per_head.edges["to_pos"].tolist(), per_head.edge_heads.tolist(), per_head.influence.tolist()
        ([0, 1], [[True, False], [False, True]], [0.5, 0.5])
    """
    selected, maps, source, layer, tau, mode = _trace_inputs(attn, source, layer, tau, heads, mode)
    return _follow(selected, maps, source, layer, tau, mode)


def compare_trace(
    attn_a,
    attn_b,
    *,
    source: int,
    layer: int | None = None,
    tau: float = 0.1,
    heads: Iterable[int] | None = None,
    mode: str = "mean",
) -> ComparisonTrace:
    """Trace two snapshots from the same start and label each edge (DeRose et al. 2020, comparison view).

    An edge ``(layer, from_pos, to_pos)`` is ``"shared"`` when both traces contain it,
    ``"first"`` when only the trace of ``attn_a`` does and ``"second"`` when only that of ``attn_b`` does.

    Args:
        attn_a: ``[L, H, T, T]`` attention of the first snapshot (e.g. the pre-trained model).
        attn_b: attention of the second snapshot, same shape.
        source, layer, tau, heads, mode: as in :func:`trace`, applied to both.

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
    selected_a, maps_a, source, layer, tau, mode = _trace_inputs(first, source, layer, tau, heads, mode)
    selected_b, maps_b, *_ = _trace_inputs(second, source, layer, tau, heads, mode)
    trace_a = _follow(selected_a, maps_a, source, layer, tau, mode)
    trace_b = _follow(selected_b, maps_b, source, layer, tau, mode)

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
    index = (edges["layer"], edges["from_pos"], edges["to_pos"])
    edges["weight_first"] = maps_a[index]
    edges["weight_second"] = maps_b[index]
    labels = np.where(in_a & in_b, EDGE_LABELS[0], np.where(in_a, EDGE_LABELS[1], EDGE_LABELS[2]))
    heads_a = heads_b = None
    if mode == "any_head":  # which selected heads pass tau on every edge of the union: [E, Hs]
        heads_a = selected_a.weights[edges["layer"], :, edges["from_pos"], edges["to_pos"]] >= tau
        heads_b = selected_b.weights[edges["layer"], :, edges["from_pos"], edges["to_pos"]] >= tau
    return ComparisonTrace(first=trace_a, second=trace_b, edges=edges, labels=labels,
                           heads_first=heads_a, heads_second=heads_b)


def _trace_inputs(attn, source, layer, tau, heads, mode):
    """(selected heads [L, Hs, T, T] with their indices attached, edge maps [L, T, T], source, layer, tau, mode)."""
    if mode not in TRACE_MODES:
        raise ValueError(f"mode must be one of {list(TRACE_MODES)}, got {mode!r}")
    attn = _checks.attention(attn, square=True)
    n_layers, n_heads, n_tokens, _ = attn.shape
    source = _checks.position(source, "source", n_tokens)
    layer = n_layers - 1 if layer is None else _checks.position(layer, "layer", n_layers)
    tau = _checks.probability(tau, "tau")
    indices = _checks.head_indices(heads, n_heads)
    selected = _Heads(_checks.heads_of(attn, indices), indices)
    if indices.size == 1:  # one head (or a stored head mean): its own weights, no reduction over heads
        maps = selected.weights[:, 0]
    else:
        maps = selected.weights.mean(axis=1) if mode == "mean" else selected.weights.max(axis=1)
    return selected, maps, source, layer, tau, mode


@dataclass(frozen=True)
class _Heads:
    weights: np.ndarray  # [L, Hs, T, T]: the selected heads' attention
    indices: np.ndarray  # [Hs]: which heads they are


def _follow(selected: _Heads, maps: np.ndarray, source: int, layer: int, tau: float, mode: str) -> Trace:
    n_tokens = maps.shape[-1]
    reached = np.zeros((layer + 2, n_tokens), dtype=bool)
    reached[layer + 1, source] = True
    mass = np.zeros(n_tokens)
    mass[source] = 1.0
    strongest = mass.copy()
    edges, edge_heads = [], []
    per_head = selected.weights
    for current in range(layer, -1, -1):
        # only the rows reached from above can pass tau: a trace touches a few of a long input's rows
        rows = np.flatnonzero(reached[current + 1])
        weights = maps[current][rows]  # [R, T]
        if mode == "mean":
            traced = weights >= tau
            carried = np.where(traced, weights, 0.0)
        else:
            passing = per_head[current][:, rows] >= tau  # [Hs, R, T]
            traced = passing.any(axis=0)
            carried = np.where(passing, per_head[current][:, rows], 0.0).sum(axis=0) / per_head.shape[1]
        reached[current] = traced.any(axis=0)
        row_index, to_pos = np.nonzero(traced)
        block = np.empty(to_pos.size, dtype=EDGE_DTYPE)
        block["layer"], block["from_pos"], block["to_pos"] = current, rows[row_index], to_pos
        block["weight"] = weights[row_index, to_pos]
        edges.append(block)
        if mode == "any_head":
            edge_heads.append(passing[:, row_index, to_pos].T)
        mass = mass[rows] @ carried
        strong = strongest[rows, None] * np.where(traced, weights, 0.0)
        strongest = strong.max(axis=0) if rows.size else np.zeros(n_tokens)
    return Trace(
        source=source,
        layer=layer,
        tau=tau,
        reached=reached,
        edges=np.concatenate(edges),
        influence=mass,
        strongest_path=strongest,
        mode=mode,
        heads=np.asarray(selected.indices),
        edge_heads=np.concatenate(edge_heads) if mode == "any_head" else None,
    )


def _edge_keys(edges: np.ndarray, n_tokens: int) -> np.ndarray:
    return (edges["layer"].astype(np.int64) * n_tokens + edges["from_pos"]) * n_tokens + edges["to_pos"]

"""Exact attention flow (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

The network has one node per (layer, position): level 0 holds the input tokens and level ``l``
the output of attention layer ``l - 1``. Position ``j`` at level ``l`` has an edge to every
position ``k`` at level ``l - 1`` with capacity ``Ã_{l-1}[j, k]`` (:func:`.rollout.layer_attention`).
``attention_flow`` returns, for every input token ``t``, the maximum-flow value from ``source``
at the top level to ``t`` at level 0.

Algorithm, per sink ``t`` (see docs/analysis.md for the proof sketch):

1. Only the source is kept at the top level and only ``t`` at level 0: other top nodes have no
   incoming edges and other inputs no outgoing ones, so neither can carry flow.
2. Capacities are scaled by ``S = 2**30`` and floored to integers for
   ``scipy.sparse.csgraph.maximum_flow`` (Dinic). Flooring only lowers capacities, so
   ``flow_value / S`` is the value of a feasible flow in the real network: a lower bound.
3. The cut around the source and the cut around the sink are upper bounds; when neither is
   within ``atol`` of the lower bound, the nodes reachable from the source in the residual graph
   form a minimum cut of the integer network. Its capacity in the *real* network, every original edge counted, is an
   upper bound. The true maximum flow lies between the two (max-flow min-cut theorem).
4. To go fast, step 2 first runs on a sparse network keeping, between inner levels, only each
   node's 12 strongest edges (and its self-edge); the bounds of step 3 stay valid because
   dropped edges only lower the flow and are counted again in the cut. Sinks whose bounds differ
   by more than ``atol`` are solved again with more edges (48 per node), then with all of them.

The value returned is the upper bound, the capacity of a real cut. It is never below the true
flow and exceeds it by at most ``atol`` (1e-6) after a certified pass; in the rare case that even
the full network leaves a wider gap, by at most ``|cut| / S <= (number of edges) / 2**30``
(1.5e-4 at 12 layers x 128 tokens; in practice about 1e-8).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

from . import _checks
from .rollout import layer_attention

SCALE = 2**30
"""Integer scale for the capacities: ``floor(capacity * SCALE)`` stays far below the int32 limit."""

EDGES_PER_NODE = (12, 48, None)
"""Passes: keep each inner node's strongest edges, this many (ties kept); ``None`` keeps every edge."""

DEFAULT_ATOL = 1e-6


def attention_flow(attn, source: int, *, residual: bool = True, heads: Iterable[int] | None = None) -> np.ndarray:
    """Exact max-flow from ``source`` at the top layer to every input token (Abnar & Zuidema 2020).

    ``flow[t] = max-flow(node (L, source) -> node (0, t))`` in the layered network whose edge
    ``(l, j) -> (l - 1, k)`` has capacity ``Ã_{l-1}[j, k]`` (head-averaged attention, with the
    residual ``0.5 * A + 0.5 * I`` when ``residual``). Raw values, not normalised to sum to 1.
    Certified to within 1e-6 of the real-valued maximum flow (see the module docstring).

    Args:
        attn: ``[L, H, T, T]`` self-attention of one example; rows sum to 1.
        source: position at the top layer the flow starts from (0 for [CLS]).
        residual: model the residual connection as in :func:`.rollout.layer_attention`.
        heads: head indices to average per layer, or ``None`` for all heads.

    Returns:
        float64 ``[T]`` flow values in ``[0, 1]``.

    Raises:
        ValueError: ``attn`` is not ``[L, H, T, T]`` attention, holds NaN, ``source`` or ``heads``
            is out of range.

    Example:
        >>> import numpy as np
        >>> attn = np.zeros((2, 1, 3, 3)); attn[:, 0] = np.eye(3)[[1, 2, 0]]  # token i reads token i+1
        >>> attention_flow(attn, 0, residual=False).round(6).tolist()
        [0.0, 0.0, 1.0]
    """
    _, upper = attention_flow_bounds(attn, source, residual=residual, heads=heads)
    return np.clip(upper, 0.0, 1.0)


def attention_flow_bounds(
    attn,
    source: int,
    *,
    residual: bool = True,
    heads: Iterable[int] | None = None,
    atol: float = DEFAULT_ATOL,
) -> tuple[np.ndarray, np.ndarray]:
    """Certified lower and upper bounds on the attention flow of :func:`attention_flow`.

    ``lower[t]`` is the value of a feasible flow and ``upper[t]`` the capacity of an
    ``(L, source) -> (0, t)`` cut, so ``lower <= max-flow <= upper``; passes continue until
    ``upper - lower <= atol`` or every edge is in the network.

    Args:
        attn: ``[L, H, T, T]`` self-attention of one example; rows sum to 1.
        source: position at the top layer the flow starts from.
        residual: model the residual connection as in :func:`.rollout.layer_attention`.
        heads: head indices to average per layer, or ``None`` for all heads.
        atol: gap at which a sink counts as solved; must be > 0.

    Returns:
        ``(lower, upper)``, two float64 ``[T]`` arrays.

    Raises:
        ValueError: as :func:`attention_flow`, or ``atol <= 0``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> attn = rng.dirichlet(np.ones(5), size=(3, 2, 5))
        >>> lower, upper = attention_flow_bounds(attn, 0)
        >>> bool(np.all(upper - lower <= 1e-6))
        True
    """
    if not atol > 0:
        raise ValueError(f"atol must be > 0, got {atol!r}")
    capacities = layer_attention(attn, residual=residual, heads=heads)
    source = _checks.position(source, "source", capacities.shape[-1])
    return layered_max_flow(capacities, source, atol=atol)


def layered_max_flow(capacities: np.ndarray, source: int, *, atol: float = DEFAULT_ATOL) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on the max-flow from ``source`` at level ``L`` to each position at level 0.

    ``capacities[l][j, k]`` is the capacity of edge ``(l + 1, j) -> (l, k)``; any non-negative
    ``[L, T, T]`` float array. Used by :func:`attention_flow_bounds`; see the module docstring.
    """
    n_layers, n_tokens, _ = capacities.shape
    if n_layers == 1:
        direct = capacities[0, source].copy()
        return direct, direct.copy()
    scaled = np.floor(capacities * SCALE).astype(np.int32)
    lower = np.zeros(n_tokens)
    upper = np.full(n_tokens, np.inf)
    pending = np.arange(n_tokens)
    for edges_per_node in EDGES_PER_NODE:
        network = _SinkNetwork(capacities, scaled, source, edges_per_node=edges_per_node)
        for sink in pending:
            low, high = network.bounds(int(sink), atol)
            lower[sink] = max(lower[sink], low)
            upper[sink] = min(upper[sink], high)
        pending = pending[upper[pending] - lower[pending] > atol]
        if pending.size == 0 or edges_per_node is None or edges_per_node >= n_tokens:
            break  # solved, or this pass already had every edge
    return lower, upper


class _SinkNetwork:
    """The reduced network for one source, built once per pass; only the edges into the sink change.

    Node ids: the sink is 0, position ``j`` of level ``l`` (1 <= l < L) is ``1 + (l - 1) * T + j``,
    the source is the last node. The sink's row is empty and each level-1 row holds exactly one
    edge, so the sink capacities are the first ``T`` entries of the CSR data.
    """

    def __init__(self, capacities: np.ndarray, scaled: np.ndarray, source: int, *, edges_per_node: int | None):
        n_layers, n_tokens, _ = capacities.shape
        self.capacities = capacities
        self.scaled = scaled
        self.source = source
        self.source_cut = float(capacities[-1, source].sum())
        self.n_nodes = (n_layers - 1) * n_tokens + 2
        self.source_id = self.n_nodes - 1
        diagonal = np.eye(n_tokens, dtype=bool)
        indices = [np.zeros(n_tokens, dtype=np.int64)]
        data = [np.zeros(n_tokens, dtype=np.int32)]
        counts = [np.zeros(1, dtype=np.int64), np.ones(n_tokens, dtype=np.int64)]
        for level in range(2, n_layers):
            kept = _strongest(capacities[level - 1], edges_per_node) | diagonal
            rows, cols = np.nonzero(kept)  # row-major, so columns are sorted within each row
            indices.append(1 + (level - 2) * n_tokens + cols)
            data.append(scaled[level - 1][rows, cols])
            counts.append(kept.sum(axis=1))
        indices.append(1 + (n_layers - 2) * n_tokens + np.arange(n_tokens))
        data.append(scaled[n_layers - 1, source])
        counts.append(np.array([n_tokens]))
        self.indices = np.concatenate(indices).astype(np.int32)
        self.indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int32)
        self.data = np.concatenate(data)

    def bounds(self, sink: int, atol: float) -> tuple[float, float]:
        n_layers, n_tokens, _ = self.capacities.shape
        data = self.data.copy()
        data[:n_tokens] = self.scaled[0][:, sink]
        graph = sp.csr_array((data, self.indices, self.indptr), shape=(self.n_nodes, self.n_nodes))
        result = maximum_flow(graph, self.source_id, 0)
        lower = float(result.flow_value) / SCALE
        # the cuts around the source and around the sink are often minimal: no residual search then
        simple_cut = min(self.source_cut, float(self.capacities[0][:, sink].sum()))
        if simple_cut - lower <= atol:
            return lower, simple_cut
        residual = graph - result.flow  # forward: capacity - flow; reverse: the flow itself
        residual.data = (residual.data > 0).astype(np.int8)
        residual.eliminate_zeros()  # csgraph traversals follow explicit zeros too
        reached = np.zeros(self.n_nodes, dtype=bool)
        reached[breadth_first_order(residual, self.source_id, directed=True, return_predecessors=False)] = True
        inside = reached[1:-1].reshape(n_layers - 1, n_tokens).astype(np.float64)  # [level - 1, position]
        outside = 1.0 - inside
        cut = self.capacities[n_layers - 1, self.source] @ outside[-1]
        cut += np.sum((inside[1:, None, :] @ self.capacities[1:-1])[:, 0, :] * outside[:-1])
        cut += inside[0] @ self.capacities[0][:, sink]
        return lower, min(float(cut), simple_cut)


def _strongest(capacities: np.ndarray, count: int | None) -> np.ndarray:
    """Mask of each row's ``count`` largest entries (ties included); every entry when ``count`` is None or >= T."""
    if count is None or count >= capacities.shape[-1]:
        return np.ones(capacities.shape, dtype=bool)
    kth = -np.partition(-capacities, count - 1, axis=-1)[:, count - 1 : count]
    return capacities >= kth

"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

Both rollout and the exact flow in :mod:`.flow` work on the same per-layer maps, built by
:func:`layer_attention`: the selected heads averaged, optionally with the residual connection.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from . import _checks


def layer_attention(attn, *, residual: bool = True, heads: Iterable[int] | None = None) -> np.ndarray:
    """Per-layer attention maps, head-averaged and optionally residual-augmented.

    ``Ã_l = rownorm(0.5 * mean_{h in heads} A_{l,h} + 0.5 * I)`` with ``residual``, else
    ``mean_{h in heads} A_{l,h}`` (Abnar & Zuidema 2020, section 3).

    Args:
        attn: ``[L, H, T, T]`` self-attention of one example; rows sum to 1.
        residual: add the identity for the residual connection and re-normalise rows.
        heads: head indices to average, or ``None`` for all heads.

    Returns:
        float64 ``[L, T, T]``; rows sum to 1.

    Raises:
        ValueError: ``attn`` is not ``[L, H, T, T]`` attention, holds NaN, or ``heads`` is out of range.

    Example:
        >>> import numpy as np
        >>> attn = np.full((1, 2, 2, 2), 0.5)
        >>> layer_attention(attn)[0].tolist()
        [[0.75, 0.25], [0.25, 0.75]]
    """
    attn = _checks.attention(attn, square=True)
    selected = _checks.head_indices(heads, attn.shape[1])
    heads_shown = _checks.heads_of(attn, selected)
    # one head (or a stored head mean): its own weights, copied only below
    maps = heads_shown[:, 0] if selected.size == 1 else heads_shown.mean(axis=1)
    if not residual:
        return maps if maps.base is None else maps.copy()
    maps = 0.5 * maps
    diagonal = np.arange(maps.shape[-1])
    maps[:, diagonal, diagonal] += 0.5
    maps /= maps.sum(axis=-1, keepdims=True)
    return maps


def rollout(attn, *, residual: bool = True, heads: Iterable[int] | None = None) -> np.ndarray:
    """Attention rollout through the layers (Abnar & Zuidema 2020).

    ``R_0 = Ã_0`` and ``R_l = Ã_l @ R_{l-1}``, with ``Ã_l`` from :func:`layer_attention`.
    ``R_l[i, j]`` is how much position ``i`` after layer ``l`` draws on input token ``j``;
    the last entry maps the top layer to the input tokens.

    Args:
        attn: ``[L, H, T, T]`` self-attention of one example; rows sum to 1.
        residual: use ``0.5 * A + 0.5 * I`` (re-normalised by row) for each layer.
        heads: head indices to average per layer, or ``None`` for all heads.

    Returns:
        float64 ``[L, T, T]``: ``[l]`` is the rollout up to and including layer ``l``; rows sum to 1.

    Raises:
        ValueError: ``attn`` is not ``[L, H, T, T]`` attention, holds NaN, or ``heads`` is out of range.

    Example:
        >>> import numpy as np
        >>> attn = np.zeros((2, 1, 2, 2)); attn[:, 0, :, 0] = 1.0   # every token reads token 0
        >>> rollout(attn, residual=False)[-1].tolist()
        [[1.0, 0.0], [1.0, 0.0]]
        >>> rollout(attn)[-1].tolist()
        [[1.0, 0.0], [0.75, 0.25]]
    """
    maps = layer_attention(attn, residual=residual, heads=heads)
    result = np.empty_like(maps)
    result[0] = maps[0]
    for layer in range(1, len(maps)):
        np.matmul(maps[layer], result[layer - 1], out=result[layer])
    return result


def rollout_row(attn, source: int, *, layer: int | None = None, residual: bool = True,
                heads: Iterable[int] | None = None) -> np.ndarray:
    """``rollout(attn)[layer][source]``, the source's row of the rollout up to ``layer`` (default: the last),
    by vector-matrix products.

    ``e_source^T Ã_layer ... Ã_0``: ``layer + 1`` products of a vector with a ``T x T`` map instead of
    ``L - 1`` of two maps (at 512 tokens, milliseconds instead of a second).

    Example:
        >>> import numpy as np
        >>> attn = np.random.default_rng(0).dirichlet(np.ones(5), size=(3, 2, 5))
        >>> bool(np.allclose(rollout_row(attn, 0), rollout(attn)[-1][0]))
        True
        >>> bool(np.allclose(rollout_row(attn, 2, layer=1, residual=False), rollout(attn, residual=False)[1][2]))
        True
    """
    maps = layer_attention(attn, residual=residual, heads=heads)
    layer = len(maps) - 1 if layer is None else _checks.position(layer, "layer", len(maps))
    row = np.zeros(maps.shape[-1])
    row[_checks.position(source, "source", maps.shape[-1])] = 1.0
    for level in range(layer, -1, -1):
        row = row @ maps[level]
    return row


def rollout_edges(attn, source: int, layer: int, tau: float, *, heads: Iterable[int] | None = None) -> np.ndarray:
    """The edges rollout's mass takes from ``source`` at ``layer`` down to the input tokens.

    All of the mass starts on ``source`` after layer ``layer``; each layer ``l`` passes it down
    through the residual-adjusted map ``Ã_l`` of :func:`layer_attention`. An edge's weight is the
    mass it carries, ``m_l[i] * Ã_l[i, j]``, so the input tokens receive exactly the source's
    rollout row ``rollout(attn)[layer, source]``. Edges carrying less than ``tau`` (or nothing) are left out.

    Args:
        attn: ``[L, H, T, T]`` self-attention of one example; rows sum to 1.
        source: position the mass starts from, in ``[0, T)``.
        layer: layer the mass starts after, in ``[0, L)``.
        tau: smallest weight kept, in ``[0, 1]``.
        heads: head indices to average per layer, or ``None`` for all heads.

    Returns:
        float64 ``[E, 4]``: rows ``(layer, from_pos, to_pos, weight)``, deepest layer first.

    Raises:
        ValueError: bad ``attn`` or ``heads``, or ``source``, ``layer`` or ``tau`` out of range.

    Example:
        >>> import numpy as np
        >>> attn = np.full((1, 1, 2, 2), 0.5)
        >>> rollout_edges(attn, source=0, layer=0, tau=0.0).tolist()
        [[0.0, 0.0, 0.0, 0.75], [0.0, 0.0, 1.0, 0.25]]
    """
    maps = layer_attention(attn, residual=True, heads=heads)
    layers, length = maps.shape[0], maps.shape[-1]
    if not 0 <= layer < layers:
        raise ValueError(f"layer must be in [0, {layers}), got {layer}")
    if not 0 <= source < length:
        raise ValueError(f"source must be in [0, {length}), got {source}")
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau}")
    return _carry(maps, source, layer, tau)[0]


def rollout_paths(attn, source: int, layer: int, tau: float, *, heads: Iterable[int] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rollout_edges` and the mass they bring the input tokens, ``rollout(attn)[layer][source]``
    (residual rollout), from one pass: what the flow view's rollout method draws.

    Example:
        >>> import numpy as np
        >>> attn = np.random.default_rng(1).dirichlet(np.ones(4), size=(3, 2, 4))
        >>> edges, row = rollout_paths(attn, 0, 2, 0.05)
        >>> bool(np.allclose(row, rollout(attn)[2][0])), bool(np.array_equal(edges, rollout_edges(attn, 0, 2, 0.05)))
        (True, True)
    """
    maps = layer_attention(attn, residual=True, heads=heads)
    _checks.position(layer, "layer", maps.shape[0])
    _checks.position(source, "source", maps.shape[-1])
    _checks.probability(tau, "tau")
    return _carry(maps, source, layer, tau)


def _carry(maps: np.ndarray, source: int, layer: int, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Edges carrying at least ``tau`` of the mass from ``source`` at ``layer`` down ``maps``, and the mass at the inputs."""
    mass = np.zeros(maps.shape[-1])
    mass[source] = 1.0
    edges = []
    for level in range(layer, -1, -1):
        # an edge carries mass[i] * Ã[i, j] <= mass[i] (rows sum to 1): only rows holding tau can pass it
        rows = np.flatnonzero((mass >= tau) & (mass > 0))
        carried = mass[rows, None] * maps[level][rows]  # [from, to]
        index, to_pos = np.nonzero((carried >= tau) & (carried > 0))
        edges.append(np.column_stack([np.full(len(to_pos), level), rows[index], to_pos, carried[index, to_pos]]))
        mass = mass @ maps[level]
    return (np.concatenate(edges).astype(np.float64) if edges else np.zeros((0, 4))), mass

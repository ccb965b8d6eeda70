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
    maps = attn[:, selected].mean(axis=1)
    if residual:
        maps = 0.5 * maps + 0.5 * np.eye(maps.shape[-1])
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
    mass = np.zeros(length)
    mass[source] = 1.0
    edges = []
    for level in range(layer, -1, -1):
        carried = mass[:, None] * maps[level]  # [from, to]
        from_pos, to_pos = np.nonzero((carried >= tau) & (carried > 0))
        edges.append(np.column_stack([np.full(len(from_pos), level), from_pos, to_pos, carried[from_pos, to_pos]]))
        mass = carried.sum(axis=0)
    return np.concatenate(edges).astype(np.float64) if edges else np.zeros((0, 4))

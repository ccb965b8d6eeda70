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

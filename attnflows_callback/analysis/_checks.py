"""Shared argument checks for the analysis functions: one place for every shape, NaN and index message."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

ATTENTION_SHAPE = "[layers, heads, query tokens, key tokens]"
ROW_SUM_TOLERANCE = 1e-3
# Stored attention is quantised (up to 2e-3 per weight, so a row may sum to 1 + Tk * 2e-3),
# and reduced runs keep only each row's top k (rows sum to less than 1): rows may sum to
# anything in [0, 1 + tolerance], never more.
QUANTISATION_ERROR = 2e-3


def attention(value, name: str = "attn", *, square: bool = False) -> np.ndarray:
    """``value`` as a float64 ``[L, H, Tq, Tk]`` array of non-negative rows summing to at most 1 (within quantisation), or a ValueError naming ``name``."""
    array = np.asarray(value)
    if array.ndim != 4:
        raise ValueError(f"{name} must be a 4-d array {ATTENTION_SHAPE}, got shape {array.shape}")
    if min(array.shape) == 0:
        raise ValueError(f"{name} must have at least one layer, head and token, got shape {array.shape}")
    if square and array.shape[2] != array.shape[3]:
        raise ValueError(
            f"{name} must be self-attention with as many query as key tokens {ATTENTION_SHAPE}, got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64, copy=False)
    row_sums = array.sum(axis=-1)  # a NaN or inf weight makes its row's sum NaN or inf: two passes, not four
    if not np.isfinite(row_sums).all() and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0].tolist()
        raise ValueError(f"{name} must be finite, got NaN or inf at index {bad} of shape {array.shape}")
    if array.min() < 0:
        bad = np.argwhere(array < 0)[0].tolist()
        raise ValueError(f"{name} must be non-negative attention weights, got {array[tuple(bad)]:.3g} at index {bad}")
    limit = 1.0 + max(ROW_SUM_TOLERANCE, QUANTISATION_ERROR * array.shape[-1])
    if row_sums.max() > limit:
        bad = np.unravel_index(row_sums.argmax(), row_sums.shape)
        raise ValueError(
            f"{name} rows must sum to at most 1 (softmax attention, possibly quantised or top-k), "
            f"got {row_sums[bad]:.6g} for row {list(map(int, bad))}"
        )
    return array


def same_shape(first: np.ndarray, second: np.ndarray, names: tuple[str, str] = ("a", "b")) -> None:
    """Raise a ValueError when two attention arrays cannot be compared head by head."""
    if first.shape != second.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {first.shape} and {second.shape}")


def head_indices(heads: Iterable[int] | None, n_heads: int) -> np.ndarray:
    """The selected head indices as an int array; ``None`` selects all ``n_heads``."""
    if heads is None:
        return np.arange(n_heads)
    if isinstance(heads, (int, np.integer)):
        raise ValueError(f"heads must be an iterable of head indices or None, got the single integer {heads}")
    selected = np.asarray(list(heads))
    if selected.size == 0:
        raise ValueError("heads must name at least one head, got an empty selection")
    if not np.issubdtype(selected.dtype, np.integer):
        raise ValueError(f"heads must be integer head indices, got {selected.tolist()}")
    if selected.min() < 0 or selected.max() >= n_heads:
        raise ValueError(f"heads must lie in [0, {n_heads - 1}], got {selected.tolist()}")
    return selected


def heads_of(attn: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``attn[:, indices]`` (``[L, Hs, T, T]``), a view rather than a copy when ``indices`` is one head or
    every head in order (a stored head mean, the default selection: no copy of a long example's heads)."""
    if indices.size == 1:
        return attn[:, int(indices[0]) : int(indices[0]) + 1]
    if indices.size == attn.shape[1] and (indices == np.arange(attn.shape[1])).all():
        return attn
    return attn[:, indices]


def position(value, name: str, size: int) -> int:
    """``value`` as an index in ``[0, size)``, or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in [0, {size - 1}], got {value!r}")
    if not 0 <= value < size:
        raise ValueError(f"{name} must be an integer in [0, {size - 1}], got {value}")
    return int(value)


def probability(value, name: str) -> float:
    """``value`` as a float in [0, 1], or a ValueError naming ``name``."""
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return number

"""How attention changes: between two snapshots, along a timeline of stored summaries, and in the
probe predictions.

Two snapshots can be any pair: a step and the pre-trained snapshot, two steps of one run, or the
same step of two runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _checks

CHANGE_MEASURES = ("js", "cosine")
"""Per-head measures in :func:`head_change`; :func:`most_changed_heads` ranks by one of them."""


def head_js_divergence(a, b) -> np.ndarray:
    """Mean row-wise Jensen-Shannon divergence per head, natural log (Clark et al. 2019, section 6).

    ``JS[l, h] = mean_i ( KL(p_i || m_i) + KL(q_i || m_i) ) / 2`` with ``p_i = a[l, h, i]``,
    ``q_i = b[l, h, i]`` and ``m_i = (p_i + q_i) / 2``; symmetric, 0 for equal inputs, at most ``ln 2``.

    Args:
        a: ``[L, H, Tq, Tk]`` attention; rows sum to 1.
        b: attention of the same shape.

    Returns:
        float64 ``[L, H]`` in ``[0, ln 2]``.

    Raises:
        ValueError: either array is not attention (shape, NaN, rows) or the shapes differ.

    Example:
        >>> import numpy as np
        >>> a = np.zeros((1, 1, 1, 2)); a[..., 0] = 1
        >>> b = np.zeros((1, 1, 1, 2)); b[..., 1] = 1
        >>> head_js_divergence(a, b).round(4).tolist()   # disjoint rows: ln 2
        [[0.6931]]
    """
    from scipy.special import rel_entr  # on first use: scipy.special takes 0.7 s to import, and the plugin
                                        # imports this module for the prediction flips of /probe

    first, second = _pair(a, b)
    middle = 0.5 * (first + second)
    divergence = 0.5 * (rel_entr(first, middle).sum(axis=-1) + rel_entr(second, middle).sum(axis=-1))
    return np.clip(divergence.mean(axis=-1), 0.0, np.log(2.0))


def head_cosine_similarity(a, b) -> np.ndarray:
    """Cosine similarity of each head's flattened attention maps (Kovaleva et al. 2019, section 4.5).

    ``cos[l, h] = <vec a[l, h], vec b[l, h]> / (||vec a[l, h]|| ||vec b[l, h]||)``; 1 when unchanged.

    Args:
        a: ``[L, H, Tq, Tk]`` attention; rows sum to 1.
        b: attention of the same shape.

    Returns:
        float64 ``[L, H]`` in ``[0, 1]`` (attention is non-negative).

    Raises:
        ValueError: either array is not attention (shape, NaN, rows) or the shapes differ.

    Example:
        >>> import numpy as np
        >>> a = np.zeros((1, 1, 2, 2)); a[0, 0] = np.eye(2)
        >>> head_cosine_similarity(a, np.full((1, 1, 2, 2), 0.5)).round(4).tolist()
        [[0.7071]]
    """
    first, second = _pair(a, b)
    dot = (first * second).sum(axis=(-2, -1))
    norms = np.sqrt((first**2).sum(axis=(-2, -1)) * (second**2).sum(axis=(-2, -1)))
    return np.clip(dot / norms, 0.0, 1.0)


def head_change(a, b) -> dict[str, np.ndarray]:
    """Per-head and per-layer change between two snapshots, averaged over probe examples.

    Per head: ``js`` (:func:`head_js_divergence`) and ``cosine`` (:func:`head_cosine_similarity`),
    each the mean over examples. Per layer, over heads: ``layer_js`` (mean), ``layer_js_max``,
    ``layer_cosine`` (mean) and ``layer_cosine_min``.

    Args:
        a: ``[L, H, Tq, Tk]`` attention of one example, or a sequence of them (one per probe
            example; lengths may differ between examples).
        b: the same examples in the other snapshot, shape for shape.

    Returns:
        ``{"js", "cosine"}`` -> float64 ``[L, H]`` and ``{"layer_js", "layer_js_max",
        "layer_cosine", "layer_cosine_min"}`` -> float64 ``[L]``.

    Raises:
        ValueError: bad attention, shapes that differ, or example counts that differ.

    Example:
        >>> import numpy as np
        >>> a = np.full((2, 3, 4, 4), 0.25)
        >>> change = head_change(a, a)
        >>> change["js"].shape, float(change["layer_cosine"][0])
        ((2, 3), 1.0)
    """
    first, second = _examples(a, "a"), _examples(b, "b")
    if len(first) != len(second):
        raise ValueError(f"a and b must hold the same number of examples, got {len(first)} and {len(second)}")
    js = np.mean([head_js_divergence(x, y) for x, y in zip(first, second)], axis=0)
    cosine = np.mean([head_cosine_similarity(x, y) for x, y in zip(first, second)], axis=0)
    return {
        "js": js,
        "cosine": cosine,
        "layer_js": js.mean(axis=1),
        "layer_js_max": js.max(axis=1),
        "layer_cosine": cosine.mean(axis=1),
        "layer_cosine_min": cosine.min(axis=1),
    }


def most_changed_heads(change: dict[str, np.ndarray], k: int, *, by: str = "js") -> list[tuple[int, int, float]]:
    """The ``k`` heads that changed most, most changed first.

    The score is ``js`` itself or ``1 - cosine``; ties keep (layer, head) order.

    Args:
        change: a dict from :func:`head_change` (or any dict with ``[L, H]`` ``"js"`` / ``"cosine"``).
        k: how many heads; at most ``L * H`` are returned.
        by: ``"js"`` or ``"cosine"``.

    Returns:
        ``[(layer, head, score), ...]``.

    Raises:
        ValueError: ``k < 1``, unknown ``by``, or ``change`` lacks that ``[L, H]`` entry.

    Example:
        >>> import numpy as np
        >>> most_changed_heads({"js": np.array([[0.1, 0.3], [0.2, 0.0]])}, 2)
        [(0, 1, 0.3), (1, 0, 0.2)]
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if by not in CHANGE_MEASURES:
        raise ValueError(f"by must be one of {list(CHANGE_MEASURES)}, got {by!r}")
    if by not in change:
        raise ValueError(f"change must hold a {by!r} entry from head_change, got keys {sorted(change)}")
    values = np.asarray(change[by], dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"change[{by!r}] must be [layers, heads], got shape {values.shape}")
    score = values if by == "js" else 1.0 - values
    order = np.argsort(-score, axis=None, kind="stable")[:k]
    layers, heads = np.unravel_index(order, score.shape)
    return [(int(l), int(h), float(score[l, h])) for l, h in zip(layers, heads)]


def summary_timeline_change(values) -> dict[str, np.ndarray]:
    """Per-step change from stored per-snapshot summaries, without reading any attention.

    Takes the ``values`` of ``Run.summary_timeline(metric)`` (``open_run``) for a change metric such as
    ``js_from_start`` or ``cosine_from_start`` and averages over examples, ignoring NaN (examples
    or steps where the metric was not stored).

    Args:
        values: ``[steps, examples, L, H]``.

    Returns:
        ``{"head": [steps, L, H], "layer": [steps, L], "overall": [steps]}``, NaN where nothing was stored.

    Raises:
        ValueError: ``values`` is not 4-d.

    Example:
        >>> import numpy as np
        >>> values = np.array([[[[0.0, 0.2]]], [[[np.nan, np.nan]]]])   # 2 steps, 1 example, 1 layer, 2 heads
        >>> summary_timeline_change(values)["layer"].tolist()
        [[0.1], [nan]]
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 4:
        raise ValueError(f"values must be [steps, examples, layers, heads], got shape {values.shape}")
    head = _nanmean(values, axis=1)
    return {"head": head, "layer": _nanmean(head, axis=2), "overall": _nanmean(head, axis=(1, 2))}


def prediction_flips(steps: Sequence[int], predictions) -> list[list[int]]:
    """For each probe example, the snapshot steps at which its predicted label changed.

    A flip at ``steps[s]`` means ``label[s] != label[s - 1]``; labels are ``predictions`` or,
    for logits, their argmax over the last axis.

    Args:
        steps: ``S`` snapshot steps, strictly increasing.
        predictions: int ``[S, N]`` labels or float ``[S, N, C]`` logits for ``N`` examples.

    Returns:
        ``N`` lists of steps (empty when the example never flipped).

    Raises:
        ValueError: steps not strictly increasing, or ``predictions`` not ``[S, N]`` / ``[S, N, C]``,
            or holding NaN.

    Example:
        >>> prediction_flips([0, 10, 20], [[0, 1], [1, 1], [0, 1]])
        [[10, 20], []]
    """
    steps = np.asarray(steps)
    if steps.ndim != 1 or (steps.size > 1 and not (np.diff(steps) > 0).all()):
        raise ValueError(f"steps must be a 1-d strictly increasing sequence, got {steps.tolist()}")
    values = np.asarray(predictions)
    if values.ndim not in (2, 3) or values.shape[0] != steps.size:
        raise ValueError(
            f"predictions must be [steps ({steps.size}), examples] labels or [steps, examples, classes] logits, "
            f"got shape {values.shape}"
        )
    if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
        raise ValueError("predictions must be finite, got NaN or inf")
    labels = values.argmax(axis=-1) if values.ndim == 3 else values
    changed = labels[1:] != labels[:-1]
    return [steps[1:][changed[:, example]].tolist() for example in range(labels.shape[1])]


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    first = _checks.attention(a, "a")
    second = _checks.attention(b, "b")
    _checks.same_shape(first, second)
    return first, second


def _examples(value, name: str) -> list:
    if isinstance(value, np.ndarray) and value.ndim == 4:
        return [value]
    if isinstance(value, (list, tuple)) and value:
        return list(value)
    raise ValueError(f"{name} must be one [L, H, Tq, Tk] array or a non-empty sequence of them, got {type(value).__name__}")


def _nanmean(values: np.ndarray, axis) -> np.ndarray:
    present = ~np.isnan(values)
    count = present.sum(axis=axis)
    total = np.where(present, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)

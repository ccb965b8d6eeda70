"""Explain a change of one example between two snapshots: which heads moved, which trace edges came
and went, and how the classification token's influence on each word shifted.

The pure part of ``attnflows explain`` (the adapter that reads a run is
:mod:`attnflows_callback.explain`). Three measures, each from an existing one:

- heads ranked by :func:`~.change.head_js_divergence` between the two snapshots' *raw* attention
  of this example (the model's change, not the view's);
- edges gained and lost: :func:`~.trace.compare_trace` from ``source`` (label ``"second"`` =
  gained, ``"first"`` = lost), on the view's attention when ``keep`` is given;
- influence per word: the ``source`` row of the residual :func:`~.rollout.rollout` at the top
  layer, on the view's attention, summed over each word's pieces (:func:`~.metrics.word_units`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from . import _checks
from .change import head_js_divergence
from .metrics import word_units
from .rollout import rollout
from .trace import ComparisonTrace, compare_trace
from .view import drop_targets


@dataclass(frozen=True)
class ChangeExplanation:
    """What changed for one example between two snapshots.

    Attributes:
        head_js: float64 ``[L, H]``: JS divergence of each head's attention, before vs after.
        ranked_heads: ``[(layer, head, js), ...]``, most changed first (ties in (layer, head) order).
        comparison: the :class:`~.trace.ComparisonTrace` (before = ``first``, after = ``second``).
        units: the word units (token positions per word) the influence is summed over.
        influence_before, influence_after: float64 ``[W]``: rollout mass of ``source`` per word.
    """

    head_js: np.ndarray
    ranked_heads: list[tuple[int, int, float]]
    comparison: ComparisonTrace
    units: list[np.ndarray]
    influence_before: np.ndarray
    influence_after: np.ndarray

    @property
    def influence_change(self) -> np.ndarray:
        """``influence_after - influence_before`` per word."""
        return self.influence_after - self.influence_before

    @property
    def edges_gained(self) -> np.ndarray:
        """Comparison edges only in the trace after the change."""
        return self.comparison.edges[self.comparison.labels == "second"]

    @property
    def edges_lost(self) -> np.ndarray:
        """Comparison edges only in the trace before the change."""
        return self.comparison.edges[self.comparison.labels == "first"]


def explain_change(
    attn_before,
    attn_after,
    *,
    source: int = 0,
    tau: float = 0.1,
    mode: str = "mean",
    heads: Iterable[int] | None = None,
    keep=None,
    word_ids: Sequence[int | None] | None = None,
) -> ChangeExplanation:
    """Heads, trace edges and per-word influence that changed for one example (see the module docstring).

    Args:
        attn_before: ``[L, H, T, T]`` attention of the example at the earlier snapshot.
        attn_after: the same example at the later snapshot.
        source: position the trace and the rollout row start from (0 for [CLS]).
        tau, mode, heads: as in :func:`~.trace.trace`, for the edge comparison.
        keep: bool ``[T]`` view mask (:func:`~.view.keep_mask`), or None for raw attention.
        word_ids: ``T`` word ids to sum the influence per word, or None for one unit per token.

    Returns:
        a :class:`ChangeExplanation`.

    Raises:
        ValueError: bad attention, shapes that differ, or bad ``source``, ``tau``, ``mode``, ``heads``, ``keep``.

    Example:
        >>> import numpy as np
        >>> before = np.zeros((1, 2, 3, 3)); before[0, :, :, 0] = 1.0      # both heads park on [CLS]
        >>> after = before.copy(); after[0, 1] = 0; after[0, 1, :, 2] = 1.0  # head 1 moves to token 2
        >>> result = explain_change(before, after, tau=0.4)
        >>> result.ranked_heads[0][:2], result.edges_gained["to_pos"].tolist(), result.edges_lost.size
        ((0, 1), [2], 0)
        >>> result.influence_change.round(3).tolist()
        [-0.25, 0.0, 0.25]
    """
    before = _checks.attention(attn_before, "attn_before", square=True)
    after = _checks.attention(attn_after, "attn_after", square=True)
    _checks.same_shape(before, after, ("attn_before", "attn_after"))
    n_layers, n_heads, n_tokens, _ = before.shape
    source = _checks.position(source, "source", n_tokens)
    head_js = head_js_divergence(before, after)
    order = np.argsort(-head_js, axis=None, kind="stable")
    layers, head_index = np.unravel_index(order, head_js.shape)
    ranked = [(int(l), int(h), float(head_js[l, h])) for l, h in zip(layers, head_index)]
    if keep is not None:
        before, after = drop_targets(before, keep), drop_targets(after, keep)
    comparison = compare_trace(before, after, source=source, tau=tau, heads=heads, mode=mode)
    if word_ids is None:
        units = [np.array([position]) for position in range(n_tokens)]
    else:
        word_ids = list(word_ids)
        if len(word_ids) != n_tokens:
            raise ValueError(f"word_ids must hold one id per token ({n_tokens}), got {len(word_ids)}")
        units = word_units(word_ids)
    membership = np.zeros((n_tokens, len(units)))
    for index, unit in enumerate(units):
        membership[unit, index] = 1.0
    rows = [rollout(attn, heads=heads)[-1][source] @ membership for attn in (before, after)]
    return ChangeExplanation(
        head_js=head_js,
        ranked_heads=ranked,
        comparison=comparison,
        units=units,
        influence_before=rows[0],
        influence_after=rows[1],
    )

"""Across the probe set: head change and token influence aggregated over a selection of examples.

Examples have different lengths, so token positions do not line up across examples: position 5
is a different word in every sentence. The aggregates here are therefore over things every
example has:

- per head (``[L, H]``): the mean over the selected examples of each example's change
  (:func:`mean_over_examples` of per-example JS or cosine values);
- per token role (special, punctuation, content; :func:`~.view.token_roles`): the mean over the
  selected examples of the influence mass on each role (:func:`influence_by_role`);
- per word string: the mean influence of each word over its occurrences in the selection
  (:func:`influence_by_word`), e.g. "not" across every negated sentence.

A selection (:data:`SELECTIONS`) is all examples, one true class, or the examples whose predicted
label differs between the two compared snapshots (:func:`select_examples`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .view import TOKEN_ROLES

SELECTIONS = ("all", "class:<k>", "flipped")
"""Selection strings :func:`select_examples` accepts (``class:1`` selects the examples labelled 1)."""


def select_examples(selection: str, *, num_examples: int, labels=None, predictions_before=None,
                    predictions_after=None) -> np.ndarray:
    """Indices of the examples a selection names, sorted.

    - ``"all"``: every example;
    - ``"class:K"``: the examples whose true label is ``K`` (needs ``labels``);
    - ``"flipped"``: the examples whose predicted label differs between the two compared
      snapshots, ``predictions_before[i] != predictions_after[i]`` (needs both).

    Args:
        selection: one of :data:`SELECTIONS`.
        num_examples: how many probe examples there are.
        labels: ``[N]`` true labels, or None.
        predictions_before, predictions_after: ``[N]`` predicted labels at the two snapshots, or None.

    Returns:
        int ``[n]`` indices (possibly empty: a class or flip set may be empty).

    Raises:
        ValueError: an unknown selection, or one whose data is missing or of the wrong length.

    Example:
        >>> before, after = [0, 1, 1], [1, 1, 0]
        >>> select_examples("flipped", num_examples=3, predictions_before=before, predictions_after=after).tolist()
        [0, 2]
        >>> select_examples("class:1", num_examples=3, labels=[0, 1, 1]).tolist()
        [1, 2]
    """
    if isinstance(num_examples, bool) or not isinstance(num_examples, (int, np.integer)) or num_examples < 1:
        raise ValueError(f"num_examples must be a positive integer, got {num_examples!r}")
    if selection == "all":
        return np.arange(num_examples)
    if selection == "flipped":
        if predictions_before is None or predictions_after is None:
            raise ValueError("selection 'flipped' needs predictions at both snapshots; the run has no classifier "
                             "predictions, so select 'all' or 'class:K'")
        before = _labels(predictions_before, "predictions_before", num_examples)
        after = _labels(predictions_after, "predictions_after", num_examples)
        return np.flatnonzero(before != after)
    if isinstance(selection, str) and selection.startswith("class:"):
        try:
            wanted = int(selection[len("class:"):])
        except ValueError:
            raise ValueError(f"selection 'class:K' needs an integer class K, got {selection!r}") from None
        if labels is None:
            raise ValueError("selection 'class:K' needs the probe's labels; this probe set has none, so select 'all'")
        return np.flatnonzero(_labels(labels, "labels", num_examples) == wanted)
    raise ValueError(f"selection must be one of {list(SELECTIONS)}, got {selection!r}")


def mean_over_examples(values, indices) -> dict[str, np.ndarray | int]:
    """Mean, standard deviation and count of per-example ``[L, H]`` values over the selected examples.

    ``mean[l, h] = (1 / n) sum_{i in indices} values[i, l, h]``; NaN entries (not stored) are left out.

    Args:
        values: ``[N, L, H]`` per-example values (e.g. ``Run.summary_timeline("js_from_start")[1][s]``,
            or per-example :func:`~.change.head_js_divergence`).
        indices: the selected example indices (:func:`select_examples`).

    Returns:
        ``{"mean": [L, H], "std": [L, H], "count": n}``.

    Raises:
        ValueError: ``values`` is not 3-d, or the selection is empty or out of range.

    Example:
        >>> import numpy as np
        >>> values = np.array([[[0.1]], [[0.3]], [[0.9]]])
        >>> result = mean_over_examples(values, [0, 1])
        >>> round(float(result["mean"][0, 0]), 3), result["count"]
        (0.2, 2)
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3:
        raise ValueError(f"values must be [examples, layers, heads], got shape {values.shape}")
    chosen = _indices(indices, values.shape[0])
    subset = values[chosen]
    with np.errstate(invalid="ignore"):
        present = ~np.isnan(subset)
        count = present.sum(axis=0)
        mean = np.where(count > 0, np.nansum(subset, axis=0) / np.maximum(count, 1), np.nan)
        spread = np.where(count > 0, np.sqrt(np.nansum((subset - mean) ** 2, axis=0) / np.maximum(count, 1)), np.nan)
    return {"mean": mean, "std": spread, "count": int(chosen.size)}


def influence_by_role(influence: Sequence, roles: Sequence[Sequence[str]], indices) -> dict[str, float | int]:
    """Mean over the selected examples of the influence mass on each token role.

    For each selected example ``i`` with influence ``m_i`` over its ``T_i`` tokens:
    ``mass_i(role) = sum_{j: role_i[j] = role} m_i[j]``, then ``mean_i mass_i(role)``; also the mean
    ``content_share`` (content over the example's total, :func:`~.view.mass_by_role`).

    Args:
        influence: ``N`` vectors, ``[T_i]`` each (a rollout row, a trace influence).
        roles: ``N`` role lists from :func:`~.view.token_roles`.
        indices: the selected example indices.

    Returns:
        ``{"special", "punctuation", "content", "content_share"}`` -> float, and ``"count"``.

    Raises:
        ValueError: lengths that differ, an empty selection, or bad values.

    Example:
        >>> roles = [["special", "content"], ["special", "content", "content"]]
        >>> result = influence_by_role([[0.6, 0.4], [0.2, 0.5, 0.3]], roles, [0, 1])
        >>> {key: round(value, 3) for key, value in result.items()}
        {'special': 0.4, 'punctuation': 0.0, 'content': 0.6, 'content_share': 0.6, 'count': 2}
    """
    numbered = roles if isinstance(roles, NumberedLabels) else number_labels(roles, TOKEN_ROLES, "roles")
    chosen = _indices(indices, _same_count(influence, numbered.sizes))
    values, example_of = _rows(influence, numbered.sizes, chosen, "one value per token")
    role_of = numbered.of(chosen)
    if not np.isfinite(values).all() or (values.size and values.min() < 0):
        raise ValueError("influence must be finite and non-negative")
    # one pass over every token of every example: mass[e, r] = the mass example e puts on role r (mass_by_role)
    mass = np.bincount(example_of * len(TOKEN_ROLES) + role_of, weights=values,
                       minlength=chosen.size * len(TOKEN_ROLES)).reshape(chosen.size, len(TOKEN_ROLES))
    total = mass.sum(axis=1)
    content = mass[:, TOKEN_ROLES.index("content")]
    share = np.divide(content, total, out=np.zeros_like(total), where=total > 0)
    result: dict[str, float | int] = {role: float(mass[:, k].mean()) for k, role in enumerate(TOKEN_ROLES)}
    result["content_share"] = float(share.mean())
    result["count"] = int(chosen.size)
    return result


def influence_by_word(influence: Sequence, words: Sequence[Sequence[str]], indices) -> dict[str, dict]:
    """Mean influence of each word string over its occurrences in the selected examples.

    ``mean(w) = (1 / n_w) sum_{(i, j): words_i[j] = w} m_i[j]`` over selected examples ``i``, with
    ``n_w`` the number of occurrences. Compare a word's mean at two snapshots only over the
    same selection.

    Args:
        influence: ``N`` vectors ``[W_i]`` of influence per word unit (pieces already summed).
        words: ``N`` lists of ``W_i`` word strings (e.g. lower-cased merged pieces).
        indices: the selected example indices.

    Returns:
        ``{word: {"mean": float, "count": int}}``.

    Raises:
        ValueError: lengths that differ or an empty selection.

    Example:
        >>> result = influence_by_word([[0.5, 0.1], [0.3, 0.2]], [["[CLS]", "not"], ["[CLS]", "not"]], [0, 1])
        >>> round(result["not"]["mean"], 3), result["not"]["count"]
        (0.15, 2)
    """
    numbered = words if isinstance(words, NumberedLabels) else number_labels(words)
    chosen = _indices(indices, _same_count(influence, numbered.sizes))
    values, _ = _rows(influence, numbered.sizes, chosen, "one value per word")
    which = numbered.of(chosen)
    sums = np.bincount(which, weights=values, minlength=len(numbered.names))
    counts = np.bincount(which, minlength=len(numbered.names))
    return {word: {"mean": float(sums[k] / counts[k]), "count": int(counts[k])}
            for k, word in enumerate(numbered.names) if counts[k]}


@dataclass(frozen=True, eq=False)
class NumberedLabels:
    """Every position's label in ``N`` examples, numbered once so that each snapshot's sums are a ``bincount``
    (the labels of a probe set's examples are the same at every step): ``codes`` holds each position's label
    number, the examples end to end, ``sizes`` how many positions each example has, ``names[k]`` label ``k``."""

    codes: np.ndarray
    sizes: np.ndarray
    names: tuple[str, ...]

    def of(self, chosen: np.ndarray) -> np.ndarray:
        """The codes of the ``chosen`` examples, end to end."""
        if chosen.size == self.sizes.size and (chosen == np.arange(chosen.size)).all():
            return self.codes
        starts = np.concatenate([[0], np.cumsum(self.sizes)])
        return np.concatenate([self.codes[starts[i]:starts[i + 1]] for i in chosen])


def number_labels(labels: Sequence[Sequence[str]], names: Sequence[str] | None = None,
                  what: str = "labels") -> NumberedLabels:
    """Number ``labels`` (``N`` lists of strings) for :func:`influence_by_role` and :func:`influence_by_word`.

    Args:
        labels: each example's labels, one per position.
        names: the allowed labels in order (e.g. :data:`~.view.TOKEN_ROLES`); None: every distinct label,
            numbered in order of first occurrence.
        what: the argument's name in errors.

    Raises:
        ValueError: a label outside ``names``.

    Example:
        >>> numbered = number_labels([["not", "bad"], ["not"]])
        >>> numbered.codes.tolist(), numbered.sizes.tolist(), numbered.names
        ([0, 1, 0], [2, 1], ('not', 'bad'))
    """
    number: dict[str, int] = {str(name): k for k, name in enumerate(names or ())}
    sizes = np.fromiter((len(example) for example in labels), dtype=np.int64, count=len(labels))
    if names is None:
        codes = np.fromiter((number.setdefault(str(label), len(number)) for example in labels for label in example),
                            dtype=np.int64, count=int(sizes.sum()))
    else:
        try:
            codes = np.fromiter((number[label] for example in labels for label in example), dtype=np.int64,
                                count=int(sizes.sum()))
        except KeyError as err:
            raise ValueError(f"{what} must be among {list(names)}, got {err.args[0]!r}") from None
    return NumberedLabels(codes, sizes, tuple(number))


def _rows(influence: Sequence, sizes: np.ndarray, chosen: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The chosen examples' vectors end to end (float64), and which of the chosen each value belongs to."""
    rows = []
    for i in chosen:
        row = np.asarray(influence[i], dtype=np.float64)
        if row.ndim != 1 or row.size != sizes[i]:
            raise ValueError(f"influence[{i}] must hold {what} ({sizes[i]}), got shape {row.shape}")
        rows.append(row)
    return np.concatenate(rows), np.repeat(np.arange(len(rows)), [row.size for row in rows])


def _labels(values, name: str, count: int) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (count,):
        raise ValueError(f"{name} must hold one label per example ({count}), got shape {array.shape}")
    return array


def _same_count(first: Sequence, second: Sequence) -> int:
    if len(first) != len(second):
        raise ValueError(f"one entry per example is needed in both lists, got {len(first)} and {len(second)}")
    return len(first)


def _indices(indices, count: int) -> np.ndarray:
    chosen = np.asarray(list(indices), dtype=np.int64)
    if chosen.size == 0:
        raise ValueError("the selection holds no examples; choose another class, or 'all'")
    if chosen.min() < 0 or chosen.max() >= count:
        raise ValueError(f"indices must lie in [0, {count - 1}], got {chosen.tolist()}")
    return chosen

"""Per-head attention metrics for one example: entropy, where heads look (Clark et al. 2019),
pattern classes (Kovaleva et al. 2019), and merging word pieces into words.

To summarise many probe examples, compute a metric per example and average over examples
(``np.mean(np.stack([...]), axis=0)``); each example may have its own length.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Sequence

import numpy as np

from . import _checks

SEP_TOKENS = ("[SEP]", "</s>", "<eos>", "[EOS]", "<|endoftext|>", "<|eot_id|>")
"""Token strings counted as separator / end-of-sequence by :func:`head_metrics`."""

PUNCTUATION = frozenset(string.punctuation) | frozenset("“”‘’«»…–—")
"""Characters that make a token punctuation when the token holds nothing else."""

_SUBWORD_MARKERS = ("##", "Ġ", "▁", "Ċ")

METRIC_NAMES = (
    "entropy",
    "cls",
    "sep",
    "punctuation",
    "self",
    "previous",
    "next",
    "distance",
    "confidence",
)
"""Keys of the dict returned by :func:`head_metrics`, in order."""

PATTERN_CLASSES = ("vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous")
"""Kovaleva et al. (2019) attention pattern classes; :func:`pattern_class` returns indices into this."""

PATTERN_THRESHOLDS = {
    "vertical": 0.5,
    "diagonal": 0.5,
    "mixed_each": 0.3,
    "mixed_total": 0.6,
    "block": 0.6,
}
"""Thresholds of the rules in :func:`pattern_class` (see docs/analysis.md)."""


def uniform_entropy(n_keys: int) -> float:
    """Entropy of uniform attention over ``n_keys`` keys, ``ln(n_keys)`` nats: the ceiling for :func:`head_entropy`.

    Example:
        >>> round(uniform_entropy(4), 4)
        1.3863
    """
    if isinstance(n_keys, bool) or not isinstance(n_keys, (int, np.integer)) or n_keys < 1:
        raise ValueError(f"n_keys must be a positive integer, got {n_keys!r}")
    return float(np.log(n_keys))


def head_entropy(attn) -> np.ndarray:
    """Mean entropy of each head's attention rows, in nats (Clark et al. 2019, section 3).

    ``H[l, h] = mean_i ( -sum_j A[l, h, i, j] * ln A[l, h, i, j] )``, with ``0 ln 0 = 0``.
    Uniform attention over ``Tk`` keys gives :func:`uniform_entropy` ``(Tk) = ln Tk``.

    Args:
        attn: ``[L, H, Tq, Tk]`` attention of one example; rows sum to 1.

    Returns:
        float64 ``[L, H]`` in ``[0, ln Tk]``.

    Raises:
        ValueError: ``attn`` is not 4-d, holds NaN or negative values, or its rows do not sum to 1.

    Example:
        >>> import numpy as np
        >>> attn = np.full((1, 1, 2, 4), 0.25)
        >>> head_entropy(attn).round(4).tolist()
        [[1.3863]]
    """
    return _row_entropy(_checks.attention(attn)).mean(axis=-1)


def _row_entropy(attn: np.ndarray) -> np.ndarray:
    """``-sum_j A ln A`` of each row of checked (non-negative float64) attention, with ``0 ln 0 = 0``."""
    logs = np.log(attn, out=np.zeros_like(attn), where=attn > 0)
    logs *= attn
    return -logs.sum(axis=-1)


def head_metrics(
    attn,
    tokens: Sequence[str],
    *,
    cls_index: int = 0,
    sep_tokens: Sequence[str] = SEP_TOKENS,
    punctuation: frozenset[str] | str = PUNCTUATION,
) -> dict[str, np.ndarray]:
    """Where each head looks, for one example (Clark et al. 2019, "What Does BERT Look At?").

    Every value is a mean over query rows ``i`` of the attention matrix ``A = attn[l, h]``:

    - ``entropy``: ``-sum_j A[i, j] ln A[i, j]`` (see :func:`head_entropy`);
    - ``cls``: ``A[i, cls_index]``;
    - ``sep``: ``sum_{j: tokens[j] in sep_tokens} A[i, j]``;
    - ``punctuation``: ``sum_{j: tokens[j] is punctuation} A[i, j]``;
    - ``self``: ``A[i, i]``; ``previous``: ``A[i, i-1]`` over ``i >= 1``; ``next``: ``A[i, i+1]`` over ``i <= T-2``;
    - ``distance``: ``sum_j A[i, j] |i - j|``, the mean attention distance in tokens;
    - ``confidence``: ``max_j A[i, j]`` (Voita et al. 2019, "Analyzing Multi-Head Self-Attention").

    A token is punctuation when, stripped of sub-word markers (``##``, ``Ġ``, ``▁``), it is
    non-empty and made only of ``punctuation`` characters.

    Args:
        attn: ``[L, H, T, T]`` self-attention of one example; rows sum to 1.
        tokens: the ``T`` token strings.
        cls_index: position of the classification token.
        sep_tokens: token strings that count as separator or end-of-sequence.
        punctuation: characters that count as punctuation.

    Returns:
        ``{name: float64 [L, H]}`` for each name in :data:`METRIC_NAMES`. ``previous`` and
        ``next`` are 0 for a single token.

    Raises:
        ValueError: bad ``attn``, ``len(tokens) != T`` or ``cls_index`` out of range.

    Example:
        >>> import numpy as np
        >>> attn = np.zeros((1, 1, 3, 3)); attn[0, 0, :, 0] = 1.0
        >>> metrics = head_metrics(attn, ["[CLS]", "hi", "[SEP]"])
        >>> float(metrics["cls"][0, 0]), float(metrics["sep"][0, 0]), float(metrics["distance"][0, 0])
        (1.0, 0.0, 1.0)
    """
    attn = _checks.attention(attn, square=True)
    n_tokens = attn.shape[-1]
    tokens = list(tokens)
    if len(tokens) != n_tokens:
        raise ValueError(f"tokens must hold one string per position ({n_tokens}), got {len(tokens)}")
    cls_index = _checks.position(cls_index, "cls_index", n_tokens)
    return checked_head_metrics(attn, tokens, cls_index, sep_tokens, punctuation)


def checked_head_metrics(attn: np.ndarray, tokens: list[str], cls_index: int, sep_tokens: Sequence[str] = SEP_TOKENS,
                         punctuation: frozenset[str] | str = PUNCTUATION) -> dict[str, np.ndarray]:
    """:func:`head_metrics` of attention already checked (float32 or float64, in the input's precision).

    For a writer that holds its own softmax output: no float64 copy, no second pass of checks.
    """
    n_tokens = attn.shape[-1]
    is_sep = np.array([token in set(sep_tokens) for token in tokens])
    is_punct = np.array([_is_punctuation(token, frozenset(punctuation)) for token in tokens])
    positions = np.arange(n_tokens)
    distance = np.abs(positions[:, None] - positions[None, :]).astype(attn.dtype)
    diagonal = np.diagonal(attn, axis1=-2, axis2=-1)
    return {
        "entropy": _row_entropy(attn).mean(axis=-1),
        "cls": attn[..., cls_index].mean(axis=-1),
        "sep": attn[..., is_sep].sum(axis=-1).mean(axis=-1),
        "punctuation": attn[..., is_punct].sum(axis=-1).mean(axis=-1),
        "self": diagonal.mean(axis=-1),
        "previous": _mean_or_zero(np.diagonal(attn, offset=-1, axis1=-2, axis2=-1)),
        "next": _mean_or_zero(np.diagonal(attn, offset=1, axis1=-2, axis2=-1)),
        "distance": (attn * distance).sum(axis=-1).mean(axis=-1),
        "confidence": attn.max(axis=-1).mean(axis=-1),
    }


def pattern_scores(attn) -> dict[str, np.ndarray]:
    """The three scores :func:`pattern_class` thresholds, per head.

    - ``vertical``: share of all attention that goes to the two most-attended key positions,
      ``sum of the two largest column means`` of ``A`` (stripes on [CLS], [SEP], punctuation).
    - ``diagonal``: mean over rows of the attention within one token of the query, leaving out
      the two columns counted by ``vertical``: ``sum_{|i-j| <= 1, j not in top two} A[i, j] / T``.
    - ``block``: how much more attention stays inside contiguous segments than uniform attention
      would keep, best over splits into two segments ``[0, s)`` and ``[s, T)`` (two sentences):
      ``max_s (W(s) - U(s)) / (1 - U(s))`` with ``W(s)`` the mean within-segment mass and
      ``U(s) = (s^2 + (T-s)^2) / T^2``. 0 for fewer than 4 tokens.

    Args:
        attn: ``[L, H, T, T]`` self-attention of one example; rows sum to 1.

    Returns:
        ``{"vertical", "diagonal", "block"}`` -> float64 ``[L, H]``.

    Raises:
        ValueError: bad ``attn``.

    Example:
        >>> import numpy as np
        >>> attn = np.zeros((1, 1, 4, 4)); attn[0, 0, :, 0] = 1.0
        >>> {k: float(v[0, 0]) for k, v in pattern_scores(attn).items()}
        {'vertical': 1.0, 'diagonal': 0.0, 'block': 0.0}
    """
    return checked_pattern_scores(_checks.attention(attn, square=True))


def checked_pattern_scores(attn: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`pattern_scores` of attention already checked (float32 or float64)."""
    n_tokens = attn.shape[-1]
    column_means = attn.mean(axis=-2)
    top_columns = np.argsort(column_means, axis=-1, kind="stable")[..., -2:]
    top_two = np.take_along_axis(column_means, top_columns, axis=-1).sum(axis=-1)
    outside_top = np.ones(column_means.shape, dtype=bool)
    np.put_along_axis(outside_top, top_columns, False, axis=-1)
    # The band |i - j| <= 1 is three diagonals: read them, not the whole T x T map.
    diagonal = np.zeros(column_means.shape[:-1], dtype=attn.dtype)
    for offset in (-1, 0, 1):
        band = np.diagonal(attn, offset=offset, axis1=-2, axis2=-1)  # A[i, i + offset]
        columns = slice(max(0, offset), n_tokens + min(0, offset))
        diagonal += (band * outside_top[..., columns]).sum(axis=-1)
    diagonal /= n_tokens
    return {"vertical": top_two, "diagonal": diagonal, "block": _block_score(attn)}


def pattern_class(attn) -> np.ndarray:
    """Kovaleva et al. (2019, "Revealing the Dark Secrets of BERT") pattern class of each head, by rule.

    With the scores ``V, D, B`` of :func:`pattern_scores` and :data:`PATTERN_THRESHOLDS`, the first rule that holds wins:

    1. ``vertical+diagonal``: ``V >= 0.3`` and ``D >= 0.3`` and ``V + D >= 0.6``;
    2. ``vertical``: ``V >= 0.5``;
    3. ``diagonal``: ``D >= 0.5``;
    4. ``block``: ``B >= 0.6``;
    5. ``heterogeneous`` otherwise.

    Args:
        attn: ``[L, H, T, T]`` self-attention of one example; rows sum to 1. Very short inputs
            (a handful of tokens) make the classes overlap; use examples of 8 tokens or more.

    Returns:
        int ``[L, H]`` indices into :data:`PATTERN_CLASSES`.

    Raises:
        ValueError: bad ``attn``.

    Example:
        >>> import numpy as np
        >>> attn = np.zeros((1, 2, 8, 8)); attn[0, 0, :, 0] = 1.0; attn[0, 1] = np.eye(8)
        >>> [PATTERN_CLASSES[c] for c in pattern_class(attn)[0]]
        ['vertical', 'diagonal']
    """
    return pattern_of(pattern_scores(attn))


def pattern_of(scores: dict[str, np.ndarray]) -> np.ndarray:
    """The class indices :func:`pattern_class` gives heads with these :func:`pattern_scores`."""
    vertical, diagonal, block = scores["vertical"], scores["diagonal"], scores["block"]
    limits = PATTERN_THRESHOLDS
    rules = [
        (vertical >= limits["mixed_each"])
        & (diagonal >= limits["mixed_each"])
        & (vertical + diagonal >= limits["mixed_total"]),
        vertical >= limits["vertical"],
        diagonal >= limits["diagonal"],
        block >= limits["block"],
    ]
    order = [PATTERN_CLASSES.index(name) for name in ("vertical+diagonal", "vertical", "diagonal", "block")]
    return np.select(rules, order, default=PATTERN_CLASSES.index("heterogeneous")).astype(np.int64)


def word_units(word_ids: Sequence[int | None]) -> list[np.ndarray]:
    """Group token positions into words: maximal runs of equal word id; special tokens stay alone.

    A word id of ``None`` or a negative number marks a special token ([CLS], [SEP], padding).
    Runs rather than equal ids, because tokenizers restart word ids in the second sentence of a pair.

    Example:
        >>> [u.tolist() for u in word_units([None, 0, 0, 1, None, 0, None])]
        [[0], [1, 2], [3], [4], [5], [6]]
    """
    units: list[list[int]] = []
    previous = None
    for position, word in enumerate(word_ids):
        special = word is None or int(word) < 0
        if special or word != previous:
            units.append([position])
        else:
            units[-1].append(position)
        previous = None if special else word
    return [np.asarray(unit) for unit in units]


def merge_word_pieces(attn, word_ids: Sequence[int | None]) -> np.ndarray:
    """Word-level attention from word-piece attention (Clark et al. 2019, section 4.1).

    For words ``u, v`` with piece sets ``P_u, P_v`` (:func:`word_units`):
    ``W[u, v] = mean_{i in P_u} sum_{j in P_v} A[i, j]`` -- attention *to* a word is summed over
    its pieces, attention *from* a word is averaged over its pieces, so rows still sum to 1.

    Args:
        attn: ``[..., T, T]`` attention (e.g. ``[L, H, T, T]``) over the same ``T`` tokens.
        word_ids: ``T`` word ids from the tokenizer; ``None`` or negative for special tokens.

    Returns:
        float64 ``[..., W, W]`` with ``W`` the number of words and special tokens (float32 for float32 input).

    Raises:
        ValueError: ``attn`` is not ``[..., T, T]``, holds NaN, or ``len(word_ids) != T``.

    Example:
        >>> import numpy as np
        >>> attn = np.full((3, 3), 1 / 3)
        >>> merge_word_pieces(attn, [None, 0, 0]).round(4).tolist()
        [[0.3333, 0.6667], [0.3333, 0.6667]]
    """
    array = np.asarray(attn)
    if array.dtype != np.float32:  # float32 stays float32 (a stored head mean: half the memory traffic)
        array = array.astype(np.float64, copy=False)
    if array.ndim < 2 or array.shape[-1] != array.shape[-2]:
        raise ValueError(f"attn must be [..., T, T] self-attention, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"attn must be finite, got NaN or inf in an array of shape {array.shape}")
    word_ids = list(word_ids)
    if len(word_ids) != array.shape[-1]:
        raise ValueError(f"word_ids must hold one id per token ({array.shape[-1]}), got {len(word_ids)}")
    units = word_units(word_ids)
    starts = np.array([int(unit[0]) for unit in units])
    sizes = np.array([len(unit) for unit in units])
    # Units are runs of adjacent pieces: as fast as a product with a 0/1 membership matrix
    # (measure_long_routes.py), without its T x T x W multiply-adds, and it keeps float32 float32.
    rows = _sum_runs(array, starts, sizes, axis=-2)
    rows /= sizes[:, None]  # a query word: its pieces' mean row (in place: float32 stays float32)
    return _sum_runs(rows, starts, sizes, axis=-1)  # a key word: its pieces' weights added


def _sum_runs(array: np.ndarray, starts: np.ndarray, sizes: np.ndarray, axis: int) -> np.ndarray:
    """Along ``axis``, the sum of each run of ``sizes[u]`` positions from ``starts[u]``: each run's first
    position gathered, then its r-th added for the runs that have one (two or three passes for real text)."""
    summed = np.take(array, starts, axis=axis)
    moved, source = np.moveaxis(summed, axis, 0), np.moveaxis(array, axis, 0)  # views: the run axis first
    for r in range(1, int(sizes.max())):
        longer = np.flatnonzero(sizes > r)
        moved[longer] += source[starts[longer] + r]
    return summed


@functools.lru_cache(maxsize=2**16)  # a vocabulary's worth: views and the aggregate ask for every token of 64 examples
def _is_punctuation(token: str, punctuation: frozenset[str]) -> bool:
    stripped = token
    for marker in _SUBWORD_MARKERS:
        stripped = stripped.replace(marker, "")
    stripped = stripped.strip()
    return bool(stripped) and all(char in punctuation for char in stripped)


def _mean_or_zero(values: np.ndarray) -> np.ndarray:
    if values.shape[-1] == 0:
        return np.zeros(values.shape[:-1])
    return values.mean(axis=-1)


def _block_score(attn: np.ndarray) -> np.ndarray:
    n_tokens = attn.shape[-1]
    if n_tokens < 4:
        return np.zeros(attn.shape[:2])
    # Within-segment mass for split s: top_left(s) + bottom_right(s), where top_left(s) is the mass of
    # rows < s on columns < s. Growing s by one adds row s-1 up to the diagonal and column s-1 above it,
    # so only row and column sums are needed, not the 2-d prefix sums of the whole map.
    lower = np.tril(np.ones((n_tokens, n_tokens), dtype=attn.dtype))
    added = np.einsum("lhij,ij->lhi", attn, lower) + np.einsum("lhij,ij->lhj", attn, np.triu(lower.T, 1))

    def sums_before(values: np.ndarray) -> np.ndarray:  # [..., T] -> [..., T + 1]: sums of the first s entries
        return np.concatenate([np.zeros(values.shape[:-1] + (1,)), values.cumsum(axis=-1)], axis=-1)

    top_left_all = sums_before(added)
    rows_before, columns_before = sums_before(attn.sum(axis=-1)), sums_before(attn.sum(axis=-2))
    splits = np.arange(2, n_tokens - 1)
    top_left = top_left_all[..., splits]
    bottom_right = rows_before[..., -1, None] - rows_before[..., splits] - columns_before[..., splits] + top_left
    within = (top_left + bottom_right) / n_tokens
    uniform = (splits**2 + (n_tokens - splits) ** 2) / n_tokens**2
    return ((within - uniform) / (1.0 - uniform)).max(axis=-1)

"""A view transform: hide special tokens (and optionally punctuation) as attention targets.

BERT-family heads park attention on [CLS], [SEP] and punctuation as a no-op (Clark et al. 2019,
section 3): drawn at full strength, that parking hides every word. :func:`drop_targets` removes
the hidden targets' columns and renormalises each row over the targets that remain, so a row
shows how the position's attention is shared among the shown tokens. It is a *view*: the stored
attention is never changed, shapes are kept (hidden columns are 0), and positions stay where they
are as queries (a trace can still start at [CLS]).

Rule for rows with nothing left: when a row's whole mass sat on hidden targets (kept mass
``<= EMPTY_ROW_MASS``), the row becomes all zeros: that position shows no attention to any
shown token. Nothing is invented (a uniform row would be), rollout through such a row keeps
only its residual term, and a trace stops there. :func:`kept_mass` tells how much was hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import _checks
from .metrics import PUNCTUATION, _is_punctuation, merge_word_pieces, word_units

SPECIAL_TOKENS = frozenset(
    {"[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]", "<s>", "</s>", "<pad>", "<unk>", "<mask>", "<eos>", "<bos>",
     "[EOS]", "[BOS]", "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<start>"}
)
"""Token strings treated as special when no word ids are known (with word ids, ``None``/negative ids decide)."""

EMPTY_ROW_MASS = 1e-9
"""A row whose kept mass is at most this shows nothing after :func:`drop_targets` (all zeros)."""

TOKEN_ROLES = ("special", "punctuation", "content")
"""What :func:`token_roles` calls each position."""

VIEW_DEFAULTS = {"drop_special": True, "drop_punctuation": True, "words": True}
"""The view the tab opens with, chosen by measurement on the real MiniLM (docs/frontend.md, "Readable
views"): with these, every default trace from [CLS] reaches content words, before and after training."""


@dataclass(frozen=True)
class View:
    """Attention as a view shows it (:func:`apply_view`).

    Attributes:
        attention: float64 ``[..., U, U]``: the transformed attention over ``U`` units (tokens, or words).
        labels: ``U`` unit strings (tokens, or word pieces joined).
        roles: ``U`` roles (:data:`TOKEN_ROLES`) of the units.
        keep: bool ``[U]``: units shown as targets.
        units: token positions of each unit.
        hidden_mass: float64 ``[..., T]``: per token row, the share of raw attention the view hides.
    """

    attention: np.ndarray
    labels: list[str]
    roles: list[str]
    keep: np.ndarray
    units: list[np.ndarray]
    hidden_mass: np.ndarray


def token_roles(tokens: Sequence[str], word_ids: Sequence[int | None] | None = None) -> list[str]:
    """The role of each token: ``"special"``, ``"punctuation"`` or ``"content"`` (see :data:`TOKEN_ROLES`).

    A token is special when its word id is ``None`` or negative (the tokenizer added it), or,
    without word ids, when its string is in :data:`SPECIAL_TOKENS`. Otherwise it is punctuation
    when, stripped of sub-word markers, it holds only :data:`~.metrics.PUNCTUATION` characters.

    Args:
        tokens: the ``T`` token strings.
        word_ids: ``T`` word ids from the tokenizer (``Run.word_ids(i)``), or None.

    Raises:
        ValueError: ``word_ids`` given with another length than ``tokens``.

    Example:
        >>> token_roles(["[CLS]", "good", "##ish", ",", "[SEP]"], [None, 0, 0, 1, None])
        ['special', 'content', 'content', 'punctuation', 'special']
    """
    tokens = [str(token) for token in tokens]
    if word_ids is not None:
        word_ids = list(word_ids)
        if len(word_ids) != len(tokens):
            raise ValueError(f"word_ids must hold one id per token ({len(tokens)}), got {len(word_ids)}")
        special = [word is None or int(word) < 0 for word in word_ids]
    else:
        special = [token in SPECIAL_TOKENS for token in tokens]
    return [
        "special" if is_special else "punctuation" if _is_punctuation(token, PUNCTUATION) else "content"
        for token, is_special in zip(tokens, special)
    ]


def keep_mask(
    tokens: Sequence[str],
    word_ids: Sequence[int | None] | None = None,
    *,
    drop_special: bool = True,
    drop_punctuation: bool = False,
) -> np.ndarray:
    """Which targets a view keeps: bool ``[T]``, False for dropped special tokens / punctuation.

    Example:
        >>> keep_mask(["[CLS]", "fine", ".", "[SEP]"], drop_punctuation=True).tolist()
        [False, True, False, False]
    """
    return keep_of_roles(token_roles(tokens, word_ids), drop_special=drop_special, drop_punctuation=drop_punctuation)


def keep_of_roles(roles: Sequence[str], *, drop_special: bool = True, drop_punctuation: bool = False) -> np.ndarray:
    """:func:`keep_mask` from the tokens' roles (:func:`token_roles`), for a caller that has them already.

    Example:
        >>> keep_of_roles(["special", "content", "punctuation"], drop_punctuation=True).tolist()
        [False, True, False]
    """
    roles = np.asarray(roles)
    keep = np.ones(roles.size, dtype=bool)
    if drop_special:
        keep &= roles != "special"
    if drop_punctuation:
        keep &= roles != "punctuation"
    return keep


def kept_mass(attn, keep) -> np.ndarray:
    """How much of each row's attention lands on kept targets: ``sum_{j kept} A[..., i, j]``.

    Args:
        attn: ``[..., Tq, Tk]`` attention (``[L, H, T, T]``, rollout ``[L, T, T]``, one map ``[T, T]``).
        keep: bool ``[Tk]`` from :func:`keep_mask`.

    Returns:
        float64 ``[..., Tq]`` in ``[0, 1]`` (within quantisation).

    Example:
        >>> import numpy as np
        >>> kept_mass(np.array([[0.6, 0.4], [1.0, 0.0]]), [False, True]).tolist()
        [0.4, 0.0]
    """
    array, keep = _inputs(attn, keep)
    return array[..., keep].sum(axis=-1)


def drop_targets(attn, keep) -> np.ndarray:
    """Attention over the kept targets only, each row renormalised (the view transform of this module).

    ``V[..., i, j] = A[..., i, j] * keep[j] / sum_{k kept} A[..., i, k]``, and ``V[..., i, :] = 0``
    when that sum is at most :data:`EMPTY_ROW_MASS` (see the module docstring for why zeros).
    Works on any stack of maps whose last axis is the target: ``[L, H, T, T]`` attention for the
    flow, trace and heat maps, a rollout ``[L, T, T]``, or an influence vector as ``[1, T]``.
    To see words, apply :func:`~.metrics.merge_word_pieces` afterwards (:func:`word_view` does
    both): each piece's row is renormalised first, then a word's rows are averaged, so word rows
    still sum to 1.

    Args:
        attn: ``[..., Tq, Tk]`` non-negative weights; rows sum to at most 1 (within quantisation).
        keep: bool ``[Tk]``: True for targets that stay.

    Returns:
        float64 array of ``attn``'s shape; rows sum to 1 or are all 0.

    Raises:
        ValueError: ``attn`` has fewer than 2 dimensions, NaN, negative weights or rows above 1;
            ``keep`` is not a bool array of length ``Tk``, or keeps nothing.

    Example:
        >>> import numpy as np
        >>> attn = np.array([[[[0.5, 0.25, 0.25], [1.0, 0.0, 0.0], [0.2, 0.4, 0.4]]]])
        >>> drop_targets(attn, [False, True, True])[0, 0].tolist()
        [[0.0, 0.5, 0.5], [0.0, 0.0, 0.0], [0.0, 0.5, 0.5]]
    """
    array, keep = _inputs(attn, keep)
    shown = array * keep  # a new float64 array, renormalised in place below (three passes, not five)
    total = shown.sum(axis=-1, keepdims=True)
    empty = total <= EMPTY_ROW_MASS
    np.divide(shown, np.where(empty, 1.0, total), out=shown)
    shown *= ~empty
    return shown


TARGET_SETS = {"none": (False, False), "special": (True, False), "special_punct": (True, True)}
"""Named sets of hidden targets: name -> (drop special tokens, drop punctuation). The names are the
plugin's ``targets`` options and the keys of the head means a shard stores (docs/format.md)."""


def view_targets(tokens: Sequence[str], word_ids: Sequence[int | None] | None = None) -> str:
    """The name in :data:`TARGET_SETS` of what the default view (:data:`VIEW_DEFAULTS`) hides for this input.

    ``"none"`` when the input holds no special token (the defaults then show raw attention).

    Example:
        >>> view_targets(["[CLS]", "fine", "[SEP]"], [None, 0, None]), view_targets(["fine", "day"])
        ('special_punct', 'none')
    """
    if not (VIEW_DEFAULTS["drop_special"] and "special" in token_roles(tokens, word_ids)):
        return "none"
    return "special_punct" if VIEW_DEFAULTS["drop_punctuation"] else "special"


def view_keep(tokens: Sequence[str], word_ids: Sequence[int | None] | None, targets: str) -> np.ndarray:
    """The targets kept by the named set ``targets`` (:data:`TARGET_SETS`), as :func:`apply_view` keeps them:
    every token when the set would hide them all.

    Example:
        >>> view_keep(["[CLS]", "fine", ".", "[SEP]"], None, "special_punct").tolist()
        [False, True, False, False]
    """
    if targets not in TARGET_SETS:
        raise ValueError(f"targets must be one of {list(TARGET_SETS)}, got {targets!r}")
    drop_special, drop_punctuation = TARGET_SETS[targets]
    keep = keep_mask(tokens, word_ids, drop_special=drop_special, drop_punctuation=drop_punctuation)
    return keep if keep.any() else np.ones(len(keep), dtype=bool)


def view_head_mean(attn, keep=None) -> tuple[np.ndarray, float]:
    """The head average of :func:`drop_targets`, and the mean share of attention it hides, one layer at a time.

    ``M[l] = mean_h drop_targets(A[l, h], keep)``, computed as a weighted sum of the raw heads
    (each row scaled by one over its kept mass), without the per-head float64 copies of
    :func:`apply_view`: at 12 x 12 x 512 tokens the transform's working set is one layer's.
    Word pieces merge linearly, so :func:`~.metrics.merge_word_pieces` of ``M`` is the word
    view's head mean. ``keep=None`` (or all True): the raw head mean, nothing hidden.

    Args:
        attn: ``[L, H, T, T]`` self-attention of one example (float32 or float64).
        keep: bool ``[T]`` from :func:`view_keep`, or None.

    Returns:
        ``(float64 [L, T, T], hidden)``: rows sum to 1 or are all 0 (see :data:`EMPTY_ROW_MASS`);
        ``hidden`` is the mean over layers, heads and rows of the share of each row the view hides.

    Example:
        >>> import numpy as np
        >>> attn = np.array([[[[0.5, 0.5], [0.5, 0.5]], [[0.9, 0.1], [0.2, 0.8]]]])
        >>> mean, hidden = view_head_mean(attn, np.array([False, True]))
        >>> mean[0].tolist(), round(hidden, 3)
        ([[0.0, 1.0], [0.0, 1.0]], 0.525)
    """
    array = _checks.attention(attn, square=True)
    keep = None if keep is None else np.asarray(keep, dtype=bool)
    if keep is not None and (keep.ndim != 1 or keep.size != array.shape[-1] or not keep.any()):
        raise ValueError(f"keep must be a bool array of {array.shape[-1]} entries keeping at least one target, "
                         f"got shape {keep.shape}; build it with view_keep(tokens, word_ids, targets)")
    return checked_head_mean(array, keep)


def checked_head_mean(attn: np.ndarray, keep: np.ndarray | None) -> tuple[np.ndarray, float]:
    """:func:`view_head_mean` of checked attention, in its own precision (a writer's float32 softmax output)."""
    layers, heads, n_tokens, _ = attn.shape
    mean = np.zeros((layers, n_tokens, n_tokens), dtype=attn.dtype)
    if keep is None or keep.all():
        for layer in range(layers):
            attn[layer].mean(axis=0, out=mean[layer])
        return mean, 0.0
    hidden = 0.0
    kept_targets = keep.astype(attn.dtype)
    for layer in range(layers):
        maps = attn[layer]
        kept = maps @ kept_targets  # [H, T]: each row's mass on kept targets
        totals = maps.sum(axis=-1)
        hidden += float((1.0 - np.clip(kept / np.maximum(totals, 1e-12), 0.0, 1.0)).sum(dtype=np.float64))
        empty = kept <= EMPTY_ROW_MASS
        scale = (np.where(empty, 0.0, 1.0 / np.where(empty, 1.0, kept)) / heads).astype(attn.dtype)
        for head in range(heads):
            mean[layer] += maps[head] * scale[head][:, None]
        mean[layer][:, ~keep] = 0.0
    return mean, hidden / (layers * heads * n_tokens)


def word_view(attn, word_ids: Sequence[int | None], keep) -> tuple[np.ndarray, np.ndarray]:
    """:func:`drop_targets`, then :func:`~.metrics.merge_word_pieces`: the view's attention between words.

    Args:
        attn: ``[..., T, T]`` attention.
        word_ids: ``T`` word ids (``None``/negative for special tokens).
        keep: bool ``[T]`` from :func:`keep_mask`.

    Returns:
        ``(float64 [..., W, W], bool [W])``: word attention, and which word units are kept (a
        unit is kept when any of its pieces is).

    Example:
        >>> import numpy as np
        >>> attn = np.full((3, 3), 1 / 3)
        >>> words, kept = word_view(attn, [None, 0, 0], [False, True, True])
        >>> words.tolist(), kept.tolist()
        ([[0.0, 1.0], [0.0, 1.0]], [False, True])
    """
    array, keep = _inputs(attn, keep)
    units = word_units(list(word_ids))
    merged = merge_word_pieces(drop_targets(array, keep), word_ids)
    return merged, np.array([bool(keep[unit].any()) for unit in units])


def apply_view(
    attn,
    tokens: Sequence[str],
    word_ids: Sequence[int | None] | None = None,
    *,
    drop_special: bool = VIEW_DEFAULTS["drop_special"],
    drop_punctuation: bool = VIEW_DEFAULTS["drop_punctuation"],
    words: bool = VIEW_DEFAULTS["words"],
) -> View:
    """One call for a view route: keep mask, :func:`drop_targets`, and (with ``words``) :func:`word_view`.

    When every token would be dropped (an input of special tokens only), nothing is dropped.
    ``words`` needs ``word_ids``; without them the units stay tokens.

    Example:
        >>> import numpy as np
        >>> view = apply_view(np.full((1, 1, 4, 4), 0.25), ["[CLS]", "good", "##ish", "[SEP]"], [None, 0, 0, None])
        >>> view.labels, view.keep.tolist(), view.attention[0, 0, 1].tolist()
        (['[CLS]', 'goodish', '[SEP]'], [False, True, False], [0.0, 1.0, 0.0])
    """
    tokens = [str(token) for token in tokens]
    roles = token_roles(tokens, word_ids)
    keep = keep_mask(tokens, word_ids, drop_special=drop_special, drop_punctuation=drop_punctuation)
    if not keep.any():
        keep = np.ones(len(tokens), dtype=bool)
    array, keep = _inputs(attn, keep)
    hidden = 1.0 - np.clip(kept_mass(array, keep) / np.maximum(array.sum(axis=-1), 1e-12), 0.0, 1.0)
    if words and word_ids is not None:
        units = word_units(list(word_ids))
        merged, kept_units = word_view(array, word_ids, keep)
        return View(merged, unit_labels(tokens, units), [roles[int(u[0])] for u in units], kept_units, units, hidden)
    units = [np.array([position]) for position in range(len(tokens))]
    return View(drop_targets(array, keep), tokens, roles, keep, units, hidden)


def unit_labels(tokens: Sequence[str], units: Sequence[np.ndarray]) -> list[str]:
    """A readable string per unit: its pieces joined, without sub-word markers.

    Example:
        >>> unit_labels(["[CLS]", "soggy", "##ish", "Ġgood"], [[0], [1, 2], [3]])
        ['[CLS]', 'soggyish', 'good']
    """
    labels = []
    for unit in units:
        pieces = [str(tokens[int(p)]) for p in unit]
        first = pieces[0][1:] if pieces[0][:1] in ("Ġ", "▁") and len(pieces[0]) > 1 else pieces[0]
        labels.append(first + "".join(p[2:] if p.startswith("##") else p for p in pieces[1:]))
    return labels


def mass_by_role(values, roles: Sequence[str]) -> dict[str, float]:
    """Sum a distribution over targets by token role: ``{role: sum_{j with that role} values[j]}``.

    Args:
        values: ``[T]`` non-negative mass on each token (a rollout row, an influence vector).
        roles: ``T`` roles from :func:`token_roles`.

    Returns:
        ``{"special", "punctuation", "content"}`` -> float, and ``"content_share"``: content over
        the total (0 when the total is 0).

    Example:
        >>> mass_by_role([0.5, 0.3, 0.2], ["special", "content", "punctuation"])["content_share"]
        0.3
    """
    values = np.asarray(values, dtype=np.float64)
    roles = list(roles)
    if values.ndim != 1 or values.size != len(roles):
        raise ValueError(f"values must be [T] with one role per token ({len(roles)}), got shape {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("values must be finite and non-negative")
    unknown = sorted(set(roles) - set(TOKEN_ROLES))
    if unknown:
        raise ValueError(f"roles must be among {list(TOKEN_ROLES)}, got {unknown}")
    roles_array = np.asarray(roles)
    result = {role: float(values[roles_array == role].sum()) for role in TOKEN_ROLES}
    total = values.sum()
    result["content_share"] = float(result["content"] / total) if total > 0 else 0.0
    return result


def _inputs(attn, keep) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(attn)
    if array.ndim < 2:
        raise ValueError(f"attn must be [..., Tq, Tk] with at least 2 dimensions, got shape {array.shape}")
    # the shared check wants [L, H, Tq, Tk]: pad or fold the leading axes, then restore the shape
    as_four = (1,) * (4 - array.ndim) + array.shape if array.ndim < 4 else (-1,) + array.shape[-3:]
    array = _checks.attention(array.reshape(as_four)).reshape(array.shape)
    mask = np.asarray(keep)
    if mask.dtype != bool or mask.ndim != 1 or mask.size != array.shape[-1]:
        raise ValueError(
            f"keep must be a bool array with one entry per target token ({array.shape[-1]}), "
            f"got {mask.dtype} of shape {mask.shape}; build it with keep_mask(tokens, word_ids)"
        )
    if not mask.any():
        raise ValueError("keep must keep at least one target token; every token here is dropped")
    return array, mask

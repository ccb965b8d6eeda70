"""Reader-side adapter: aggregate head change and token influence of a run over a selection of examples.

``aggregate_run(open_run(path), step, selection="flipped")`` answers "which heads changed for the
examples that flipped, and which words gained influence there" without visiting every example.
The maths is :mod:`attnflows_callback.analysis.aggregate`; this module reads the run and returns
plain JSON-ready values (for a plugin route or a notebook).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


def aggregate_run(
    run,
    step: int,
    *,
    reference_step: int | None = None,
    selection: str = "all",
    stream: str | None = None,
    drop_special: bool = True,
    drop_punctuation: bool = False,
    top_words: int = 12,
    min_count: int = 2,
    rows=None,
) -> dict:
    """Head change and classification-token influence, ``reference_step`` -> ``step``, over ``selection``.

    Args:
        run: an open :class:`~attnflows_callback.reader.Run`.
        step: the snapshot to compare.
        reference_step: the snapshot to compare with (default: the run's first, the pre-trained model).
        selection: ``"all"``, ``"class:K"`` or ``"flipped"``
            (:func:`~attnflows_callback.analysis.aggregate.select_examples`;
            "flipped" compares the predictions at ``reference_step`` and ``step``).
        stream: attention stream (default: the first).
        drop_special, drop_punctuation: the view (:mod:`~attnflows_callback.analysis.view`) under
            which influence is computed; head change always uses the raw attention.
        top_words: how many words to list, largest influence change first.
        min_count: words seen fewer times in the selection are not listed.
        rows: ``(example, step) -> [T]``, the source's rollout row under the view, for a caller that
            keeps them (:func:`source_row` computes one); None: computed here.

    Returns:
        ``{"selection", "examples", "count", "steps", "heads": {"js": {"mean", "std"}, "cosine": {...},
        "source"}, "influence_by_role": {"before", "after"}, "words": [...]}``, lists of plain values.

    Raises:
        ValueError: a step that is not a snapshot, a bad selection, or a selection with no examples.

    Example:
        >>> import tempfile
        >>> from attnflows_callback import open_run
        >>> try:
        ...     aggregate_run(open_run(tempfile.mkdtemp()), 0)
        ... except Exception as err:
        ...     print(type(err).__name__)
        NotARunError
    """
    from .analysis import head_cosine_similarity, head_js_divergence
    from .analysis.aggregate import influence_by_role, influence_by_word, mean_over_examples, select_examples

    steps = [int(s) for s in run.steps]
    reference_step = steps[0] if reference_step is None else int(reference_step)
    for name, value in (("step", step), ("reference_step", reference_step)):
        if value not in steps:
            raise ValueError(f"{name} must be one of the run's snapshots {steps if len(steps) < 9 else steps[:8]}, "
                             f"got {value}")
    step = int(step)
    stream = stream or run.default_stream
    if stream in ("decoder", "cross"):  # influence is traced over the input tokens
        raise ValueError(f"stream must be one of {[s for s in run.streams if s not in ('decoder', 'cross')]} "
                         f"(self-attention over the input), got {stream!r}")
    before_predictions, after_predictions = run.predictions(reference_step), run.predictions(step)
    chosen = select_examples(selection, num_examples=run.num_examples, labels=run.labels,
                             predictions_before=before_predictions, predictions_after=after_predictions)
    if chosen.size == 0:
        raise ValueError(f"selection {selection!r} holds no examples between steps {reference_step} and {step}; "
                         "choose another, or 'all'")

    stored = {}
    if reference_step == 0:  # the writer stored each example's change from step 0 beside the attention
        summary = run.summary(step, stream)
        stored = {key: summary.get(f"{key}_from_start") for key in ("js", "cosine")}
    attention_cache = {}

    def attention(i: int, at: int) -> np.ndarray:
        if (i, at) not in attention_cache:
            attention_cache[(i, at)] = run.attention(i, at, stream).astype(np.float64)
        return attention_cache[(i, at)]

    heads = {}
    source = "from stored summaries"
    for key, measure in (("js", head_js_divergence), ("cosine", head_cosine_similarity)):
        values = stored.get(key)
        if values is None:
            source = "from the attention"
            layers, n_heads = run.stream_shape(stream)
            values = np.full((run.num_examples, layers, n_heads), np.nan)
            for i in chosen:
                values[i] = measure(attention(int(i), reference_step), attention(int(i), step))
        result = mean_over_examples(values, chosen)
        heads[key] = {"mean": result["mean"].tolist(), "std": result["std"].tolist()}
    heads["source"] = source

    # Per selected example: the source's rollout row under the view, its token roles, and its words.
    compared = (("before", reference_step), ("after", step))
    token_rows = {label: [] for label, _ in compared}
    word_rows = {label: [] for label, _ in compared}
    examples = tuple(example_words(run, i, drop_special, drop_punctuation) for i in chosen.tolist())
    for position, i in enumerate(chosen.tolist()):
        for label, at in compared:
            row = rows(i, at) if rows is not None else source_row(run, i, at, stream=stream, drop_special=drop_special,
                                                                   drop_punctuation=drop_punctuation)
            token_rows[label].append(row)
            word_rows[label].append(np.add.reduceat(row, examples[position].starts))  # units: runs of positions
    roles, words_numbered, role_of = _selection_labels(examples)
    positions = np.arange(chosen.size)
    by_role = {label: influence_by_role(token_rows[label], roles, positions) for label, _ in compared}
    per_word = {label: influence_by_word(word_rows[label], words_numbered, positions) for label, _ in compared}
    shown_roles = {"content"} | ({"punctuation"} if not drop_punctuation else set()) | (
        {"special"} if not drop_special else set())
    words = [
        {"word": word, "count": per_word["after"][word]["count"], "before": per_word["before"][word]["mean"],
         "after": per_word["after"][word]["mean"],
         "change": per_word["after"][word]["mean"] - per_word["before"][word]["mean"]}
        for word in per_word["after"]
        if per_word["after"][word]["count"] >= min_count and role_of.get(word) in shown_roles
    ]
    words.sort(key=lambda row: -abs(row["change"]))
    return {
        "selection": selection,
        "examples": chosen.tolist(),
        "count": int(chosen.size),
        "steps": [reference_step, step],
        "view": {"drop_special": drop_special, "drop_punctuation": drop_punctuation},
        "heads": heads,
        "influence_by_role": by_role,
        "words": words[:top_words],
    }


def source_row(run, example: int, step: int, *, stream: str | None = None, drop_special: bool = True,
               drop_punctuation: bool = False) -> np.ndarray:
    """The classification token's rollout row ``[T]`` of one example at one step under the view: what
    :func:`aggregate_run` averages, one example at a time (a server computes these ahead and keeps them).

    Example:
        >>> import tempfile
        >>> from attnflows_callback import open_run
        >>> try:
        ...     source_row(open_run(tempfile.mkdtemp()), 0, 0)
        ... except Exception as err:
        ...     print(type(err).__name__)
        NotARunError
    """
    from .analysis.view import keep_of_roles
    from .explain import classification_source

    stream = stream or run.default_stream
    stored = stored_source_row(run, example, step, stream=stream, drop_special=drop_special,
                               drop_punctuation=drop_punctuation)
    if stored is not None:
        return stored
    keep = keep_of_roles(example_words(run, example, drop_special, drop_punctuation).roles,
                         drop_special=drop_special, drop_punctuation=drop_punctuation)
    return _row(run.attention(example, step, stream).astype(np.float64), keep, classification_source(run, example))


def stored_source_row(run, example: int, step: int, *, stream: str | None = None, drop_special: bool = True,
                      drop_punctuation: bool = False) -> np.ndarray | None:
    """:func:`source_row` as the writer stored it with a long example's head mean (float64), or None."""
    return stored_source_rows(run, [example], step, stream=stream, drop_special=drop_special,
                              drop_punctuation=drop_punctuation).get(int(example))


def stored_source_rows(run, examples, step: int, *, stream: str | None = None, drop_special: bool = True,
                       drop_punctuation: bool = False) -> dict[int, np.ndarray]:
    """:func:`stored_source_row` of each of ``examples`` at ``step``, read in one pass (example -> float64
    row); examples with no stored row are left out."""
    targets = {int(i): example_words(run, int(i), drop_special, drop_punctuation).targets for i in examples}
    stored = run.source_rows(step, stream or run.default_stream, targets)
    return {i: row.astype(np.float64) for i, row in stored.items()}


@dataclass(frozen=True, eq=False)  # hashed by identity: a key of _selection_labels
class ExampleWords:
    """What the aggregate needs of one example's tokens under a view, whatever the step: each token's role,
    the ``starts`` of its word units, their lower-case ``words`` and roles, and the ``targets`` the view hides
    (a name in :data:`~.analysis.view.TARGET_SETS`)."""

    roles: list[str]
    starts: np.ndarray
    words: list[str]
    word_roles: list[str]
    targets: str


def example_words(run, example: int, drop_special: bool, drop_punctuation: bool) -> ExampleWords:
    """:class:`ExampleWords` of ``run``'s example, worked out once per distinct input (an aggregate asks for
    every example at every step it shows: 64 x 512 tokens of string work each time, otherwise)."""
    ids = run.word_ids(example)  # -1 marks special tokens, as the analysis functions expect
    return _example_words(tuple(run.tokens(example)), None if ids is None else tuple(ids.tolist()),
                          bool(drop_special), bool(drop_punctuation))


@functools.lru_cache(maxsize=4096)
def _example_words(tokens: tuple, ids: tuple | None, drop_special: bool, drop_punctuation: bool) -> ExampleWords:
    from .analysis.metrics import word_units
    from .analysis.view import TARGET_SETS, keep_of_roles, token_roles, unit_labels

    roles = token_roles(tokens, ids)
    keep = keep_of_roles(roles, drop_special=drop_special, drop_punctuation=drop_punctuation)
    units = word_units(ids) if ids is not None else [np.array([p]) for p in range(len(tokens))]
    starts = np.array([int(unit[0]) for unit in units])
    starts.setflags(write=False)
    targets = "none" if not keep.any() or keep.all() else \
        next(name for name, drops in TARGET_SETS.items() if drops == (drop_special, drop_punctuation))
    return ExampleWords(roles, starts, [label.lower() for label in unit_labels(tokens, units)],
                        [roles[int(start)] for start in starts], targets)


@functools.lru_cache(maxsize=16)  # at most 16 x 64 x 512 positions, two int64 codes each: 8 MiB
def _selection_labels(examples: tuple[ExampleWords, ...]):
    """The token roles and words of a selection's examples, numbered once for every step an aggregate shows,
    and each word's role: ``(roles, words, {word: role})``."""
    from .analysis.aggregate import number_labels
    from .analysis.view import TOKEN_ROLES

    role_of = {w: r for example in examples for w, r in zip(example.words, example.word_roles)}
    return (number_labels([e.roles for e in examples], TOKEN_ROLES, "roles"),
            number_labels([e.words for e in examples]), role_of)


def _row(attn: np.ndarray, keep: np.ndarray, source_position: int) -> np.ndarray:
    """The source's rollout row of ``[L, H, T, T]`` attention with the targets ``keep`` hides dropped."""
    from .analysis import rollout_row
    from .analysis.view import drop_targets

    if keep.any() and not keep.all():
        attn = drop_targets(attn, keep)
    return rollout_row(attn, source_position)

"""Explain a flip: ``attnflows explain RUN --example I [--step S] [--json]``.

For a probe example whose prediction changed between two consecutive snapshots, this reads the
example's attention at both, and reports (through :func:`~attnflows_callback.analysis.explain.explain_change`):
the heads ranked by how much this example's attention changed, the trace edges from the
classification token gained and lost, and how that token's rollout influence on each word moved.

:func:`explain_flip` returns plain JSON-ready values (the CLI's ``--json``, and what a plugin route
can serve); :func:`format_explanation` is the text. The command's parser is added to ``attnflows``
by :func:`add_parser`.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

DEFAULT_HEADS = 8
DEFAULT_EDGES = 12
DEFAULT_WORDS = 12


def explain_flip(
    run,
    example: int,
    step: int | None = None,
    *,
    stream: str | None = None,
    tau: float = 0.1,
    mode: str = "mean",
    drop_special: bool = True,
    drop_punctuation: bool = False,
) -> dict:
    """Why example ``example`` of ``run`` changed at snapshot ``step`` (compared with the snapshot before it).

    Args:
        run: an open :class:`~attnflows_callback.reader.Run`.
        example: probe example index.
        step: the later snapshot of the pair; None for the last step at which the example's
            predicted label flipped.
        stream: attention stream (default: the run's first).
        tau, mode: trace threshold and mode (:data:`~attnflows_callback.analysis.TRACE_MODES`).
        drop_special, drop_punctuation: the view of :mod:`~attnflows_callback.analysis.view` under
            which edges and influence are computed (head change always uses the raw attention).

    Returns:
        a dict of plain values: example, text, steps, predictions, flipped, heads, edges_gained,
        edges_lost, words (see docs/analysis.md, "Explain a flip").

    Raises:
        IndexError: ``example`` out of range.
        ValueError: the run has fewer than two snapshots or no predictions, ``step`` is the first
            snapshot or not a snapshot, or ``step`` is None and the example never flipped.

    Example:
        >>> import tempfile
        >>> from attnflows_callback import open_run
        >>> try:
        ...     explain_flip(open_run(tempfile.mkdtemp()), 0)
        ... except Exception as err:
        ...     print(type(err).__name__)
        NotARunError
    """
    from .analysis import prediction_flips
    from .analysis.explain import explain_change
    from .analysis.view import keep_mask, token_roles, unit_labels

    if isinstance(example, bool) or not isinstance(example, (int, np.integer)) or not 0 <= example < run.num_examples:
        raise IndexError(f"example must be an integer in [0, {run.num_examples}), got {example!r}")
    steps = [int(s) for s in run.steps]
    if len(steps) < 2:
        raise ValueError(f"explaining a change needs two snapshots, the run has {len(steps)}")
    logits = [run.logits(s) for s in steps]
    if any(value is None for value in logits):
        raise ValueError("the run holds no predictions (the model has no classifier head): nothing flipped")
    predictions = np.stack([value.argmax(axis=1) for value in logits])
    flips = prediction_flips(steps, predictions)[example]
    if step is None:
        if not flips:
            raise ValueError(
                f"example {example}'s prediction never changed between snapshots (steps {steps[0]} to {steps[-1]}); "
                "pass a step to compare it with the snapshot before it anyway"
            )
        step = flips[-1]
    if step not in steps:
        raise ValueError(f"step must be one of the run's snapshots {_short_list(steps)}, got {step}")
    if step == steps[0]:
        raise ValueError(f"step {step} is the first snapshot: nothing before it to compare with; pick a later step")
    after_index = steps.index(step)
    before_step = steps[after_index - 1]
    stream = stream or run.default_stream
    if stream in ("decoder", "cross"):
        raise ValueError(f"explain traces self-attention over the input; stream must be one of "
                         f"{[s for s in run.streams if s not in ('decoder', 'cross')]}, got {stream!r}")
    tokens = run.tokens(example)
    word_ids = run.word_ids(example)  # -1 marks special tokens, as the analysis functions expect
    keep = None
    if drop_special or drop_punctuation:
        keep = keep_mask(tokens, word_ids, drop_special=drop_special, drop_punctuation=drop_punctuation)
        if not keep.any():
            keep = None
    source = classification_source(run, example)
    result = explain_change(
        run.attention(example, before_step, stream).astype(np.float64),
        run.attention(example, step, stream).astype(np.float64),
        source=source, tau=tau, mode=mode, keep=keep, word_ids=word_ids,
    )
    names = run.label_names
    label = (lambda y: names[y] if names and 0 <= y < len(names) else str(y))  # noqa: E731
    probabilities = [run.probabilities(s)[example] for s in (before_step, step)]
    roles = token_roles(tokens, word_ids)
    words = []
    for index, (unit, text) in enumerate(zip(result.units, unit_labels(tokens, result.units))):
        words.append({
            "word": text,
            "positions": unit.tolist(),
            "role": roles[int(unit[0])],
            "shown": bool(keep is None or keep[unit].any()),
            "before": float(result.influence_before[index]),
            "after": float(result.influence_after[index]),
            "change": float(result.influence_change[index]),
        })
    heads_of = result.comparison.first.heads

    def edges(records, passing) -> list[dict]:
        rows = []
        for k, edge in enumerate(records):
            row = {"layer": int(edge["layer"]), "from": int(edge["from_pos"]), "to": int(edge["to_pos"]),
                   "from_token": tokens[int(edge["from_pos"])], "to_token": tokens[int(edge["to_pos"])],
                   "weight_before": float(edge["weight_first"]), "weight_after": float(edge["weight_second"])}
            if passing is not None:
                row["heads"] = heads_of[passing[k]].tolist()
            rows.append(row)
        rows.sort(key=lambda r: -abs(r["weight_after"] - r["weight_before"]))
        return rows

    comparison = result.comparison
    gained, lost = comparison.labels == "second", comparison.labels == "first"
    return {
        "run": run.run_dir.name,
        "example": int(example),
        "text": run.texts[example],
        "label": None if run.labels is None else label(run.labels[example]),
        "step_before": before_step,
        "step_after": int(step),
        "prediction_before": label(int(predictions[after_index - 1, example])),
        "prediction_after": label(int(predictions[after_index, example])),
        "probabilities_before": [float(p) for p in probabilities[0]],
        "probabilities_after": [float(p) for p in probabilities[1]],
        "flipped": bool(predictions[after_index - 1, example] != predictions[after_index, example]),
        "flip_steps": flips,
        "view": {"drop_special": drop_special, "drop_punctuation": drop_punctuation, "tau": tau, "mode": mode,
                 "source": source},
        "heads": [{"layer": l, "head": h, "js": js} for l, h, js in result.ranked_heads],
        "layer_js": result.head_js.mean(axis=1).tolist(),
        "edges_shared": int(comparison.count("shared")),
        "edges_gained": edges(comparison.edges[gained], None if comparison.heads_second is None
                              else comparison.heads_second[gained]),
        "edges_lost": edges(comparison.edges[lost], None if comparison.heads_first is None
                            else comparison.heads_first[lost]),
        "words": words,
    }


def format_explanation(result: dict, *, heads: int = DEFAULT_HEADS, edges: int = DEFAULT_EDGES,
                       words: int = DEFAULT_WORDS) -> str:
    """The text of ``attnflows explain`` for a dict from :func:`explain_flip`."""
    flipped = "flipped" if result["flipped"] else "did not flip"
    probability = max(result["probabilities_after"])
    lines = [
        f"Example #{result['example']}: {result['text']}",
        f"  label {result['label']}; prediction {result['prediction_before']} -> {result['prediction_after']} "
        f"({flipped}) between steps {result['step_before']} and {result['step_after']}, "
        f"confidence now {probability:.3f}",
        "",
        "Heads whose attention on this example changed most (JS divergence, raw attention)",
    ]
    for row in result["heads"][:heads]:
        lines.append(f"  layer {row['layer']:>2} head {row['head']:>2}  {row['js']:.4f}")
    lines.append("  per layer: " + "  ".join(f"L{k} {v:.4f}" for k, v in enumerate(result["layer_js"])))
    view = result["view"]
    shown = ("special tokens" if view["drop_special"] else "") + (
        (" and " if view["drop_special"] else "") + "punctuation" if view["drop_punctuation"] else "")
    note = f", {shown} dropped as targets" if shown else ", raw attention"
    lines += ["", f"Trace edges from position {view['source']} (tau {view['tau']}, mode {view['mode']}{note}): "
              f"{len(result['edges_gained'])} gained, {len(result['edges_lost'])} lost, "
              f"{result['edges_shared']} shared"]
    for title, key in (("gained", "edges_gained"), ("lost", "edges_lost")):
        for row in result[key][:edges]:
            by = f"  heads {row['heads']}" if "heads" in row else ""
            lines.append(f"  {title:<6} layer {row['layer']}  {row['from_token']!s:>12} -> {row['to_token']!s:<12} "
                         f"{row['weight_before']:.3f} -> {row['weight_after']:.3f}{by}")
    lines += ["", "Influence of the classification token per word (rollout), largest change first"]
    shown_words = [row for row in result["words"] if row["shown"]]  # dropped targets keep only residual mass
    for row in sorted(shown_words, key=lambda r: -abs(r["change"]))[:words]:
        lines.append(f"  {row['word']!s:<16} {row['before']:.4f} -> {row['after']:.4f}  ({row['change']:+.4f})")
    return "\n".join(lines)


# ---------------------------------------------------------------- command
def add_parser(commands, formatter_class) -> argparse.ArgumentParser:
    """Register ``attnflows explain`` on the ``attnflows`` sub-command set."""
    parser = commands.add_parser(
        "explain",
        help="why did an example's prediction flip: heads, trace edges and word influence that changed",
        description="For a probe example whose prediction changed between two consecutive snapshots, rank the "
                    "heads by how much its attention changed, list the trace edges from the classification "
                    "token gained and lost, and show how that token's influence on each word moved.",
        formatter_class=formatter_class,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a recorded run: its TensorBoard run folder")
    parser.add_argument("--example", type=int, required=True, help="probe example index")
    parser.add_argument("--step", type=int, default=None,
                        help="compare this snapshot with the one before it (default: the example's last flip)")
    parser.add_argument("--stream", default=None, help="attention stream (default: the first)")
    parser.add_argument("--tau", type=float, default=0.1, help="trace threshold")
    parser.add_argument("--mode", choices=("mean", "any_head"), default="mean",
                        help="trace edges over the head average, or any single head passing tau")
    parser.add_argument("--raw", action="store_true", help="keep special tokens as targets (no view transform)")
    parser.add_argument("--drop-punctuation", action="store_true", help="also drop punctuation as targets")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=explain_command)
    return parser


def explain_command(args) -> int:
    from .cli.common import CLIError, open_checked
    from .cli.common import checked_stream as _stream

    if not 0.0 <= args.tau <= 1.0:
        raise CLIError(f"--tau must lie in [0, 1], got {args.tau}")
    with open_checked(args.run_dir) as run:
        stream = _stream(run, args.stream)
        try:
            result = explain_flip(run, args.example, args.step, stream=stream, tau=args.tau, mode=args.mode,
                                  drop_special=not args.raw, drop_punctuation=args.drop_punctuation)
        except (IndexError, ValueError) as err:
            raise CLIError(str(err).replace("example must", "--example must").replace("step must", "--step must")) \
                from None
    print(json.dumps(result, indent=1) if args.json else format_explanation(result))
    return 0


def classification_source(run, example: int) -> int:
    """Position of the classification token of ``example``: first (BERT's [CLS]) or last (decoder-only models)."""
    return 0 if run.meta.get("classification_position", "first") == "first" else run.length(example) - 1


def _short_list(values: list[int]) -> str:
    return str(values) if len(values) <= 8 else f"[{values[0]}, {values[1]}, ..., {values[-1]}]"

"""``attnflows summary RUN_DIR``: steps, probe accuracy, most-changed heads, flipped examples."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from .common import HelpFormatter, add_run_dir, checked_stream, describe, ellipsis, fail, failure_note, open_checked, positive

BAR_WIDTH = 20
MAX_ROWS = 24  # timeline rows before the summary shows a spread of steps
MAX_HPARAMS = 10
KEY_HPARAMS = ("example", "model", "lr", "learning_rate", "batch_size", "per_device_train_batch_size", "max_steps",
               "num_train_epochs", "epochs", "seed", "sweep")



def add_parser(commands) -> None:
    """Register ``summary``."""
    summary = commands.add_parser(
        "summary",
        help="print a run's timeline: probe accuracy, most-changed heads, flipped examples",
        description=describe("Print a run's snapshots and probe accuracy over time, the attention heads that "
                              "changed most since the first snapshot, and the probe examples whose prediction "
                              "flipped."),
        formatter_class=HelpFormatter,
    )
    add_run_dir(summary)
    summary.add_argument("--heads", type=positive, default=8, help="how many most-changed heads to list")
    summary.add_argument("--by", choices=("js", "cosine"), default="js",
                         help="rank heads by Jensen-Shannon divergence or by 1 - cosine similarity")
    summary.add_argument("--flips", type=positive, default=12, help="how many flipped examples to list")
    summary.add_argument("--stream", default=argparse.SUPPRESS,
                         help="attention stream of an encoder-decoder model (default: the first)")
    summary.set_defaults(handler=summary_command)


def summary_command(args) -> int:
    with open_checked(args.run_dir) as run:
        stream = checked_stream(run, getattr(args, "stream", None))
        print(format_summary(run, stream=stream, heads=args.heads, by=args.by, flips=args.flips,
                             width=shutil.get_terminal_size((100, 24)).columns))
        note = failure_note(run)
    if note:
        return fail(note)
    return 0


def format_summary(run, *, stream: str | None = None, heads: int = 8, by: str = "js", flips: int = 12,
                   width: int = 100) -> str:
    """The text of ``attnflows summary``: header, timeline, most-changed heads, flipped examples."""
    stream = checked_stream(run, stream)
    steps = run.steps
    sections = [_header(run, stream), _timeline(run, stream, steps)]
    sections.append(_changed_heads(run, stream, steps, heads, by))
    sections.append(_flips(run, steps, flips, width))
    if run.notes:
        sections.append("Notes\n" + "\n".join(f"  {note}" for note in run.notes))
    if run.problems:
        sections.append("Unreadable snapshot files (skipped)\n" + "\n".join(
            f"  {p.file}: {p.reason}" for p in run.problems))
    return "\n\n".join(s for s in sections if s)


def _header(run, stream: str) -> str:
    meta = run.meta
    model = meta.get("model", {})
    status = run.status
    state = status.get("status", "unknown")
    if state == "failed":
        state = "FAILED" + (f" after step {status['last_step']}" if status.get("last_step") is not None else "")
    layers, n_heads = run.stream_shape(stream)
    name = str(model.get("name_or_path") or "?")
    if Path(name).is_absolute():  # a local folder: its last two parts say enough, the full path is noise
        name = "/".join(Path(name).parts[-2:])
    lines = [
        f"Run       {run.run_dir.name}",
        f"Status    {state}",
        f"Model     {name} ({model.get('class', '?')}, {layers} layers x {n_heads} heads)",
        f"Probe     {run.num_examples} {'sentence pairs (text || text pair)' if run.text_pairs else 'examples'}"
        + (f", classes: {', '.join(run.label_names)}" if run.label_names else ""),
        f"Snapshots {len(run.steps)} (steps {run.steps[0]} to {run.steps[-1]})",
    ]
    hparams = meta.get("hparams") or {}
    if hparams:
        # The usual suspects first: a Trainer's run holds a hundred TrainingArguments.
        keys = sorted(hparams, key=lambda k: (k not in KEY_HPARAMS, KEY_HPARAMS.index(k) if k in KEY_HPARAMS else 0))
        shown = ", ".join(f"{k}={_short(hparams[k])}" for k in keys[:MAX_HPARAMS])
        more = len(hparams) - MAX_HPARAMS
        lines.append(f"Hparams   {shown}" + (f" (+{more} more)" if more > 0 else ""))
    if len(run.streams) > 1:
        lines.append(f"Streams   {', '.join(run.streams)} (showing {stream})")
    return "\n".join(lines)


def _timeline(run, stream: str, steps: np.ndarray) -> str:
    from ..analysis import summary_timeline_change

    accuracy = probe_accuracy(run)
    _, js = run.summary_timeline("js_from_start", stream)
    change = summary_timeline_change(js)["overall"]
    shown = _spread(len(steps), MAX_ROWS)
    epochs = [run.snapshot_info(int(steps[k])).epoch for k in shown]
    epoch_column = any(e is not None for e in epochs)
    lines = ["Timeline" + (f" ({len(shown)} of {len(steps)} snapshots)" if len(shown) < len(steps) else "")]
    lines.append(f"  {'step':>8}  " + (f"{'epoch':>5}  " if epoch_column else "")
                 + f"{'probe accuracy':<{BAR_WIDTH + 8}}  change from start (mean JS)")
    for k, epoch in zip(shown, epochs):
        epoch = ("" if epoch is None else str(epoch)).rjust(5) + "  " if epoch_column else ""
        acc = "n/a" if accuracy is None else f"{accuracy[k]:.3f} {_bar(accuracy[k])}"
        delta = "" if np.isnan(change[k]) else f"{change[k]:.4f}"
        lines.append(f"  {int(steps[k]):>8}  {epoch}{acc:<{BAR_WIDTH + 8}}  {delta}")
    if accuracy is None:
        lines.append("  (probe accuracy needs labels and a classifier head)")
    elif run.label_names and len(run.label_names):
        chance = 1.0 / max(2, len(run.label_names))
        lines.append(f"  chance level {chance:.3f}; final {accuracy[-1]:.3f} (first {accuracy[0]:.3f})")
    return "\n".join(lines)


def probe_accuracy(run) -> np.ndarray | None:
    """Probe accuracy at each step of ``run.steps``, or None without labels or logits."""
    if run.labels is None:
        return None
    labels = np.asarray(run.labels)
    values = []
    for step in run.steps:
        predictions = run.predictions(int(step))
        if predictions is None or labels.max() >= run.logits(int(step)).shape[1]:
            return None
        values.append(float((predictions == labels).mean()))
    return np.asarray(values)


def _changed_heads(run, stream: str, steps: np.ndarray, k: int, by: str) -> str:
    from ..analysis import most_changed_heads

    if len(steps) < 2:
        return "Most-changed heads\n  (one snapshot only: nothing to compare)"
    change, source = head_change_since_start(run, stream)
    layers, heads = change["js"].shape
    ranked = most_changed_heads(change, min(k, layers * heads), by=by)
    label = "JS divergence" if by == "js" else "1 - cosine"
    lines = [f"Most-changed heads, step {steps[0]} -> {steps[-1]} ({label}, mean over probe examples; {source})"]
    top = max(score for _, _, score in ranked) or 1.0
    for layer, head, score in ranked:
        lines.append(f"  layer {layer:>2} head {head:>2}  {score:.4f} {_bar(score / top)}")
    per_layer = change["js"].mean(axis=1) if by == "js" else 1.0 - change["cosine"].mean(axis=1)
    lines.append("  per layer: " + "  ".join(f"L{layer} {value:.4f}" for layer, value in enumerate(per_layer)))
    return "\n".join(lines)


def head_change_since_start(run, stream: str | None = None) -> tuple[dict, str]:
    """Per-head change between the first and last snapshots: from stored summaries when the run has them."""
    from ..analysis import head_change, summary_timeline_change

    stream = checked_stream(run, stream)
    steps = run.steps
    if int(steps[0]) == 0:
        _, js = run.summary_timeline("js_from_start", stream)
        _, cosine = run.summary_timeline("cosine_from_start", stream)
        js_last, cosine_last = summary_timeline_change(js)["head"][-1], summary_timeline_change(cosine)["head"][-1]
        if not (np.isnan(js_last).any() or np.isnan(cosine_last).any()):
            return {"js": js_last, "cosine": cosine_last}, "from stored summaries"
    first, last = int(steps[0]), int(steps[-1])
    examples = range(run.num_examples)
    change = head_change([run.attention(i, first, stream) for i in examples],
                         [run.attention(i, last, stream) for i in examples])
    return change, "from the attention"


def _flips(run, steps: np.ndarray, limit: int, width: int) -> str:
    from ..analysis import prediction_flips

    logits = [run.logits(int(step)) for step in steps]
    if any(value is None for value in logits):
        return "Flipped predictions\n  (the model has no classifier head: no predictions recorded)"
    predictions = np.stack([value.argmax(axis=1) for value in logits])
    flipped = prediction_flips(steps.tolist(), predictions)
    changed = [i for i, f in enumerate(flipped) if f]
    if not changed:
        return "Flipped predictions\n  none: every probe example kept its first prediction"
    # Examples whose final prediction differs from the first come first; then by flip count.
    changed.sort(key=lambda i: (predictions[0, i] == predictions[-1, i], -len(flipped[i]), i))
    names = run.label_names
    label = (lambda y: names[y] if names and 0 <= y < len(names) else str(y))  # noqa: E731
    net = sum(predictions[0, i] != predictions[-1, i] for i in changed)
    lines = [f"Flipped predictions: {len(changed)} of {run.num_examples} examples changed "
             f"({net} end on a different label than they started)"]
    text_width = max(20, width - 52)
    for i in changed[:limit]:
        first, last = int(predictions[0, i]), int(predictions[-1, i])
        truth = run.labels[i] if run.labels is not None else None
        mark = "" if truth is None else (" correct" if last == truth else " WRONG")
        when = ",".join(str(s) for s in flipped[i][:4]) + ("..." if len(flipped[i]) > 4 else "")
        lines.append(f"  #{i:<3} {label(first):>8} -> {label(last):<8}{mark:<8} at {when:<12} "
                     f"{example_text(run, i, text_width)}")
    if len(changed) > limit:
        lines.append(f"  ... and {len(changed) - limit} more (--flips N)")
    return "\n".join(lines)


def example_text(run, i: int, width: int) -> str:
    """Example ``i`` in ``width`` characters: the text, or both segments of a pair, each shortened, joined by `` || ``."""
    if run.text_pairs is None:
        return ellipsis(run.texts[i], width)
    half = max(8, (width - 4) // 2)
    return f"{ellipsis(run.texts[i], half)} || {ellipsis(run.text_pairs[i], half)}"


def _spread(n: int, most: int) -> list[int]:
    if n <= most:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, most).round().astype(int).tolist()))


def _bar(fraction: float) -> str:
    if not np.isfinite(fraction):
        return ""
    cells = int(round(max(0.0, min(1.0, fraction)) * BAR_WIDTH))
    return "#" * cells + "." * (BAR_WIDTH - cells)


def _short(value) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return ellipsis(text, 32)

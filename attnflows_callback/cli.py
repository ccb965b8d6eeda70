"""The ``attnflows`` command: summarise and export recorded runs, and run the demo.

    attnflows summary RUN_DIR                 steps, probe accuracy, most-changed heads, flipped examples
    attnflows export RUN_DIR --format npz     attention, tokens, logits and summaries for other tools
    attnflows explain RUN_DIR --example I     why an example's prediction flipped (see explain.py)
    attnflows demo                            fine-tune MiniLM on sentiment (three learning rates) and on
                                              entailment pairs, then start TensorBoard
    attnflows verify RUN_DIR --checkpoint P   recompute a snapshot from a saved checkpoint (exit 1 if it differs)

Errors (a path that is not a run, a run with no snapshots, a failed run, a step that was not
recorded) are one line on stderr and exit status 2; a failed run is still summarised first.
The maths comes from :mod:`attnflows_callback.analysis`; this module only reads and prints.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

EXIT_ERROR = 2
DEMO_LOGDIR = "demo_runs"
DEMO_PORT = 6006
# Bundled task -> the examples/sweep.py options the demo gives it (before the user's, which win).
DEMO_TASKS = {
    "sentiment": [],  # the sweep's own three learning rates: single sentences
    # One sentence-pair run. Pairs need more steps than single sentences: at 1e-4, 80 steps of 16
    # left dev accuracy at 0.58 (docs/examples.md).
    "entailment": ["--task", "entailment", "--lrs", "1e-4", "--max-steps", "200", "--snapshot-every", "20", "--save-model"],
}
BAR_WIDTH = 20
MAX_ROWS = 24  # timeline rows before the summary shows a spread of steps
MAX_HPARAMS = 10
KEY_HPARAMS = ("example", "model", "lr", "learning_rate", "batch_size", "per_device_train_batch_size", "max_steps",
               "num_train_epochs", "epochs", "seed", "sweep")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help keeps line breaks in descriptions and shows the defaults worth showing."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class CLIError(Exception):
    """A problem to report in one line (exit status 2), never with a traceback."""


# ---------------------------------------------------------------- parsing
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnflows",
        description="Inspect attention recorded by attnflows during fine-tuning.",
        epilog="Run `attnflows COMMAND --help` for the options of one command.",
        formatter_class=HelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"attnflows {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    summary = commands.add_parser(
        "summary",
        help="print a run's timeline: probe accuracy, most-changed heads, flipped examples",
        description=_describe("Print a run's snapshots and probe accuracy over time, the attention heads that "
                              "changed most since the first snapshot, and the probe examples whose prediction "
                              "flipped."),
        formatter_class=HelpFormatter,
    )
    _add_run_dir(summary)
    summary.add_argument("--heads", type=_positive, default=8, help="how many most-changed heads to list")
    summary.add_argument("--by", choices=("js", "cosine"), default="js",
                         help="rank heads by Jensen-Shannon divergence or by 1 - cosine similarity")
    summary.add_argument("--flips", type=_positive, default=12, help="how many flipped examples to list")
    summary.add_argument("--stream", default=argparse.SUPPRESS,
                         help="attention stream of an encoder-decoder model (default: the first)")
    summary.set_defaults(handler=summary_command)

    export = commands.add_parser(
        "export",
        help="write attention, tokens and predictions to .npz or .json",
        description=_describe("Write a run's attention (per example: [steps, layers, heads, tokens, tokens]), "
                              "texts (and text pairs), tokens, word and segment ids, logits and stored per-head "
                              "summaries to a NumPy .npz archive or a JSON file, for other tools. The .npz opens "
                              "with np.load(path), no pickle needed."),
        formatter_class=HelpFormatter,
        epilog=textwrap.dedent("""\
            examples:
              attnflows export demo_runs/sweep/lr0.0001 --format npz
              attnflows export RUN --format json --steps first,last --examples 0-3,10 -o small.json
              attnflows export RUN --format json --no-attention -o - | jq .predictions
            """),
    )
    _add_run_dir(export)
    export.add_argument("--format", choices=("npz", "json"), required=True, help="output format")
    export.add_argument("--steps", default="all",
                        help="comma-separated snapshot steps, ranges (100-500) and first/last; default: all")
    export.add_argument("--examples", default="all",
                        help="comma-separated probe example indices and ranges (0-3); default: all")
    export.add_argument("-o", "--output", default=None,
                        help="output file (default: <run name>.<format> in the current folder); - for stdout (json)")
    export.add_argument("--stream", default=None, help="export only this attention stream; default: all")
    export.add_argument("--no-attention", action="store_true", help="leave the attention tensors out")
    export.set_defaults(handler=export_command)

    verify = commands.add_parser(
        "verify",
        help="recompute a snapshot from a saved checkpoint and compare (exit status 1 if it differs)",
        description=_describe("Load a checkpoint (a Hugging Face checkpoint-N directory, or a Lightning .ckpt), "
                              "feed it the probe inputs stored in the run, and print the max difference per "
                              "attention stream and for the logits against the snapshot at the checkpoint's "
                              "optimizer step. Exit status 0 within the encoding's error, 1 beyond it, 2 when the "
                              "two cannot be compared. See attnflows_callback/verify.py for the model factory."),
        formatter_class=HelpFormatter,
    )
    _add_run_dir(verify)
    verify.add_argument("--checkpoint", required=True, help="Hugging Face checkpoint directory or Lightning .ckpt")
    verify.add_argument("--step", type=int, default=None,
                        help="snapshot step to compare with (default: the step the checkpoint was saved at)")
    verify.add_argument("--model-factory", default=None, metavar="MODULE:FUNCTION",
                        help="for a .ckpt: a function returning the LightningModule its state_dict loads into "
                             "(default: the run's model class from run.json, found under any key prefix)")
    verify.add_argument("--atol", type=float, default=1e-4, help="float slack on top of the encoding's error")
    verify.set_defaults(handler=verify_command)

    demo = commands.add_parser(
        "demo",
        usage="%(prog)s [-h] [--logdir LOGDIR] [--host HOST] [--port PORT] [--tasks TASK [TASK ...]]\n"
              "                      [--no-train] [--no-serve] [-- SWEEP_OPTION ...]",
        help="fine-tune the real MiniLM on sentiment and on entailment pairs, then show it in TensorBoard",
        description=_describe("What `make demo` runs: examples/sweep.py fine-tunes the pre-trained MiniLM on the "
                              "bundled sentiment data at three learning rates and on the bundled entailment "
                              "pairs (premise and hypothesis) at one, one TensorBoard run each with its hparams; "
                              "then TensorBoard starts on this machine with the Attention Flows tab. "
                              "Calling it again adds new runs beside the old ones. Options after `--` go to "
                              "every examples/sweep.py call (see `python examples/sweep.py --help`)."),
        formatter_class=HelpFormatter,
    )
    demo.add_argument("--logdir", default=DEMO_LOGDIR, help="TensorBoard log directory for the demo runs")
    demo.add_argument("--host", default="127.0.0.1", help="address TensorBoard listens on")
    demo.add_argument("--port", type=_positive, default=DEMO_PORT,
                      help="TensorBoard port (the next free one if taken)")
    demo.add_argument("--tasks", nargs="+", choices=list(DEMO_TASKS), default=list(DEMO_TASKS), metavar="TASK",
                      help=f"bundled tasks to fine-tune on, one sweep each: {', '.join(DEMO_TASKS)} "
                           "(default: all)")
    demo.add_argument("--no-train", action="store_true", help="skip the sweep: only serve what the logdir holds")
    demo.add_argument("--no-serve", action="store_true", help="run the sweep, then exit without TensorBoard")
    demo.set_defaults(handler=demo_command)

    from .explain import add_parser as add_explain_parser  # the command's logic lives in explain.py

    add_explain_parser(commands, HelpFormatter)
    return parser


def _describe(text: str) -> str:
    return textwrap.fill(text, width=88)


def _add_run_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a recorded run: its TensorBoard run folder")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``attnflows`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:  # `attnflows demo ... -- --max-steps 20`: the rest goes to the sweep
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    if passthrough and args.command != "demo":
        build_parser().error(f"only `demo` takes options after --, got {' '.join(passthrough)}")
    args.passthrough = passthrough
    try:
        return args.handler(args)
    except CLIError as err:
        return _fail(str(err))
    except OSError as err:  # a file that vanished or cannot be read mid-command
        name = Path(err.filename).name if getattr(err, "filename", None) else ""
        return _fail(f"{name + ': ' if name else ''}{err.strerror or err}")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `attnflows summary RUN | head`
        sys.stderr.close()
        return 0


def _fail(message: str) -> int:
    print(f"attnflows: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


# ---------------------------------------------------------------- opening runs
def open_checked(run_dir: str):
    """The :class:`~attnflows_callback.reader.Run` at ``run_dir``, or a one-line :class:`CLIError`."""
    from .reader import NotARunError, open_run

    path = Path(run_dir)
    if not path.exists():
        raise CLIError(f"{run_dir}: no such file or directory")
    try:
        run = open_run(path)
    except NotARunError as err:
        inside = _runs_inside(path)
        if inside:
            names = ", ".join(inside[:5]) + (f" and {len(inside) - 5} more" if len(inside) > 5 else "")
            raise CLIError(f"{run_dir} is a log directory, not a run; pass one of its runs: {names}") from None
        raise CLIError(str(err)) from None
    except OSError as err:
        raise CLIError(f"{run_dir}: cannot read the run ({err.strerror or type(err).__name__})") from None
    if len(run.steps) == 0:
        status = run.status.get("status", "unknown")
        run.close()
        problems = f"; {len(run.problems)} unreadable snapshot file(s)" if run.problems else ""
        raise CLIError(f"{run_dir} is an empty run: no snapshots recorded (status: {status}{problems})")
    return run


def _runs_inside(path: Path, depth: int = 3) -> list[str]:
    """Runs (folders holding ``attnflows/run.json``) under ``path``, as relative names."""
    if not path.is_dir():
        return []
    found = []
    for root, dirs, _ in os.walk(path):
        rel = Path(root).relative_to(path)
        if len(rel.parts) >= depth:
            dirs.clear()
            continue
        if (Path(root) / "attnflows" / "run.json").is_file():
            found.append(str(rel))
            dirs.clear()
        dirs.sort()
    return found


def failure_note(run) -> str | None:
    """One line saying the run failed, or None when it did not."""
    status = run.status
    if status.get("status") != "failed":
        return None
    last = status.get("last_step")
    at = f" after step {last}" if last is not None else ""
    return f"run {run.run_dir.name} failed{at}; the summary above shows the {len(run.steps)} snapshot(s) it recorded"


# ---------------------------------------------------------------- verify
def verify_command(args) -> int:
    from .verify import VerifyError, verify_checkpoint

    try:
        result = verify_checkpoint(args.run_dir, args.checkpoint, step=args.step, model_factory=args.model_factory,
                                   atol=args.atol)
    except (VerifyError, ValueError) as err:
        raise CLIError(str(err)) from None
    print(result.report())
    return 0 if result.passed else 1


# ---------------------------------------------------------------- summary
def summary_command(args) -> int:
    with open_checked(args.run_dir) as run:
        stream = _stream(run, getattr(args, "stream", None))
        print(format_summary(run, stream=stream, heads=args.heads, by=args.by, flips=args.flips,
                             width=shutil.get_terminal_size((100, 24)).columns))
        note = failure_note(run)
    if note:
        return _fail(note)
    return 0


def format_summary(run, *, stream: str | None = None, heads: int = 8, by: str = "js", flips: int = 12,
                   width: int = 100) -> str:
    """The text of ``attnflows summary``: header, timeline, most-changed heads, flipped examples."""
    stream = _stream(run, stream)
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
    from .analysis import summary_timeline_change

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
    from .analysis import most_changed_heads

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
    from .analysis import head_change, summary_timeline_change

    stream = _stream(run, stream)
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
    from .analysis import prediction_flips

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
        return _ellipsis(run.texts[i], width)
    half = max(8, (width - 4) // 2)
    return f"{_ellipsis(run.texts[i], half)} || {_ellipsis(run.text_pairs[i], half)}"


def _stream(run, stream: str | None) -> str:
    if stream is not None and stream not in run.streams:
        raise CLIError(f"stream must be one of {run.streams}, got {stream!r}")
    return stream or run.default_stream


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
    return _ellipsis(text, 32)


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# ---------------------------------------------------------------- export
def export_command(args) -> int:
    with open_checked(args.run_dir) as run:
        steps = parse_steps(args.steps, run.steps)
        examples = parse_examples(args.examples, run.num_examples)
        streams = [_stream(run, args.stream)] if args.stream else run.streams
        data = export_data(run, steps, examples, streams, attention=not args.no_attention)
        output = args.output or f"{run.run_dir.name}.{args.format}"
        if output == "-":
            if args.format != "json":
                raise CLIError("only --format json can go to stdout (-o -); give a file name for npz")
            json.dump(_to_json(data), sys.stdout)
            sys.stdout.write("\n")
        else:
            _write_atomically(Path(output), data, args.format)
            print(f"wrote {output}: {len(steps)} step(s) x {len(examples)} example(s)"
                  + ("" if args.no_attention else f", streams {', '.join(streams)}"), file=sys.stderr)
        note = failure_note(run)
    if note:
        return _fail(note.replace("the summary above shows", "exported"))
    return 0


def parse_steps(text: str, available: np.ndarray) -> list[int]:
    """``all``, or comma-separated steps, ``A-B`` ranges (recorded steps inside) and ``first``/``last``."""
    recorded = [int(s) for s in available]
    if text.strip() == "all":
        return recorded
    chosen: list[int] = []
    for part in _parts(text, "--steps"):
        if part in ("first", "last"):
            chosen.append(recorded[0] if part == "first" else recorded[-1])
        elif "-" in part:
            low, high = _range(part, "--steps")
            inside = [s for s in recorded if low <= s <= high]
            if not inside:
                raise CLIError(f"--steps {part}: no snapshot in that range (steps: {_list(recorded)})")
            chosen.extend(inside)
        else:
            step = _int(part, "--steps")
            if step not in recorded:
                raise CLIError(f"--steps: step {step} was not recorded (steps: {_list(recorded)})")
            chosen.append(step)
    return sorted(set(chosen))


def parse_examples(text: str, count: int) -> list[int]:
    """``all``, or comma-separated probe example indices and ``A-B`` ranges (inclusive)."""
    if text.strip() == "all":
        return list(range(count))
    chosen: list[int] = []
    for part in _parts(text, "--examples"):
        low, high = _range(part, "--examples") if "-" in part else (_int(part, "--examples"),) * 2
        if not 0 <= low <= high < count:
            raise CLIError(f"--examples {part}: the probe set has examples 0 to {count - 1}")
        chosen.extend(range(low, high + 1))
    return sorted(set(chosen))


def export_data(run, steps: list[int], examples: list[int], streams: list[str], *, attention: bool = True) -> dict:
    """Flat ``{name: array}`` of what ``attnflows export`` writes (no object arrays: ``np.load`` needs no pickle).

    Per example ``i``: ``attention/<stream>/<i>`` float32 ``[steps, layers, heads, Tq, Tk]``,
    ``tokens/<i>``, ``word_ids/<i>``, ``sequence_ids/<i>`` (0 text, 1 text pair, -1 special token),
    the other fed inputs such as ``token_type_ids/<i>`` (and ``decoder_tokens/<i>`` for encoder-decoder
    models); ``text_pairs`` beside ``texts`` for a sentence-pair probe. Per step: ``logits`` ``[steps, examples, classes]``,
    ``predictions``, ``summary/<stream>/<metric>`` ``[steps, examples, layers, heads]``.
    """
    data: dict[str, np.ndarray] = {
        "steps": np.asarray(steps, dtype=np.int64),
        "examples": np.asarray(examples, dtype=np.int64),
        "texts": np.asarray([run.texts[i] for i in examples], dtype=str),
        **({} if run.text_pairs is None else
           {"text_pairs": np.asarray([run.text_pairs[i] for i in examples], dtype=str)}),
        "meta": np.asarray(json.dumps({"run": run.run_dir.name, "status": run.status, **run.meta})),
    }
    if run.labels is not None:
        data["labels"] = np.asarray([run.labels[i] for i in examples], dtype=np.int64)
    if run.label_names:
        data["label_names"] = np.asarray(run.label_names, dtype=str)
    logits = [run.logits(step) for step in steps]
    if all(value is not None for value in logits):
        data["logits"] = np.stack([value[examples] for value in logits]).astype(np.float32)
        data["predictions"] = data["logits"].argmax(axis=-1)
    rows = [int(np.searchsorted(run.steps, step)) for step in steps]  # steps are recorded ones, sorted
    for stream in streams:
        for metric in sorted({m for step in steps for m in run.summary(step, stream)}):
            _, values = run.summary_timeline(metric, stream)
            data[f"summary/{stream}/{metric}"] = values[rows][:, examples]
    for i in examples:
        data[f"tokens/{i}"] = np.asarray(run.tokens(i), dtype=str)
        if "decoder" in run.streams:  # encoder-decoder: the decoder reads its own (shifted) tokens
            data[f"decoder_tokens/{i}"] = np.asarray(run.tokens(i, "decoder"), dtype=str)
        word_ids = run.word_ids(i)
        if word_ids is not None:
            data[f"word_ids/{i}"] = np.asarray(word_ids, dtype=np.int64)
        sequence_ids = run.sequence_ids(i)
        if sequence_ids is not None:  # which segment each token is from: 0 text, 1 text pair, -1 special
            data[f"sequence_ids/{i}"] = np.asarray(sequence_ids, dtype=np.int64)
        for name, values in run.model_inputs(i).items():  # what the model was fed, segment ids included
            if name != "input_ids":
                data[f"{name}/{i}"] = np.asarray(values, dtype=np.int64)
        if attention:
            for stream in streams:
                data[f"attention/{stream}/{i}"] = np.stack([run.attention(i, step, stream) for step in steps])
    return data


def _to_json(data: dict) -> dict:
    """The JSON form: the same names, arrays as nested lists (floats rounded to 6 digits), meta as an object."""
    out = {}
    for name, value in data.items():
        if name == "meta":
            out[name] = json.loads(str(value))
        elif np.issubdtype(value.dtype, np.floating):
            out[name] = np.where(np.isnan(value), None, np.round(value.astype(np.float64), 6)).tolist()
        else:
            out[name] = value.tolist()
    return out


def _write_atomically(path: Path, data: dict, fmt: str) -> None:
    if path.is_dir():
        raise CLIError(f"--output {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise CLIError(f"--output {path}: folder {path.parent} does not exist")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as f:
            if fmt == "npz":
                np.savez_compressed(f, **data)
            else:
                f.write(json.dumps(_to_json(data)).encode("utf-8"))
        os.replace(temporary, path)
    except OSError as err:
        raise CLIError(f"cannot write {path}: {err.strerror or type(err).__name__}") from None
    finally:
        if temporary.exists():
            temporary.unlink()


def _parts(text: str, flag: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise CLIError(f"{flag} is empty; give numbers like 0,10,20 or a range like 0-100")
    return parts


def _range(part: str, flag: str) -> tuple[int, int]:
    low, _, high = part.partition("-")
    low, high = _int(low, flag), _int(high, flag)
    if low > high:
        raise CLIError(f"{flag} {part}: the range is backwards")
    return low, high


def _int(text: str, flag: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CLIError(f"{flag}: expected an integer, a range like 0-100, first or last; got {text!r}") from None
    if value < 0:
        raise CLIError(f"{flag}: expected a non-negative integer, got {value}")
    return value


def _list(values: list[int]) -> str:
    return ", ".join(map(str, values)) if len(values) <= 8 else f"{values[0]}, {values[1]}, ..., {values[-1]}"


# ---------------------------------------------------------------- demo
def demo_command(args) -> int:
    # A `kill` of the demo raises SystemExit, so the sweep or TensorBoard child is stopped too.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return _demo(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _demo(args) -> int:
    logdir = Path(args.logdir)
    if not args.no_train:
        sweep = find_sweep_script()
        for task in dict.fromkeys(args.tasks):  # in the order given, each once
            command = [sys.executable, str(sweep), *DEMO_TASKS[task], "--logdir", str(logdir), *args.passthrough]
            shown = " ".join(["examples/sweep.py", *command[2:]])
            print(f"attnflows demo: fine-tuning on {task} ({shown})", flush=True)
            code = subprocess.call(command)
            if code != 0:
                raise CLIError(f"the demo fine-tuning on {task} failed (examples/sweep.py exited with status "
                               f"{code}); see above")
    if args.no_serve:
        print(f"runs are in {logdir}; view them with: tensorboard --logdir {logdir}")
        return 0
    if not logdir.is_dir():
        raise CLIError(f"{logdir} does not exist: nothing to show (run the demo without --no-train first)")
    return serve(logdir, args.host, args.port)


def find_sweep_script() -> Path:
    """``examples/sweep.py`` of the source checkout: in the current folder, else beside the package."""
    checkout = Path(__file__).resolve().parent.parent
    candidates = [Path.cwd() / "examples" / "sweep.py", checkout / "examples" / "sweep.py"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CLIError("attnflows demo needs examples/sweep.py from a source checkout of attnflows; "
                   "run it in the repository folder (make demo)")


def serve(logdir: Path, host: str, port: int, *, ready_timeout: float = 120.0) -> int:
    """Run TensorBoard on ``logdir`` until Ctrl-C, printing the Attention Flows URL once it answers."""
    port = free_port(host, port)
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", host,
               "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + ready_timeout
        while not _answers(host, port):
            if process.poll() is not None:
                raise CLIError(f"TensorBoard exited with status {process.returncode} before it served; see above")
            if time.monotonic() > deadline:
                raise CLIError(f"TensorBoard did not answer on {host}:{port} within {ready_timeout:.0f} s")
            time.sleep(0.25)
        shown = "localhost" if host in ("127.0.0.1", "::1", "localhost") else host
        print(f"Attention Flows: http://{shown}:{port}/#{_plugin_name()}", flush=True)
        print("TensorBoard is running; press Ctrl-C to stop it.", flush=True)
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def free_port(host: str, start: int, tries: int = 50) -> int:
    """The first port from ``start`` that nothing listens on (a second demo gets the next one)."""
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise CLIError(f"no free port on {host} in {start}-{start + tries - 1}; pass --port")


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _plugin_name() -> str:
    try:
        from attnflows_tb.metadata import PLUGIN_NAME
    except ImportError:
        return "attnflows"
    return PLUGIN_NAME


if __name__ == "__main__":
    sys.exit(main())

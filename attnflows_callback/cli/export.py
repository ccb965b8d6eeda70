"""``attnflows export RUN_DIR --format npz|json``: attention, tokens, logits and summaries for other tools."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np

from .common import CLIError, HelpFormatter, add_run_dir, checked_stream, describe, fail, failure_note, open_checked


def add_parser(commands) -> None:
    """Register ``export``."""
    export = commands.add_parser(
        "export",
        help="write attention, tokens and predictions to .npz or .json",
        description=describe("Write a run's attention (per example: [steps, layers, heads, tokens, tokens]), "
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
    add_run_dir(export)
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


def export_command(args) -> int:
    with open_checked(args.run_dir) as run:
        steps = parse_steps(args.steps, run.steps)
        examples = parse_examples(args.examples, run.num_examples)
        streams = [checked_stream(run, args.stream)] if args.stream else run.streams
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
        return fail(note.replace("the summary above shows", "exported"))
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

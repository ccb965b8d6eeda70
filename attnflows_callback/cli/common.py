"""What every ``attnflows`` command shares: the help format, one-line errors, opening a run."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

from ..schema import DATA_DIRNAME, RUN_JSON

EXIT_ERROR = 2


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help keeps line breaks in descriptions and shows the defaults worth showing."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class CLIError(Exception):
    """A problem to report in one line (exit status 2), never with a traceback."""


def describe(text: str) -> str:
    return textwrap.fill(text, width=88)


def add_run_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a recorded run: its TensorBoard run folder")


def fail(message: str) -> int:
    print(f"attnflows: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def open_checked(run_dir: str):
    """The :class:`~attnflows_callback.reader.Run` at ``run_dir``, or a one-line :class:`CLIError`."""
    from ..reader import NotARunError, open_run

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
        if (Path(root) / DATA_DIRNAME / RUN_JSON).is_file():
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


def checked_stream(run, stream: str | None) -> str:
    if stream is not None and stream not in run.streams:
        raise CLIError(f"stream must be one of {run.streams}, got {stream!r}")
    return stream or run.default_stream


def ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."

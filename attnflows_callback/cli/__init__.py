"""The ``attnflows`` command: summarise and export recorded runs, and run the demo.

    attnflows summary RUN_DIR                 steps, probe accuracy, most-changed heads, flipped examples
    attnflows export RUN_DIR --format npz     attention, tokens, logits and summaries for other tools
    attnflows explain RUN_DIR --example I     why an example's prediction flipped (see explain.py)
    attnflows demo                            fine-tune MiniLM on sentiment (three learning rates) and on
                                              entailment pairs, then start TensorBoard
    attnflows verify RUN_DIR --checkpoint P   recompute a snapshot from a saved checkpoint (exit 1 if it differs)

Errors (a path that is not a run, a run with no snapshots, a failed run, a step that was not
recorded) are one line on stderr and exit status 2; a failed run is still summarised first.
The maths comes from :mod:`attnflows_callback.analysis`; these modules only read and print. One
module per command (``summary``, ``export``, ``verify``, ``demo`` and its TensorBoard
``server``; ``explain`` lives in :mod:`attnflows_callback.explain`), each with its
``add_parser``; :mod:`.common` holds what they share.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import demo, export, summary, verify
from .common import EXIT_ERROR, CLIError, HelpFormatter, fail, open_checked  # noqa: F401  (public names)
from .export import export_data, parse_examples, parse_steps  # noqa: F401
from .server import free_port, serve  # noqa: F401
from .summary import format_summary, head_change_since_start, probe_accuracy  # noqa: F401

__all__ = ["EXIT_ERROR", "CLIError", "build_parser", "export_data", "format_summary", "free_port",
           "head_change_since_start", "main", "open_checked", "parse_examples", "parse_steps", "probe_accuracy",
           "serve"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnflows",
        description="Inspect attention recorded by attnflows during fine-tuning.",
        epilog="Run `attnflows COMMAND --help` for the options of one command.",
        formatter_class=HelpFormatter,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"attnflows {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for command in (summary, export, verify, demo):
        command.add_parser(commands)
    from ..explain import add_parser as add_explain_parser  # the command's logic lives in explain.py

    add_explain_parser(commands, HelpFormatter)
    return parser


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
        return fail(str(err))
    except OSError as err:  # a file that vanished or cannot be read mid-command
        name = Path(err.filename).name if getattr(err, "filename", None) else ""
        return fail(f"{name + ': ' if name else ''}{err.strerror or err}")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `attnflows summary RUN | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

"""``attnflows demo``: fine-tune the real MiniLM on the bundled tasks (examples/sweep.py), then serve TensorBoard."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from .common import CLIError, HelpFormatter, describe, positive
from .server import exit_on_sigterm, serve

DEMO_LOGDIR = "demo_runs"
DEMO_PORT = 6006
# Bundled task -> the examples/sweep.py options the demo gives it (before the user's, which win).
DEMO_TASKS = {
    "sentiment": [],  # the sweep's own three learning rates: single sentences
    # One sentence-pair run. Pairs need more steps than single sentences: at 1e-4, 80 steps of 16
    # left dev accuracy at 0.58 (docs/examples.md).
    "entailment": ["--task", "entailment", "--lrs", "1e-4", "--max-steps", "200", "--snapshot-every", "20", "--save-model"],
}


def add_parser(commands) -> None:
    """Register ``demo``."""
    demo = commands.add_parser(
        "demo",
        usage="%(prog)s [-h] [--logdir LOGDIR] [--host HOST] [--port PORT] [--tasks TASK [TASK ...]]\n"
              "                      [--no-train] [--no-serve] [-- SWEEP_OPTION ...]",
        help="fine-tune the real MiniLM on sentiment and on entailment pairs, then show it in TensorBoard",
        description=describe("What `make demo` runs: examples/sweep.py fine-tunes the pre-trained MiniLM on the "
                              "bundled sentiment data at three learning rates and on the bundled entailment "
                              "pairs (premise and hypothesis) at one, one TensorBoard run each with its hparams; "
                              "then TensorBoard starts on this machine with the Attention Flows tab. "
                              "Calling it again adds new runs beside the old ones. Options after `--` go to "
                              "every examples/sweep.py call (see `python examples/sweep.py --help`)."),
        formatter_class=HelpFormatter,
    )
    demo.add_argument("--logdir", default=DEMO_LOGDIR, help="TensorBoard log directory for the demo runs")
    demo.add_argument("--host", default="127.0.0.1", help="address TensorBoard listens on")
    demo.add_argument("--port", type=positive, default=DEMO_PORT,
                      help="TensorBoard port (the next free one if taken)")
    demo.add_argument("--tasks", nargs="+", choices=list(DEMO_TASKS), default=list(DEMO_TASKS), metavar="TASK",
                      help=f"bundled tasks to fine-tune on, one sweep each: {', '.join(DEMO_TASKS)} "
                           "(default: all)")
    demo.add_argument("--no-train", action="store_true", help="skip the sweep: only serve what the logdir holds")
    demo.add_argument("--no-serve", action="store_true", help="run the sweep, then exit without TensorBoard")
    demo.set_defaults(handler=demo_command)


def demo_command(args) -> int:
    # A `kill` of the demo raises SystemExit, so the sweep or TensorBoard child is stopped too.
    previous = signal.signal(signal.SIGTERM, exit_on_sigterm)
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
    checkout = Path(__file__).resolve().parents[2]
    candidates = [Path.cwd() / "examples" / "sweep.py", checkout / "examples" / "sweep.py"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CLIError("attnflows demo needs examples/sweep.py from a source checkout of attnflows; "
                   "run it in the repository folder (make demo)")

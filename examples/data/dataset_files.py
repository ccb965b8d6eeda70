"""The command line every bundled data generator shares: write its files, check them, print stats.

A generator (``make_sentiment.py``, ``make_entailment.py``) supplies ``make_all()`` (split name ->
examples), ``render(splits)`` (file name -> text) and ``stats_markdown(splits)``; this module
turns them into ``--out``, ``--check`` and ``--stats``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def main(argv, *, description: str, script: str, make_all: Callable[[], dict], render: Callable[[dict], dict],
         stats_markdown: Callable[[dict], str], stats_help: str) -> int:
    """Parse ``argv`` and write (or check) the generator's files next to ``script``; returns the exit status."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=Path(script).resolve().parent,
                        help="directory to write to (default: next to this script)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the files on disk differ from what would be written")
    parser.add_argument("--stats", action="store_true", help=stats_help)
    args = parser.parse_args(argv)

    splits = make_all()
    files = render(splits)
    if args.check:
        stale = [n for n, content in files.items()
                 if not (args.out / n).exists() or (args.out / n).read_bytes() != content.encode("ascii")]
        if stale:
            print(f"out of date: {', '.join(stale)}; run {Path(script).name}", file=sys.stderr)
            return 1
        print("dataset files are up to date")
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (args.out / name).write_bytes(content.encode("ascii"))
        print(", ".join(f"{name}: {len(examples)}" for name, examples in splits.items()))
    if args.stats:
        print(stats_markdown(splits))
    return 0

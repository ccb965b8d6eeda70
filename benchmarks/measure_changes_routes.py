"""What the tab's what-changed routes cost, each against the existing route it is closest to.

On a recorded run (the real MiniLM fine-tuned on the bundled sentiment data), cold attention
cache each time (a fresh ``AttentionCache``), median of paired A/B timings in one process:

- ``/lifetimes`` (the raw trace at every snapshot, example 0, last step) vs one ``/flow`` trace;
  the ratio should be about the number of snapshots traced (at most MAX_LIFETIME_STEPS);
- ``/aggregate`` over all examples vs ``/heads`` averaged over all examples (the head grid);
- ``/explain`` of example 0 at the last step vs ``/compare`` with the example (the overlay's trace).

    python examples/plain_loop.py --logdir /tmp/runs --run-name minilm --eval-size 0   # ~2-5 min CPU
    python benchmarks/measure_changes_routes.py /tmp/runs/minilm [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Figure, median, paired, report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from attnflows_tb import api, changes
    from attnflows_tb.runs import AttentionCache, RunCache

    entry = RunCache().get(Path(args.run_dir))
    run = entry.run
    steps = [int(s) for s in run.steps]
    last = steps[-1]
    name = run.run_dir.name
    pairs = {
        "lifetimes": (lambda: changes.lifetimes_impl(name, entry, AttentionCache(), example=0, step=last),
                      lambda: api.flow_impl(name, entry, AttentionCache(), example=0, step=last, method="trace",
                                            view="raw"),
                      "one /flow trace"),
        "aggregate (all examples)": (lambda: changes.aggregate_impl(name, entry, step=last),
                                     lambda: api.heads_impl(name, entry, AttentionCache(), step=last),
                                     "/heads over all examples"),
        "explain (example 0)": (lambda: changes.explain_impl(name, entry, example=0, step=last),
                                lambda: api.compare_impl(name, entry, name, entry, AttentionCache(), step=last,
                                                         other_step=steps[max(0, len(steps) - 2)], example=0),
                                "/compare with its trace"),
    }
    shape = run.stream_shape(run.default_stream)
    note = f"{name}: {run.num_examples} examples, {len(steps)} snapshots, {shape[0]} layers x {shape[1]} heads"
    figures = []
    for label, (route, baseline, baseline_name) in pairs.items():
        times, base = paired(route, baseline, repeats=args.repeats)
        figures.append(Figure("changes_routes", f"{label} time", median(times), "s", median(base), baseline_name,
                              note=note))
    report(figures)


if __name__ == "__main__":
    main()

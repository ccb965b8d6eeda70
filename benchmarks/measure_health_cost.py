"""What attention health adds to the writer thread: AttentionHealth.observe vs snapshot_summaries.

Both run on the recorder's writer thread (never on the training thread). On a recorded run's
first and last snapshots (e.g. the real MiniLM on the bundled 64-example probe), this times the
summaries the writer already computes, then the health scalars on top, in the same process, and
prints the ratio; it also prints what the health scalars say about that run.

    python benchmarks/measure_health_cost.py RUN_DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attnflows_callback import open_run  # noqa: E402
from attnflows_callback.health import AttentionHealth, special_masks  # noqa: E402
from attnflows_callback.recorder import snapshot_summaries  # noqa: E402


def best_of(repeats: int, call) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    run = open_run(args.run_dir)
    first, last = int(run.steps[0]), int(run.steps[-1])
    reference = {"self": [run.attention(i, first).astype(np.float64) for i in range(run.num_examples)]}
    current = {"self": [run.attention(i, last).astype(np.float64) for i in range(run.num_examples)]}
    masks = special_masks([run.tokens(i) for i in range(run.num_examples)],
                          [run.word_ids(i) for i in range(run.num_examples)])
    summaries = snapshot_summaries(current, reference)
    health = AttentionHealth(masks)
    health.observe(first, reference, snapshot_summaries(reference, reference), reference)  # the step-0 baseline
    summary_time = best_of(args.repeats, lambda: snapshot_summaries(current, reference))
    health_time = best_of(args.repeats, lambda: health.observe(last, current, summaries, reference))
    print(f"run {run.run_dir.name}: {run.num_examples} examples, steps {first} and {last}")
    print(f"snapshot_summaries (baseline, already on the writer thread): {summary_time * 1e3:.1f} ms")
    print(f"AttentionHealth.observe (added): {health_time * 1e3:.1f} ms  ratio {health_time / summary_time:.3f}x")
    scalars = health.observe(last, current, summaries, reference)
    start = health.observe(first, reference, snapshot_summaries(reference, reference), reference)
    layers = sorted({name.rsplit("_", 1)[-1] for name in scalars})
    print("\n| layer | special mass, step first -> last | collapsed heads | spread-out heads |")
    print("|---|---|---|---|")
    for layer in layers:
        key = f"layer_{layer}"
        print(f"| {int(layer)} | {start[f'health/special_mass/{key}']:.3f} -> {scalars[f'health/special_mass/{key}']:.3f} "
              f"| {scalars[f'health/collapsed_heads/{key}']:.0f} | {scalars[f'health/spread_heads/{key}']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

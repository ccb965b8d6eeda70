"""Plot the [CLS] attention rollout of one probe example before and after fine-tuning (needs matplotlib).

Reads a recorded run with ``open_run`` and computes everything with ``attnflows_callback.analysis``;
word pieces are merged back into words. This is the figure in docs/notebooks.md.

    pip install 'attnflows[notebook]'                 # matplotlib
    python examples/plot_rollout.py demo_runs/sweep-*/lr0.0001-seed0 --example 1 -o rollout.png
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def word_rollout(run, example: int, step: int) -> tuple[list[str], np.ndarray]:
    """(words, word-level rollout ``[W, W]`` of the top layer) of one example at one step."""
    from attnflows_callback.analysis import merge_word_pieces, rollout, word_units

    tokens, word_ids = run.tokens(example), run.word_ids(example)
    words = ["".join(tokens[p].removeprefix("##") for p in unit) for unit in word_units(word_ids)]
    return words, merge_word_pieces(rollout(run.attention(example, step))[-1], word_ids)


def plot(run, example: int, steps: tuple[int, int]):
    """A figure: the word-level rollout at two steps, and what [CLS] draws from each word at both."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import PowerNorm

    (words, before), (_, after) = (word_rollout(run, example, step) for step in steps)
    figure = plt.figure(figsize=(11, 7.5), layout="constrained")
    grid = figure.add_gridspec(2, 2, height_ratios=[3, 2])
    norm = PowerNorm(0.5, vmin=0, vmax=max(before.max(), after.max()))  # square-root scale: small weights show
    for column, (step, matrix) in enumerate(zip(steps, (before, after))):
        axes = figure.add_subplot(grid[0, column])
        image = axes.imshow(matrix, cmap="viridis", norm=norm)
        axes.set_xticks(range(len(words)), words, rotation=90, fontsize=8)
        axes.set_yticks(range(len(words)), words, fontsize=8)
        axes.set_title(f"rollout, step {step}" + (" (pre-trained)" if step == 0 else ""))
        axes.set_xlabel("input word")
    figure.colorbar(image, ax=figure.axes, shrink=0.6, label="rollout (square-root scale)")
    # [CLS] mostly draws on itself; the bars show the words only, where fine-tuning moves mass.
    shown = [k for k, word in enumerate(words) if not (word.startswith("[") and word.endswith("]"))]
    bars = figure.add_subplot(grid[1, :])
    x = np.arange(len(shown))
    bars.bar(x - 0.2, before[0, shown], width=0.4, label=f"step {steps[0]}", color="#9e9e9e")
    bars.bar(x + 0.2, after[0, shown], width=0.4, label=f"step {steps[1]}", color="#d95f02")
    bars.set_xticks(x, [words[k] for k in shown], rotation=45, ha="right", fontsize=9)
    bars.set_ylabel("[CLS] rollout mass")
    bars.set_title("what [CLS] at the top layer draws from each word")
    bars.legend()
    label = f" (label: {run.label_names[run.labels[example]]})" if run.labels and run.label_names else ""
    figure.suptitle(f"\u201c{run.texts[example]}\u201d{label}", fontsize=11)
    return figure


def main(argv=None) -> int:
    from attnflows_callback import NotARunError, open_run

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a recorded run (a TensorBoard run folder)")
    p.add_argument("--example", type=int, default=0, help="probe example index")
    p.add_argument("--steps", type=int, nargs=2, default=None, metavar=("BEFORE", "AFTER"),
                   help="the two snapshot steps (default: the first and the last)")
    p.add_argument("-o", "--output", default="rollout.png", help="image file to write")
    args = p.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        p.error("matplotlib is not installed: pip install 'attnflows[notebook]'")
    try:
        run = open_run(args.run_dir)
    except NotARunError as err:
        p.error(str(err))
    with run:
        if not 0 <= args.example < run.num_examples:
            p.error(f"--example must be in [0, {run.num_examples}), got {args.example}")
        steps = tuple(args.steps or (int(run.steps[0]), int(run.steps[-1])))
        missing = [s for s in steps if s not in run.steps]
        if missing:
            p.error(f"step {missing[0]} was not recorded (steps: {run.steps.tolist()})")
        plot(run, args.example, steps).savefig(args.output, dpi=110)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

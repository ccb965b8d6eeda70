"""Fine-tune the same model at several learning rates (and seeds): one TensorBoard run each, with its hparams.

This is what `make demo` / `attnflows demo` trains. The runs land in one folder per sweep,
``<logdir>/sweep-<time>/lr<lr>-seed<seed>`` (``sweep-entailment-<time>`` with ``--task entailment``),
so a second sweep sits beside the first. Compare them in the Attention Flows tab (pick two runs)
and in TensorBoard's HParams dashboard.

    python examples/sweep.py                          # lr 2e-5, 1e-4, 3e-4 on the real MiniLM, a few minutes on CPU
    python examples/sweep.py --task entailment --lrs 1e-4   # the bundled premise/hypothesis pairs
    python examples/sweep.py --lrs 5e-5 1e-4 --seeds 0 1
    tensorboard --logdir demo_runs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` and `plain_loop` sit beside this script

import common  # noqa: E402
import plain_loop  # noqa: E402

EXAMPLE = "sweep"
DEFAULT_LRS = (2e-5, 1e-4, 3e-4)  # too low to learn much in 80 steps, about right, aggressive
DEFAULT_SEEDS = (0,)


def main(argv=None) -> int:
    p = common.parser(__doc__, single_run=False)
    p.add_argument("--lrs", type=float, nargs="+", default=list(DEFAULT_LRS), metavar="LR",
                   help="learning rates, one run each")
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS), metavar="SEED",
                   help="seeds, one run per learning rate and seed")
    args = common.parse_args(p, argv)
    bad = [lr for lr in args.lrs if lr <= 0]
    if bad:
        p.error(f"--lrs must all be > 0, got {bad[0]}")

    task = f"-{args.task}" if args.dataset is None and args.task != "sentiment" else ""
    group = common.new_run_dir(args.logdir, EXAMPLE + task)
    settings = [(lr, seed) for seed in args.seeds for lr in args.lrs]
    data_by_seed = {}
    results = []
    for k, (lr, seed) in enumerate(settings, 1):
        print(f"[{k}/{len(settings)}] lr={lr:g} seed={seed}", flush=True)
        run_args = argparse.Namespace(**{**vars(args), "lr": lr, "seed": seed})
        if seed not in data_by_seed:  # user data is split by seed; the bundled data is the same for all
            data_by_seed[seed] = common.load_data(run_args)
        run_dir = group / f"lr{lr:g}-seed{seed}"
        run_dir.mkdir()
        result = plain_loop.fine_tune(run_args, run_dir=run_dir, example=EXAMPLE, data=data_by_seed[seed],
                                      extra_hparams={"sweep": group.name})
        results.append((lr, seed, result))

    print(f"\nsweep {group}")
    print(f"  {'lr':>8} {'seed':>5} {'final loss':>11} {'dev accuracy':>13}  run")
    for lr, seed, result in results:
        loss = "" if result.final_loss is None else f"{result.final_loss:.4f}"
        accuracy = "" if result.dev_accuracy is None else f"{result.dev_accuracy:.3f}"
        print(f"  {lr:>8g} {seed:>5} {loss:>11} {accuracy:>13}  {result.run_dir.name}")
    print(f"view: tensorboard --logdir {args.logdir}   (Attention Flows tab; HParams to compare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

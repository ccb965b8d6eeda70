"""Fine-tune a classifier in a hand-written PyTorch loop and record its attention with AttentionRecorder.

The recorder needs three calls: build it before training, ``snapshot(step)`` at step 0 and
whenever you like after an optimizer step, and ``close()`` (here: the ``with`` block).

    python examples/plain_loop.py                     # the real MiniLM on the bundled data, ~1-2 min on CPU
    python examples/plain_loop.py --lr 5e-5 --max-steps 200
    python examples/plain_loop.py --task entailment     # premise/hypothesis pairs (segment ids and all)
    python examples/plain_loop.py --dataset reviews.csv --text-column review --label-column stars
    tensorboard --logdir demo_runs                    # then open the Attention Flows tab
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` sits beside this script

import common  # noqa: E402

EXAMPLE = "plain_loop"


@dataclass
class Result:
    run_dir: Path
    dev_accuracy: float | None
    final_loss: float | None


def fine_tune(args, *, run_dir: Path | None = None, example: str = EXAMPLE, data: common.Data | None = None,
              extra_hparams: dict | None = None) -> Result:
    """Fine-tune ``args.model`` as ``args`` say, recording attention into a new run folder (or ``run_dir``)."""
    import torch
    from torch.utils.tensorboard import SummaryWriter
    from transformers import get_linear_schedule_with_warmup

    from attnflows_callback import AttentionRecorder
    from attnflows_callback.schedule import SnapshotSchedule

    data = data or common.load_data(args)
    tokenizer, model = common.load_model(args.model, data.num_labels, args.seed)
    train = common.EncodedDataset(data.train, tokenizer, args.max_length)
    loader = common.train_loader(train, tokenizer, args.batch_size, args.seed)
    steps = common.total_steps(args, len(train))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, common.warmup_steps(steps), steps)
    schedule = SnapshotSchedule(every_n_steps=args.snapshot_every, log_per_decade=None)

    run_dir = run_dir or common.new_run_dir(args.logdir, common.run_name(args, example))
    hparams = {**common.hparams(args, example, steps), **(extra_hparams or {})}
    loss_log = SummaryWriter(str(run_dir), filename_suffix=".train")  # the loss sits beside the attention
    loss_value = None
    with AttentionRecorder(model, tokenizer, data.probe, run_dir, hparams=hparams) as recorder, \
            common.progress(steps, run_dir.name, disable=args.no_progress) as bar:
        recorder.snapshot(0)  # the pre-trained attention: every later snapshot is compared with it
        model.train()
        step = 0
        while step < steps:
            for batch in loader:
                loss = model(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                step += 1
                loss_value = loss.item()
                loss_log.add_scalar("train/loss", loss_value, step)
                if schedule.is_scheduled_step(step) or step == steps:
                    recorder.snapshot(step)
                bar.set_postfix(loss=f"{loss_value:.3f}")
                bar.update()
                if step == steps:
                    break
    loss_log.close()
    common.save_model(args, model, tokenizer, run_dir, step)
    accuracy = common.dev_accuracy(model, tokenizer, data.dev)
    return Result(run_dir=run_dir, dev_accuracy=accuracy, final_loss=loss_value)


def main(argv=None) -> int:
    p = common.parser(__doc__)
    args = common.parse_args(p, argv)
    result = fine_tune(args)
    common.report(result.run_dir, result.dev_accuracy, args.logdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

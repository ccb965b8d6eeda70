"""Fine-tune a classifier with the Hugging Face Trainer and record its attention with AttentionFlowsTrainerCallback.

The callback is one entry in ``Trainer(callbacks=[...])``: the tokenizer comes from
``processing_class``, and the snapshots go to the Trainer's TensorBoard run (here
``$TENSORBOARD_LOGGING_DIR``, set to a fresh folder of ``--logdir``), next to the loss.

    python examples/hf_trainer_finetune.py            # the real MiniLM on the bundled data, ~1-2 min on CPU
    python examples/hf_trainer_finetune.py --epochs 1 --batch-size 32
    tensorboard --logdir demo_runs                    # then open the Attention Flows tab
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` sits beside this script

import common  # noqa: E402

EXAMPLE = "hf_trainer"


def main(argv=None) -> int:
    args = common.parse_args(common.parser(__doc__), argv)  # before the heavy imports: --help is instant

    import torch
    from transformers import Trainer, TrainingArguments

    from attnflows_callback.hf import AttentionFlowsTrainerCallback

    data = common.load_data(args)
    tokenizer, model = common.load_model(args.model, data.num_labels, args.seed)
    train = common.EncodedDataset(data.train, tokenizer, args.max_length)
    steps = common.total_steps(args, len(train))

    run_dir = common.new_run_dir(args.logdir, common.run_name(args, EXAMPLE))
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir)  # the Trainer's TensorBoard run: loss and attention together
    callback = AttentionFlowsTrainerCallback(
        data.probe,
        every_n_steps=args.snapshot_every,
        log_per_decade=None,
        hparams=common.hparams(args, EXAMPLE, steps),
    )
    with tempfile.TemporaryDirectory(prefix="attnflows-hf-") as output_dir:  # nothing is saved there
        training_args = TrainingArguments(
            output_dir=output_dir,
            max_steps=steps,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr,
            weight_decay=0.01,
            lr_scheduler_type="linear",
            warmup_steps=common.warmup_steps(steps),
            max_grad_norm=1.0,
            seed=args.seed,
            data_seed=args.seed,
            logging_steps=5,
            report_to="tensorboard",
            save_strategy="no",
            disable_tqdm=args.no_progress,
            log_level="error",
            dataloader_drop_last=len(train) > args.batch_size,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=train,
            data_collator=common.collator(tokenizer),
            processing_class=tokenizer,
            callbacks=[callback],
        )
        trainer.train()
    common.save_model(args, model, tokenizer, Path(callback.run_dir or run_dir), trainer.state.global_step)
    common.report(Path(callback.run_dir or run_dir), common.dev_accuracy(model, tokenizer, data.dev), args.logdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

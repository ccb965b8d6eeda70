"""Fine-tune a classifier with Lightning and record its attention with AttentionFlowsCallback.

The callback is one line in ``Trainer(callbacks=...)``: it finds the Hugging Face model inside the
LightningModule and its ``tokenizer`` attribute, and writes into the logger's run folder, next
to the loss.

    python examples/lightning_finetune.py             # the real MiniLM on the bundled data, ~1-2 min on CPU
    python examples/lightning_finetune.py --epochs 1 --lr 5e-5
    tensorboard --logdir demo_runs                    # then open the Attention Flows tab
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` sits beside this script

import common  # noqa: E402

EXAMPLE = "lightning"


def build_module(model, tokenizer, lr: float, steps: int):
    """A LightningModule around a Hugging Face classifier (AdamW, linear warm-up and decay per step)."""
    import lightning.pytorch as L
    import torch
    from transformers import get_linear_schedule_with_warmup

    class Classifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model.train()  # from_pretrained returns it in eval mode
            self.tokenizer = tokenizer  # AttentionFlowsCallback finds the tokenizer here

        def training_step(self, batch, batch_idx):
            loss = self.model(**batch).loss
            self.log("train/loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=0.01)
            scheduler = get_linear_schedule_with_warmup(optimizer, common.warmup_steps(steps), steps)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    return Classifier()


def main(argv=None) -> int:
    args = common.parse_args(common.parser(__doc__), argv)  # before the heavy imports: --help is instant

    import lightning.pytorch as L
    from lightning.pytorch.callbacks import TQDMProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger

    from attnflows_callback.lightning import AttentionFlowsCallback

    warnings.filterwarnings("ignore", ".*does not have many workers.*")  # tiny tokenised batches: 0 workers is right
    data = common.load_data(args)
    tokenizer, model = common.load_model(args.model, data.num_labels, args.seed)
    train = common.EncodedDataset(data.train, tokenizer, args.max_length)
    loader = common.train_loader(train, tokenizer, args.batch_size, args.seed)
    steps = common.total_steps(args, len(train))

    run_dir = common.new_run_dir(args.logdir, common.run_name(args, EXAMPLE))
    # name="" and version=<folder>: the logger writes straight into run_dir, beside earlier runs.
    logger = TensorBoardLogger(save_dir=str(run_dir.parent), name="", version=run_dir.name, default_hp_metric=False)
    callback = AttentionFlowsCallback(
        data.probe,
        every_n_steps=args.snapshot_every,
        log_per_decade=None,
        hparams=common.hparams(args, EXAMPLE, steps),
    )
    trainer = L.Trainer(
        max_steps=steps,
        max_epochs=math.ceil(steps / len(loader)),
        logger=logger,
        callbacks=[callback, TQDMProgressBar()] if not args.no_progress else [callback],
        enable_checkpointing=False,  # a demo: 90 MB checkpoints would cost more time than the training
        enable_progress_bar=not args.no_progress,
        enable_model_summary=False,
        gradient_clip_val=1.0,
        log_every_n_steps=5,
        num_sanity_val_steps=0,
    )
    trainer.fit(build_module(model, tokenizer, args.lr, steps), loader)
    common.save_model(args, model, tokenizer, Path(callback.run_dir or run_dir), trainer.global_step)
    common.report(Path(callback.run_dir or run_dir), common.dev_accuracy(model, tokenizer, data.dev), args.logdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

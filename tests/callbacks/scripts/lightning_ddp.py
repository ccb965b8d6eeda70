"""Fit the tiny BERT under Lightning DDP on CPU (2 processes, gloo) with AttentionFlowsCallback."""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

import lightning.pytorch as L  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from attnflows_callback.lightning import AttentionFlowsCallback  # noqa: E402
from tests.callbacks._models import LitClassifier, loader  # noqa: E402
from tests.helpers import probe_set  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--strategy", choices=["ddp", "ddp_spawn"], required=True)
    opts = parser.parse_args()
    callback = AttentionFlowsCallback(probe_set(), every_n_steps=2, log_per_decade=None, at_epoch_ends=False)
    trainer = L.Trainer(default_root_dir=opts.root, accelerator="cpu", devices=2, strategy=opts.strategy, callbacks=callback,
                        max_steps=5, max_epochs=2, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, num_sanity_val_steps=0)
    trainer.fit(LitClassifier(), loader(16))


if __name__ == "__main__":
    main()

"""Fit the tiny BERT with sharded parameters on CPU (2 processes, gloo) with AttentionFlowsCallback.

``--sharding fsdp2``: Lightning's ``ModelParallelStrategy``, ``fully_shard`` on each layer and the
model. ``--sharding fsdp1``: Lightning's ``FSDPStrategy``, which Lightning allows on GPUs only, so
a two-line subclass wraps on the CPU instead. At the end, rank zero saves the full trained
weights to ``<root>/final_weights.pt``, for the test to check the last snapshot against.
"""

import argparse
import datetime
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

import lightning.pytorch as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy  # noqa: E402
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict  # noqa: E402
from torch.distributed.fsdp import FullyShardedDataParallel, fully_shard  # noqa: E402
from transformers.models.bert.modeling_bert import BertLayer  # noqa: E402

torch.set_num_threads(1)

from attnflows_callback.lightning import AttentionFlowsCallback  # noqa: E402
from tests.callbacks._models import LitClassifier, loader  # noqa: E402
from tests.helpers import probe_set  # noqa: E402

TIMEOUT = datetime.timedelta(seconds=60)  # a rank that waits alone fails the test instead of hanging it


class ShardedClassifier(LitClassifier):
    def configure_model(self):
        if isinstance(self.trainer.strategy, ModelParallelStrategy):
            mesh = self.device_mesh["data_parallel"]
            for layer in self.model.bert.encoder.layer:
                fully_shard(layer, mesh=mesh)
            fully_shard(self.model, mesh=mesh)


class CPUFSDPStrategy(FSDPStrategy):
    """Lightning's FSDPStrategy, wrapping on the CPU (it passes ``device_id=None`` there, which FSDP refuses)."""

    def _setup_model(self, model):
        if not any(isinstance(m, FullyShardedDataParallel) for m in model.modules()):
            model = FullyShardedDataParallel(model, sharding_strategy=self.sharding_strategy,
                                             device_id=torch.device("cpu"), **self.kwargs)
            self.kwargs.pop("auto_wrap_policy", None)
        return super()._setup_model(model)


class SaveFinalWeights(L.Callback):
    """Gathers the full weights on every rank (a collective) and saves them on rank zero."""

    def __init__(self, path):
        self.path = path

    def on_train_end(self, trainer, pl_module):
        if isinstance(trainer.strategy.model, FullyShardedDataParallel):
            state = get_model_state_dict(trainer.strategy.model, options=StateDictOptions(full_state_dict=True))
            state = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
        else:
            state = get_model_state_dict(pl_module.model, options=StateDictOptions(full_state_dict=True,
                                                                                   cpu_offload=True))
        if trainer.is_global_zero:
            torch.save(state, self.path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--sharding", choices=["fsdp1", "fsdp2"], required=True)
    opts = parser.parse_args()
    if opts.sharding == "fsdp2":
        strategy = ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1, timeout=TIMEOUT)
    else:
        strategy = CPUFSDPStrategy(auto_wrap_policy={BertLayer}, process_group_backend="gloo", timeout=TIMEOUT)
    callbacks = [AttentionFlowsCallback(probe_set(), every_n_steps=2, log_per_decade=None, at_epoch_ends=False),
                 SaveFinalWeights(os.path.join(opts.root, "final_weights.pt"))]
    trainer = L.Trainer(default_root_dir=opts.root, accelerator="cpu", devices=2, strategy=strategy,
                        callbacks=callbacks, max_steps=5, max_epochs=2, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0)
    trainer.fit(ShardedClassifier(), loader(16))


if __name__ == "__main__":
    main()

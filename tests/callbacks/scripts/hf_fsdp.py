"""Train the tiny BERT with the transformers Trainer, parameters sharded, with AttentionFlowsTrainerCallback.

Run under ``torchrun --nproc_per_node N``. ``--sharding``:

- ``native``: ``from_pretrained(distributed_config=DistributedConfig(fsdp_size=N))``, transformers'
  own FSDP2 (``fully_shard`` on each ``BertLayer`` and the model); it runs on CPU with gloo. The
  Trainer sees the model is sharded and neither wraps it in DDP nor shards it again.
- ``fsdp2`` / ``fsdp1``: ``TrainingArguments(fsdp=True, fsdp_config={"version": ...})``, sharded by
  accelerate. Accelerate enables FSDP on accelerator devices only (on CPU it falls back to DDP),
  so these need CUDA.
- ``zero3``: ``TrainingArguments(deepspeed={ZeRO stage 3})``; needs DeepSpeed, whose CPU
  accelerator (``DS_ACCELERATOR=cpu``, gloo) runs it without a GPU.

Rank zero prints which sharding the model had when training began (``sharded: FSDP2 units: ...``),
and, at the end, saves the full trained weights to ``<out>/final_weights.pt`` (a collective: every
rank gathers).
"""

import argparse
import datetime
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

torch.set_num_threads(1)

from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict  # noqa: E402
from transformers import AutoModelForSequenceClassification, TrainerCallback  # noqa: E402

from attnflows_callback.hf import AttentionFlowsTrainerCallback  # noqa: E402
from attnflows_callback.sharding import is_global_rank_zero, sharding_of  # noqa: E402
from tests.callbacks._models import hf_args, hf_model, hf_train  # noqa: E402
from tests.helpers import probe_set  # noqa: E402

TIMEOUT = datetime.timedelta(seconds=60)  # a rank that waits alone fails the test instead of hanging it


class ReportSharding(TrainerCallback):
    """Rank zero prints how the model the Trainer trains is sharded; at the end every rank gathers the weights."""

    def __init__(self, path):
        self.path = path

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if is_global_rank_zero():  # not state.is_world_process_zero: under DeepSpeed on CPU every rank says it is
            from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

            units = [name or "<root>" for name, m in model.named_modules()
                     if isinstance(m, (FSDPModule, FullyShardedDataParallel))]
            print(f"sharded: {sharding_of(model)} units: {units}", flush=True)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if sharding_of(model) == "DeepSpeed ZeRO-3":
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(model.parameters())):
                weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if is_global_rank_zero():
            torch.save({k.removeprefix("_fsdp_wrapped_module."): v for k, v in weights.items()}, self.path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--sharding", choices=["native", "fsdp1", "fsdp2", "zero3"], required=True)
    opts = parser.parse_args()
    world = int(os.environ["WORLD_SIZE"])
    callbacks = [AttentionFlowsTrainerCallback(probe_set(), every_n_steps=2, log_per_decade=None, at_epoch_ends=False),
                 ReportSharding(os.path.join(opts.out, "final_weights.pt"))]
    cuda = torch.cuda.is_available()
    if opts.sharding == "native":
        from transformers.distributed import DistributedConfig

        torch.distributed.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
        saved = os.path.join(opts.out, "initial_model")
        if int(os.environ["RANK"]) == 0:
            hf_model().save_pretrained(saved)
        torch.distributed.barrier()
        config = DistributedConfig(fsdp_size=world, fsdp_plan={"bert.encoder.layer.*": "free_full_weight"})
        model = AutoModelForSequenceClassification.from_pretrained(saved, distributed_config=config)
        args = hf_args(opts.out, max_steps=5, use_cpu=not cuda, ddp_backend=None if cuda else "gloo")
    elif opts.sharding == "zero3":
        if not cuda:
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        zero3 = {"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": "auto",
                 "gradient_accumulation_steps": "auto", "zero_allow_untested_optimizer": True}
        model = hf_model()
        args = hf_args(opts.out, max_steps=5, use_cpu=False, deepspeed=zero3, ddp_timeout=int(TIMEOUT.total_seconds()))
    else:
        fsdp_config = {"version": 2 if opts.sharding == "fsdp2" else 1, "transformer_layer_cls_to_wrap": ["BertLayer"]}
        model = hf_model()
        args = hf_args(opts.out, max_steps=5, use_cpu=False, fsdp=True, fsdp_config=fsdp_config,
                       ddp_timeout=int(TIMEOUT.total_seconds()))
    hf_train(model, args, callbacks)


if __name__ == "__main__":
    main()

"""A hand-written loop under FSDP2 (``fully_shard``, 2 CPU processes, gloo) that builds an
AttentionRecorder on rank zero only: refused with a clear error instead of a hang.

Run under ``torchrun --nproc_per_node 2``; rank zero prints the error.
"""

import argparse
import datetime
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.distributed.fsdp import fully_shard  # noqa: E402

torch.set_num_threads(1)

from attnflows_callback import AttentionRecorder  # noqa: E402
from tests.helpers import probe_set, tiny_model, tokenizer  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    opts = parser.parse_args()
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    try:
        model = tiny_model("bert", layers=2, heads=2, hidden=16)
        for layer in model.bert.encoder.layer:
            fully_shard(layer)
        fully_shard(model)
        if dist.get_rank() == 0:
            try:
                AttentionRecorder(model, tokenizer(), probe_set(), opts.out)
            except ValueError as err:
                print(f"refused: {err}")
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()

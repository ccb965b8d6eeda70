"""Train the tiny BERT with the transformers Trainer and AttentionFlowsTrainerCallback.

Run plainly or under ``torchrun --nproc_per_node 2``. ``--fail-at N`` raises at optimizer
step N from a callback, uncaught, so the process dies of it.
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

torch.set_num_threads(1)

from attnflows_callback.hf import AttentionFlowsTrainerCallback  # noqa: E402
from tests.callbacks._models import FailAt, hf_args, hf_model, hf_train  # noqa: E402
from tests.helpers import probe_set  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--fail-at", type=int)
    opts = parser.parse_args()
    callbacks = [AttentionFlowsTrainerCallback(probe_set(), every_n_steps=2, log_per_decade=None, at_epoch_ends=False)]
    if opts.fail_at is not None:
        callbacks.append(FailAt(opts.fail_at))
    args = hf_args(opts.out, max_steps=5, report_to="tensorboard", ddp_backend="gloo" if "RANK" in os.environ else None)
    hf_train(hf_model(), args, callbacks)


if __name__ == "__main__":
    main()

"""The callback tests train tiny models: one intra-op thread is faster than two fighting over two cores."""

import torch

torch.set_num_threads(1)

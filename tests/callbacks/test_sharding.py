"""Which models are sharded, and how every rank joins their probe pass (attnflows_callback.sharding).

One process, a one-rank gloo group: real FSDP1 and FSDP2 wrapping. The passes across two ranks are
tested with real processes in test_distributed.py.
"""

import contextlib
import datetime

import pytest
import torch
import torch.distributed as dist
from torch.distributed.fsdp import FullyShardedDataParallel, fully_shard
from transformers.models.bert.modeling_bert import BertLayer

from attnflows_callback.capture import find_pretrained_model
from attnflows_callback.sharding import broadcast_from_rank_zero, joint_probing, sharded_across_ranks, sharding_of
from tests.callbacks.test_distributed import free_port
from tests.helpers import tiny_model


@pytest.fixture
def one_rank():
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1,
                            timeout=datetime.timedelta(seconds=30))
    try:
        yield
    finally:
        dist.destroy_process_group()


class Holder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, **inputs):
        return self.model(**inputs)


def fsdp1(model):
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    return FullyShardedDataParallel(model, auto_wrap_policy=ModuleWrapPolicy({BertLayer}), device_id=torch.device("cpu"))


def test_an_unsharded_model_needs_no_joint_pass():
    model = tiny_model("bert")
    assert sharding_of(model) is None and joint_probing(model, model) is None


def test_fsdp2_units_gather_in_the_probe_forward_so_nothing_is_summoned(one_rank):
    model = tiny_model("bert")
    for layer in model.bert.encoder.layer:
        fully_shard(layer)
    fully_shard(model)
    probing = joint_probing(model, model)
    assert sharding_of(model) == "FSDP2" and probing.gathered is contextlib.nullcontext
    with probing.gathered():
        assert all(isinstance(p, torch.distributed.tensor.DTensor) for p in model.parameters())  # still sharded
    assert probing.agree(True) is True and probing.agree(False) is False


def test_fsdp1_units_around_the_model_have_their_own_parameters_summoned(one_rank):
    wrapped = fsdp1(tiny_model("bert"))
    model = find_pretrained_model(wrapped)
    probing = joint_probing(wrapped, model)
    assert sharding_of(wrapped) == "FSDP1"
    with probing.gathered():
        from torch.distributed.fsdp._common_utils import TrainingState

        assert wrapped.training_state == TrainingState.SUMMON_FULL_PARAMS  # the root unit, around the model
        assert all(layer.training_state == TrainingState.IDLE  # the inner units gather in their own forward
                   for layer in wrapped.modules() if isinstance(layer, FullyShardedDataParallel) and layer is not wrapped)


def test_an_fsdp2_unit_wrapped_around_the_model_is_refused_with_the_fix(one_rank):
    model = tiny_model("bert")
    holder = Holder(model)  # a LightningModule, say
    fully_shard(holder)
    with pytest.raises(ValueError, match="apply fully_shard to the Hugging Face model"):
        joint_probing(holder, model)


def test_one_rank_is_not_sharded_across_ranks_and_answers_itself(one_rank):
    model = tiny_model("bert")
    fully_shard(model)
    assert not sharded_across_ranks(model)  # one rank: a probe pass on it alone waits for nobody
    assert broadcast_from_rank_zero(True) is True

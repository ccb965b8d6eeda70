"""Sharded training: how every rank joins the probe pass when no rank holds the whole model.

Under FSDP (FSDP1 ``FullyShardedDataParallel``, FSDP2 ``fully_shard``) and DeepSpeed ZeRO-3,
a probe forward is a collective: each unit gathers its parameters from all ranks. So every
rank makes every probe pass, in the same order, on the writer's word, and only the writer
keeps the result (:class:`~attnflows_callback.timeline.SnapshotTimeline` does the passes; see
docs/distributed.md). This module says whether a model is sharded and builds the
:class:`ShardedProbing` the trainer callbacks hand the timeline: one rule for Lightning and
the transformers Trainer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

SHARDINGS = ("FSDP1", "FSDP2", "DeepSpeed ZeRO-3")


@dataclass(frozen=True)
class ShardedProbing:
    """How the ranks of a sharded run make each probe pass together.

    Args:
        agree: takes the writer rank's yes/no and returns it on every rank (a broadcast
            from rank zero), so that no rank enters a probe pass alone.
        gathered: a context manager, entered by every rank around each pass, that makes
            the parameters the probe forward needs available (FSDP1: the own parameters of
            the units that wrap the Hugging Face model, which its forward never gathers).
    """

    agree: Callable[[bool], bool]
    gathered: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


def sharding_of(module: nn.Module) -> str | None:
    """Which of :data:`SHARDINGS` shards ``module``'s parameters, or None (whole on every rank).

    Read from the module itself, at any world size: FSDP units among its submodules, or
    parameters that DeepSpeed ZeRO-3 converted (they carry a ``ds_id``).

    Example:
        >>> import torch
        >>> sharding_of(torch.nn.Linear(2, 2)) is None
        True
    """
    from torch.distributed.fsdp import FullyShardedDataParallel

    fsdp2 = _fsdp2_class()
    for unit in module.modules():
        if isinstance(unit, FullyShardedDataParallel):
            return "FSDP1"
        if fsdp2 is not None and isinstance(unit, fsdp2):
            return "FSDP2"
    if any(hasattr(parameter, "ds_id") for parameter in module.parameters()):
        return "DeepSpeed ZeRO-3"
    return None


def sharded_across_ranks(module: nn.Module) -> bool:
    """True when ``module`` is sharded (:func:`sharding_of`) and ``torch.distributed`` runs more than one rank.

    Then a probe forward is a collective: a recorder on one rank alone would wait for ever.
    """
    dist = _distributed()
    return dist is not None and dist.get_world_size() > 1 and sharding_of(module) is not None


def joint_probing(root: nn.Module, model: nn.Module, agree: Callable[[bool], bool] | None = None
                  ) -> ShardedProbing | None:
    """How every rank joins the probe pass of ``model``, or None when ``root`` holds no sharded parameter.

    Args:
        root: the module the trainer trains (an FSDP1 wrapper, a LightningModule, the model).
        model: the Hugging Face model inside ``root`` whose forward the probe pass calls.
        agree: the broadcast from rank zero (default: :func:`broadcast_from_rank_zero`).

    Gathering: FSDP2 units and ZeRO-3 modules gather their parameters in their own forward,
    which the probe forward runs through. FSDP1 units that *wrap* ``model`` are skipped by
    it, so their own parameters (the embeddings, when only the layers are wrapped) are
    summoned around each pass, without recursing into the units inside: never the whole model.

    Raises:
        ValueError: an FSDP2 unit wraps ``model`` from outside; its forward would be skipped.
    """
    sharding = sharding_of(root)
    if sharding is None:
        return None
    agree = agree or broadcast_from_rank_zero
    if sharding == "FSDP2":
        above = _units_above(root, model, _fsdp2_class())
        if above:
            raise ValueError(
                f"fully_shard was applied to {type(above[0]).__name__}, around the Hugging Face model, so its "
                "parameters are gathered only by a forward the probe pass does not make; apply fully_shard to the "
                "Hugging Face model (and its layers) instead"
            )
    if sharding != "FSDP1":
        return ShardedProbing(agree)
    from torch.distributed.fsdp import FullyShardedDataParallel

    above = _units_above(root, model, FullyShardedDataParallel)

    @contextlib.contextmanager
    def gathered():
        with contextlib.ExitStack() as stack:
            for unit in above:  # outermost first
                stack.enter_context(FullyShardedDataParallel.summon_full_params(unit, writeback=False, recurse=False))
            yield

    return ShardedProbing(agree, gathered)


def is_global_rank_zero() -> bool:
    """True on ``torch.distributed``'s rank zero (or without ``torch.distributed``): the rank that
    :func:`broadcast_from_rank_zero` hears, hence the one that must write."""
    dist = _distributed()
    return dist is None or dist.get_rank() == 0


def broadcast_from_rank_zero(value: bool) -> bool:
    """Global rank zero's ``value``, on every rank (``torch.distributed.broadcast_object_list``)."""
    dist = _distributed()
    if dist is None:
        return bool(value)  # one process: it is rank zero
    box = [bool(value)]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def _units_above(root: nn.Module, model: nn.Module, unit_class) -> list[nn.Module]:
    """The modules of ``unit_class`` in ``root`` that contain ``model`` (``model`` excluded), outermost first."""
    if unit_class is None:
        return []
    names = {id(module): name for name, module in root.named_modules()}
    path = names.get(id(model))
    if path is None:
        return []
    return [module for name, module in root.named_modules() if module is not model and isinstance(module, unit_class)
            and (name == "" or path.startswith(name + "."))]


def _distributed():
    """``torch.distributed`` when a process group is initialised, else None (one process)."""
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def _fsdp2_class():
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # torch < 2.6 has no FSDP2
        return None
    return FSDPModule

"""``Reduction``: what of each attention tensor to keep (layers, heads, query rows, top k), for large models.

Applied on the model's device before the copy to host; docs/scaling.md says when each is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import checks
from .schema import SINGLE_STREAM

ROW_MODES = ("all", "cls")


@dataclass(frozen=True)
class Reduction:
    """What of each attention tensor to keep, applied on the model's device before the copy to host.

    Args:
        layers: layer indices to keep (every stream), or None for all.
        heads: head indices to keep, or None for all.
        rows: ``"all"``, or ``"cls"`` for the classification position's query row only
            (position 0 for encoders, the last real token for decoders).
        top_k: keep the k largest weights of each row and zero the rest, or None. With
            ``top_k >= 1/tau`` every edge of weight >= tau survives, so the Attention Flows
            trace at threshold tau is exact (a row summing to 1 has fewer than 1/tau such edges).

    See docs/scaling.md for when each is needed.
    """

    layers: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None
    rows: str = "all"
    top_k: int | None = None

    def __post_init__(self) -> None:
        for name in ("layers", "heads"):
            value = getattr(self, name)
            if value is not None:
                value = tuple(value)
                if not value or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
                    raise ValueError(f"{name} must be a non-empty list of non-negative integers or None, got {value!r}")
                if len(set(value)) != len(value):
                    raise ValueError(f"{name} must not repeat an index, got {value!r}")
                object.__setattr__(self, name, tuple(sorted(value)))
        if self.rows not in ROW_MODES:
            raise ValueError(f"rows must be one of {ROW_MODES}, got {self.rows!r}")
        checks.integer("top_k", self.top_k, none=True, allowed="an integer >= 1 or None")

    @property
    def is_identity(self) -> bool:
        return self.layers is None and self.heads is None and self.rows == "all" and self.top_k is None

    def describe(self) -> dict:
        return {"layers": self.layers and list(self.layers), "heads": self.heads and list(self.heads),
                "rows": self.rows, "top_k": self.top_k}

    def select_heads(self, per_head: np.ndarray) -> np.ndarray:
        """The kept layers and heads of a ``[..., L, H]`` array of per-head scalars."""
        if self.layers is not None:
            per_head = per_head[..., list(self.layers), :]
        if self.heads is not None:
            per_head = per_head[..., list(self.heads)]
        return per_head

    def apply(self, stacked: torch.Tensor, stream: str, lengths: list[int], classification_last: bool) -> torch.Tensor:
        """``stacked`` is ``[B, L, H, Tq, Tk]`` on the model's device."""
        if self.layers is not None:
            _check_indices(self.layers, stacked.shape[1], "layers", stream)
            stacked = stacked[:, list(self.layers)]
        if self.heads is not None:
            _check_indices(self.heads, stacked.shape[2], "heads", stream)
            stacked = stacked[:, :, list(self.heads)]
        if self.rows == "cls":
            last = stream in ("decoder", "cross") or (stream == SINGLE_STREAM and classification_last)
            rows = torch.tensor([n - 1 if last else 0 for n in lengths], device=stacked.device)
            index = rows.view(-1, 1, 1, 1, 1).expand(-1, *stacked.shape[1:3], 1, stacked.shape[-1])
            stacked = stacked.gather(3, index)
        if self.top_k is not None and self.top_k < stacked.shape[-1]:
            values, index = stacked.topk(self.top_k, dim=-1)
            stacked = torch.zeros_like(stacked).scatter_(-1, index, values)
        return stacked


def _check_indices(indices: tuple[int, ...], size: int, name: str, stream: str) -> None:
    if indices[-1] >= size:
        raise ValueError(f"{name} index {indices[-1]} is out of range: stream {stream!r} has {size} {name}")

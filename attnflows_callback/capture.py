"""One probe forward pass: real attention weights (and logits) from any Hugging Face model.

Under ``sdpa`` or flash attention, transformers 5.x returns no attention weights. The
probe pass therefore switches the model to ``eager`` for its duration and records the
weights with its own forward hooks on the attention modules that the model class
declares in ``_can_record_outputs``. It does not rely on transformers' per-instance
capture registry, so it also works on a model unpickled in a new process (``ddp_spawn``).

The pass feeds each example exactly what the tokenizer produced: ``input_ids``, an
all-ones ``attention_mask``, and every other tokenizer output that the model's
``forward`` names as a parameter (``token_type_ids`` for a BERT sentence pair), each
right-padded in a batch with its own pad value (``pad_token_type_id`` for segment ids).

What it needs to know of the model first (the ``PreTrainedModel`` inside a wrapper, its
attention modules and streams) is :mod:`attnflows_callback.model_inspection`'s.

Everything the pass touches is restored afterwards: the attention implementation,
each module's train/eval flag, grad mode and the CPU and CUDA RNG states. It runs
under ``torch.no_grad()``, so parameter gradients and optimizer state are never touched.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import checks
from .reduction import ROW_MODES, Reduction, _check_indices  # noqa: F401  (re-exported)
from .schema import ENCODER_DECODER_STREAMS, SINGLE_STREAM  # noqa: F401  (re-exported)
from .probe import TokenizedProbe
from .model_inspection import (  # noqa: F401  (re-exported)
    AttentionCaptureError,
    AttentionSite,
    attention_sites,
    check_tokenizer_fits,
    find_pretrained_model,
    is_decoder_only,
)



@dataclass(frozen=True)
class ProbeCapture:
    """What one probe pass recorded.

    ``attention[stream][i]`` is float32 ``[layers, heads, Tq_i, Tk_i]`` over the real
    (unpadded) tokens of example ``i``; ``logits`` is float32 ``[examples, classes]``
    when the model has a sequence-classification head, else ``None``.
    """

    attention: dict[str, list[np.ndarray]]
    logits: np.ndarray | None
    importance: dict[str, np.ndarray] | None = None  # per stream, float32 [examples, layers, heads]

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(self.attention)


def capture_probe(
    model: nn.Module,
    probe: TokenizedProbe,
    *,
    batch_size: int = 16,
    reduction: Reduction | None = None,
    classification_last: bool = False,
    labels: list[int] | None = None,
) -> ProbeCapture:
    """Run the probe set through ``model`` once and return its attention and logits.

    ``reduction`` keeps only part of each tensor (see :class:`Reduction`); it is applied
    on the model's device, before anything is copied to the host. ``classification_last``
    says where the classification position is for ``rows="cls"`` (decoder-only models).

    With ``labels`` (one class id per example) and a classification head, it also returns
    the gradient-based head importance of Michel et al. (2019), "Are Sixteen Heads Really
    Better than One?": ``I_h = |sum_ij A_h[i, j] * dL/dA_h[i, j]|`` per example, with L the
    cross-entropy of the probe labels. It equals ``|dL/dxi_h|`` for a mask ``xi_h`` scaling the
    head's output. The gradient is taken with ``torch.autograd.grad`` with respect to the
    attention tensors only, so parameter ``.grad`` fields are never touched.

    Example:
        >>> from transformers import BertConfig, BertForSequenceClassification
        >>> from attnflows_callback.probe import ProbeSet
        >>> cfg = BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        ...                  intermediate_size=16, vocab_size=30)
        >>> model = BertForSequenceClassification(cfg)
        >>> class Tok:  # the smallest tokenizer-like object, for the example only
        ...     name_or_path = "toy"
        ...     def __call__(self, text, pair=None, **kw):
        ...         return {"input_ids": [2] + [5 + len(w) % 20 for w in text.split()] + [3]}
        ...     def convert_ids_to_tokens(self, ids): return [str(i) for i in ids]
        >>> probe = ProbeSet(["a fine film", "dull"]).tokenize(Tok())
        >>> cap = capture_probe(model, probe)
        >>> cap.attention["self"][0].shape, cap.logits.shape
        ((2, 2, 5, 5), (2, 2))
    """
    checks.integer("batch_size", batch_size)
    model = find_pretrained_model(model)
    sites = attention_sites(model)
    streams = list(dict.fromkeys(site.stream for site in sites))
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    attention: dict[str, list[np.ndarray | None]] = {s: [None] * len(probe) for s in streams}
    logits: list[np.ndarray | None] = [None] * len(probe)
    importance: dict[str, list[np.ndarray | None]] = {s: [None] * len(probe) for s in streams}
    device = _device_of(model)
    want_importance = labels is not None and any(p.requires_grad for p in model.parameters())

    with _probe_mode(model):
        for batch in _batches(probe, batch_size, model.config):
            recorded: dict[str, list[torch.Tensor]] = {s: [] for s in streams}
            hooks = [
                site.module.register_forward_hook(_recorder(recorded[site.stream], site.index, keep_graph=want_importance))
                for site in sites
            ]
            try:
                inputs = _model_inputs(probe, batch, model, device, encoder_decoder)
                with torch.enable_grad() if want_importance else contextlib.nullcontext():
                    output = model(**inputs)
                    if want_importance:
                        for stream, scores in _head_importance(output, recorded, [labels[i] for i in batch]).items():
                            for row, i in enumerate(batch):
                                importance[stream][i] = scores[row]
            finally:
                for hook in hooks:
                    hook.remove()
            lengths = [len(probe.input_ids[i]) for i in batch]
            for stream, layers in recorded.items():
                if not layers:
                    raise AttentionCaptureError(
                        f"{type(model).__name__} produced no attention weights for stream {stream!r} even under "
                        "eager attention; it may not support output_attentions"
                    )
                stacked = torch.stack([w.detach() for w in layers], dim=1)  # [B, L, H, Tq, Tk]
                if reduction is not None and not reduction.is_identity:
                    stacked = reduction.apply(stacked, stream, lengths, classification_last)
                stacked = stacked.float().cpu().numpy()
                for row, (i, n) in enumerate(zip(batch, lengths)):
                    attention[stream][i] = np.ascontiguousarray(stacked[row, :, :, :n, :n])
            batch_logits = getattr(output, "logits", None)
            if isinstance(batch_logits, torch.Tensor) and batch_logits.ndim == 2:
                for row, i in enumerate(batch):
                    logits[i] = batch_logits[row].float().cpu().numpy()
    has_logits = all(x is not None for x in logits)
    kept_importance = {
        s: np.stack(v).astype(np.float32) for s, v in importance.items() if all(x is not None for x in v)
    }
    if kept_importance and reduction is not None and not reduction.is_identity:
        kept_importance = {s: reduction.select_heads(v) for s, v in kept_importance.items()}
    return ProbeCapture(
        attention={s: list(v) for s, v in attention.items()},
        logits=np.stack(logits).astype(np.float32) if has_logits else None,
        importance=kept_importance or None,
    )


class ProbePass:
    """The probe forward passes of one recording: what the recorder runs, and nothing else.

    The recorder makes these passes on the writer rank. Under sharded training (FSDP) each
    forward is a collective, so every other rank builds the same ``ProbePass`` and makes
    the very same passes, in the same order, through its shard of the model, and drops
    what they return.

    Args:
        model: a Hugging Face ``PreTrainedModel`` (or a module that holds one).
        probe: the tokenised probe set.
        batch_size: examples per probe forward batch.
        reduction: what of each attention tensor to keep (default: all of it).
        head_importance: also compute the gradient-based head importance, when the probe
            set has labels.

    Raises:
        ValueError: a tokenizer that does not fit the model.
        AttentionCaptureError: a model from which no attention can be had.
    """

    def __init__(self, model: nn.Module, probe: TokenizedProbe, *, batch_size: int = 16,
                 reduction: Reduction | None = None, head_importance: bool = False):
        self.model = find_pretrained_model(model)
        check_tokenizer_fits(self.model, probe)
        attention_sites(self.model)  # a model with no attention fails here, naming its class
        self.probe = probe
        self.batch_size = batch_size
        self.reduction = reduction or Reduction()
        self.head_importance = bool(head_importance) and probe.probe_set.labels is not None
        self.classification_last = is_decoder_only(self.model)

    def capture(self, probe: TokenizedProbe | None = None, batch_size: int | None = None) -> ProbeCapture:
        """Attention (reduced), logits and importance of ``probe`` (default: the whole probe set)."""
        probe = self.probe if probe is None else probe
        return capture_probe(self.model, probe, batch_size=batch_size or self.batch_size, reduction=self.reduction,
                             classification_last=self.classification_last,
                             labels=probe.probe_set.labels if self.head_importance else None)

    def stream_shapes(self) -> dict[str, dict]:
        """(layers, heads) stored per stream, from one tiny probe pass on the shortest example."""
        probe = self.probe
        shortest = min(range(len(probe)), key=lambda i: len(probe.input_ids[i]))
        one = probe.subset([shortest])
        full = capture_probe(self.model, one, batch_size=1)
        kept = self.capture(one, batch_size=1)
        shapes = {}
        for stream, weights in kept.attention.items():
            model_layers, model_heads = full.attention[stream][0].shape[:2]
            shapes[stream] = {
                "layers": int(weights[0].shape[0]),
                "heads": int(weights[0].shape[1]),
                "layer_ids": list(self.reduction.layers or range(model_layers)),
                "head_ids": list(self.reduction.heads or range(model_heads)),
                "rows": self.reduction.rows,
                "top_k": self.reduction.top_k,
            }
        return shapes


def _head_importance(output, recorded: dict[str, list[torch.Tensor]], labels: list[int]) -> dict[str, np.ndarray]:
    """Per stream ``[B, L, H]``: ``|sum(A * dL/dA)|`` over each head's map (Michel et al. 2019)."""
    logits = getattr(output, "logits", None)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or max(labels) >= logits.shape[1]:
        return {}
    tensors = [(stream, w) for stream, layers in recorded.items() for w in layers if w.requires_grad]
    if not tensors:
        return {}
    target = torch.tensor(labels, device=logits.device)
    loss = torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum")
    grads = torch.autograd.grad(loss, [w for _, w in tensors], allow_unused=True)
    scores: dict[str, list[torch.Tensor]] = {}
    for (stream, weights), grad in zip(tensors, grads):
        value = torch.zeros(weights.shape[:2], device=weights.device) if grad is None else (weights * grad).sum((-1, -2)).abs()
        scores.setdefault(stream, []).append(value.detach().float())
    return {stream: torch.stack(v, dim=1).cpu().numpy() for stream, v in scores.items()}  # [B, L, H]


def decoder_input_ids(model_config, input_ids: list[int]) -> list[int]:
    """The decoder inputs of the probe pass for encoder-decoder models: the input shifted right."""
    start = getattr(model_config, "decoder_start_token_id", None)
    if start is None:
        start = getattr(model_config, "pad_token_id", None) or 0
    return [int(start)] + list(input_ids[:-1])



# ---------------------------------------------------------------- internals
def _recorder(into: list, index: int, keep_graph: bool = False):
    def hook(module, args, output):
        weights = output[index] if isinstance(output, tuple) else output
        if isinstance(weights, torch.Tensor):
            into.append(weights if keep_graph else weights.detach())

    return hook


def _device_of(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _batches(probe: TokenizedProbe, batch_size: int, config) -> Iterator[list[int]]:
    """Indices of each batch, sorted by length to limit padding.

    A model with no pad token (GPT-2 as shipped) cannot locate the last real token of a
    padded row, so its batches hold only examples of equal length.
    """
    order = sorted(range(len(probe)), key=lambda i: (len(probe.input_ids[i]), i))
    equal_lengths_only = getattr(config, "pad_token_id", None) is None
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == batch_size or (equal_lengths_only and len(probe.input_ids[i]) != len(probe.input_ids[batch[0]]))):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _padded(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[k, : len(r)] = 1
    return ids.to(device), mask.to(device)


def fed_input_names(model: nn.Module, probe: TokenizedProbe) -> list[str]:
    """The tokenizer's extra inputs (``token_type_ids``, ...) that the probe pass feeds ``model``.

    Those its ``forward`` names as parameters: the rule the transformers Trainer applies to
    dataset columns, so the probe pass sees what training saw.
    """
    model = find_pretrained_model(model)
    accepted = inspect.signature(model.forward).parameters
    return [name for name in probe.extra_inputs if name in accepted
            and accepted[name].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]


def _model_inputs(probe: TokenizedProbe, batch: list[int], model, device, encoder_decoder: bool) -> dict:
    pad_id = getattr(model.config, "pad_token_id", None)
    pad_id = 0 if pad_id is None else int(pad_id)
    rows = [probe.input_ids[i] for i in batch]
    input_ids, attention_mask = _padded(rows, pad_id, device)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    for name in fed_input_names(model, probe):
        inputs[name] = _padded([probe.extra_inputs[name][i] for i in batch], probe.pad_values.get(name, 0), device)[0]
    if encoder_decoder:
        dec_ids, dec_mask = _padded([decoder_input_ids(model.config, r) for r in rows], pad_id, device)
        inputs.update(decoder_input_ids=dec_ids, decoder_attention_mask=dec_mask)
    return inputs


@contextlib.contextmanager
def _probe_mode(model: nn.Module):
    """Eager attention, eval mode, no grad; restores all of it and the RNG states on exit."""
    training_flags = [(m, m.training) for m in model.modules()]
    previous_impl = getattr(model.config, "_attn_implementation", None)
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    switch = previous_impl not in (None, "eager") and hasattr(model, "set_attn_implementation")
    try:
        if switch:
            model.set_attn_implementation("eager")
        model.eval()
        with torch.no_grad():
            yield
    finally:
        if switch:
            model.set_attn_implementation(previous_impl)
        for module, flag in training_flags:
            module.training = flag
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)

"""What the probe pass needs to know about a Hugging Face model before it runs it.

The ``PreTrainedModel`` inside any wrapper (DDP, a LightningModule), its attention modules
in forward order with their streams (from the ``_can_record_outputs`` its class declares),
whether it is a decoder-only language model, and whether a
tokenizer's ids fit its embedding table. :mod:`attnflows_callback.capture` runs the pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .probe import TokenizedProbe
from .schema import SINGLE_STREAM


class AttentionCaptureError(RuntimeError):
    """The model gives no attention weights that attnflows can record."""


@dataclass(frozen=True)
class AttentionSite:
    """A module whose forward output holds attention weights at ``index``, and its stream."""

    stream: str
    module: nn.Module
    index: int


def find_pretrained_model(model: nn.Module) -> nn.Module:
    """The Hugging Face ``PreTrainedModel`` inside ``model`` (DDP wrappers, LightningModules).

    Example:
        >>> from transformers import BertConfig, BertModel
        >>> bert = BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        ...                             intermediate_size=8, vocab_size=10))
        >>> wrapper = nn.Sequential(bert)
        >>> find_pretrained_model(wrapper) is bert
        True
    """
    from transformers import PreTrainedModel

    seen = model
    while not isinstance(seen, PreTrainedModel) and isinstance(getattr(seen, "module", None), nn.Module):
        seen = seen.module  # DistributedDataParallel, DataParallel, Lightning strategy wrappers
    if isinstance(seen, PreTrainedModel):
        return seen
    for child in model.modules():
        if isinstance(child, PreTrainedModel):
            return child
    raise AttentionCaptureError(
        f"{type(model).__name__} holds no Hugging Face PreTrainedModel; "
        "pass the transformers model itself (model=...) to record its attention"
    )


def attention_sites(model: nn.Module) -> list[AttentionSite]:
    """The attention modules of a Hugging Face model, in forward order, with their streams.

    Single-stack models (BERT, GPT-2, Llama, ...) have one stream, ``"self"``.
    Encoder-decoder models (T5, BART) have ``"encoder"``, ``"decoder"`` and ``"cross"``.
    """
    from transformers import PreTrainedModel

    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    sites: list[AttentionSite] = []

    def specs_of(submodel: nn.Module) -> list[tuple[str, object]]:
        from transformers.utils.output_capturing import OutputRecorder

        declared = getattr(type(submodel), "_can_record_outputs", None) or {}
        specs = []
        for key in ("attentions", "cross_attentions"):
            for spec in _as_list(declared.get(key)):
                if not isinstance(spec, OutputRecorder):
                    spec = OutputRecorder(target_class=spec, index=1)
                specs.append((key, spec))
        return specs

    def stream_of(key: str, name: str) -> str:
        if key == "cross_attentions":
            return "cross"
        if not encoder_decoder:
            return SINGLE_STREAM
        return "decoder" if ".decoder." in name + "." else "encoder"

    def walk(module: nn.Module, name: str, specs: list) -> None:
        for child_name, child in module.named_children():
            child_specs = specs_of(child) if isinstance(child, PreTrainedModel) else specs
            walk(child, f"{name}.{child_name}", child_specs)
        for key, spec in specs:
            if spec.target_class is None or not isinstance(module, spec.target_class):
                continue
            if spec.layer_name and f".{spec.layer_name.strip('.')}." not in name + ".":
                continue
            sites.append(AttentionSite(stream_of(key, name), module, spec.index))

    walk(model, "", specs_of(model))
    # Hooks fire in forward order; keep modules in registration order, which is layer order.
    order = {id(m): k for k, m in enumerate(model.modules())}
    sites.sort(key=lambda s: order[id(s.module)])
    if not sites:
        raise AttentionCaptureError(
            f"{type(model).__name__} declares no attention modules in _can_record_outputs, so attnflows "
            "cannot hook its attention; use a transformers model that supports output_attentions"
        )
    return sites


def is_decoder_only(model) -> bool:
    """True for decoder-only language models, whose classification position is the last real token."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return False
    return bool(getattr(config, "is_decoder", False)) or getattr(config, "model_type", "") in {
        "gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3", "phi", "phi3",
        "gemma", "gemma2", "gemma3", "falcon", "opt", "bloom", "olmo", "olmo2", "starcoder2", "smollm3",
    }


def check_tokenizer_fits(model: nn.Module, probe: TokenizedProbe) -> None:
    """Refuse a tokenizer whose ids the model's embedding table cannot hold."""
    model = find_pretrained_model(model)
    embeddings = model.get_input_embeddings()
    size = getattr(embeddings, "num_embeddings", None)
    if size is None:
        return
    largest = max(max(ids) for ids in probe.input_ids)
    if largest >= size:
        raise ValueError(
            f"the tokenizer ({probe.tokenizer_name}) produced token id {largest}, but {type(model).__name__} has "
            f"only {size} embeddings: the tokenizer does not fit the model; pass the tokenizer the model was trained with"
        )


# ---------------------------------------------------------------- internals
def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]

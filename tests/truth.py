"""The independent reference for "recorded = recomputed": one eager ``model(**tokenizer(text, pair))``.

Shared by the spec tests (tests/core/test_recorded_equals_recomputed.py) and the trainer
step-alignment tests. Nothing here calls attnflows: the reference must not share code
with what it checks.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import torch

PREMISES = [
    "a man is playing a guitar on the stage",
    "two dogs run",
    "the woman is reading a book in the quiet library",
    "children are playing football in the park",
]
HYPOTHESES = [
    "a person makes music",
    "the animals are asleep",
    "someone reads",
    "kids play a game outside on a sunny afternoon",
]
PAIR_LABELS = [1, 0, 1, 1]


def word_level_tokenizer(*, segment_ids: bool):
    """A real fast tokenizer built offline: lowercase words, ``a <sep> b </s>`` for a pair.

    With ``segment_ids`` it also returns ``token_type_ids`` (0 for the first segment and
    its separator, 1 for the second), as a BERT-style tokenizer does. Ids 0-4 are
    ``<pad> <unk> <s> </s> <sep>``; the vocabulary is the words of the probe texts, so
    every id fits the tiny models' 30522-row embedding.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from tests.helpers import PROBE_TEXTS

    words = sorted({w for t in (*PROBE_TEXTS, *PREMISES, *HYPOTHESES) for w in re.findall(r"\w+|[^\w\s]", t.lower())})
    specials = ["<pad>", "<unk>", "<s>", "</s>", "<sep>"]
    vocab = {tok: k for k, tok in enumerate(specials + words)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="$A:0 </s>:0", pair="$A:0 <sep>:0 $B:1 </s>:1",
        special_tokens=[("</s>", vocab["</s>"]), ("<sep>", vocab["<sep>"])])
    names = ["input_ids", "token_type_ids", "attention_mask"] if segment_ids else ["input_ids", "attention_mask"]
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", sep_token="<sep>", model_input_names=names,
                                   name_or_path=f"word-level{'-segments' if segment_ids else ''}")


def eager_copy(model):
    """A deep copy of ``model`` under eager attention, in eval mode (the original is left alone)."""
    reference = copy.deepcopy(model)
    reference.set_attn_implementation("eager")
    reference._is_eager_copy = True
    return reference.eval()


def eager_forward(model, tokenizer, text: str, pair: str | None = None, *, drop: tuple[str, ...] = ()):
    """Attention per stream (``{stream: [layers, heads, T, T]}``) and logits of ``model(**tokenizer(text, pair))``.

    An eager copy of the model, in eval mode, one unpadded example. Encoder-decoder models
    get their decoder inputs the way each computes them for training (T5: ``_shift_right``;
    BART derives them itself). ``drop`` names tokenizer outputs to leave out.
    """
    reference = model if getattr(model, "_is_eager_copy", False) else eager_copy(model)
    encoded = {k: v for k, v in tokenizer(text, pair, return_tensors="pt").items() if k not in drop}
    if reference.config.is_encoder_decoder and hasattr(reference, "_shift_right"):
        encoded["decoder_input_ids"] = reference._shift_right(encoded["input_ids"])
    with torch.no_grad():
        out = reference(**encoded, output_attentions=True)
    if reference.config.is_encoder_decoder:
        parts = {"encoder": out.encoder_attentions, "decoder": out.decoder_attentions, "cross": out.cross_attentions}
    else:
        parts = {"self": out.attentions}
    attention = {k: torch.stack(v)[:, 0].float().numpy() for k, v in parts.items()}
    logits = out.logits[0].float().numpy() if out.logits.ndim == 2 else None
    return attention, logits


def max_differences(run, step: int, model, tokenizer, texts, pairs=None, *, drop=()) -> dict[str, float]:
    """Max abs difference, per stream and for logits, between snapshot ``step`` of ``run`` and the reference."""
    worst: dict[str, float] = {}
    model = eager_copy(model)
    for i, text in enumerate(texts):
        attention, logits = eager_forward(model, tokenizer, text, None if pairs is None else pairs[i], drop=drop)
        for stream, expected in attention.items():
            stored = run.attention(i, step, stream)
            assert stored.shape == expected.shape, (stream, i, stored.shape, expected.shape)
            worst[stream] = max(worst.get(stream, 0.0), float(np.abs(stored - expected).max()))
        if logits is not None:
            worst["logits"] = max(worst.get("logits", 0.0), float(np.abs(run.logits(step)[i] - logits).max()))
    return worst

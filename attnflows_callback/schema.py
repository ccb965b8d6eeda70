"""The on-disk schema of a run, in one place: the names the writer writes and the reader reads.

Each block below maps one-to-one to a section of docs/format.md (run layout, ``run.json``,
``status.json``, ``probe.h5``, the snapshot shards). :mod:`~attnflows_callback.store` writes
with these names, :mod:`~attnflows_callback.reader` reads with them, and
:func:`run_meta` / :func:`probe_arrays` build what the recorder hands the writer. Pure
Python: the read side imports this module, so it loads no torch and no h5py.

Example:
    >>> snapshot_filename(50), SNAPSHOT_NAME.match("step-000000000050.h5").group(1)
    ('step-000000000050.h5', '000000000050')
    >>> attention_path("self", 3), summary_path("self", "entropy")
    ('attention/self/3', 'summary/self/entropy')
"""

from __future__ import annotations

import json
import re

# ------------------------------------------------------------- format (docs/format.md: run.json)
FORMAT_NAME = "attnflows-run"
# 2: probe.h5 holds the inputs fed beyond input_ids and attention_mask (model_inputs/, e.g. segment ids).
FORMAT_VERSION = 2
OLDEST_FORMAT_VERSION = 1  # still read; its probe pass fed only input_ids and attention_mask

# ------------------------------------------------------------- layout (docs/format.md: the tree at the top)
DATA_DIRNAME = "attnflows"
RUN_JSON = "run.json"
STATUS_JSON = "status.json"
PROBE_H5 = "probe.h5"
LOCK_NAME = "writer.lock"
SNAPSHOT_DIRNAME = "snapshots"
SNAPSHOT_NAME = re.compile(r"^step-(\d{12})\.h5$")
TEMP_NAME = re.compile(r"^\..+\.tmp$")  # a writer's temporary copy before its atomic publish


def snapshot_filename(step: int) -> str:
    """The shard of optimizer step ``step``: ``step-SSSSSSSSSSSS.h5``."""
    return f"step-{step:012d}.h5"


# ------------------------------------------------------------- run.json
# What every run.json holds (written by RunWriter and the recorder); the reader needs the first two.
RUN_JSON_KEYS = ("format", "format_version", "encoding", "model", "streams", "probe_id", "model_inputs",
                 "model_input_pad_values", "num_examples", "classification_position", "reduction", "tokenizer",
                 "max_length", "hparams", "versions", "created")
RUN_JSON_OPTIONAL = ("trainer_args",)

# Attention streams (run.json's ``streams``): one for single-stack models, three for encoder-decoders.
SINGLE_STREAM = "self"
ENCODER_DECODER_STREAMS = ("encoder", "decoder", "cross")

# ------------------------------------------------------------- status.json
STATUSES = ("running", "finished", "failed", "interrupted")

# ------------------------------------------------------------- probe.h5
# dataset -> required; every other dataset of the table in docs/format.md is optional.
PROBE_DATASETS = {
    "texts": True,
    "text_pairs": False,
    "labels": False,
    "label_names": False,
    "input_ids": True,
    "tokens": True,
    "word_ids": False,
    "sequence_ids": False,
    "decoder_tokens": False,
    "truncated": True,
}
PROBE_MODEL_INPUTS = "model_inputs"  # group: model_inputs/<name>, format 2
PROBE_ATTRS = ("probe_id", "tokenizer")

# ------------------------------------------------------------- snapshots/step-SSSSSSSSSSSS.h5
SNAPSHOT_KINDS = ("step", "checkpoint", "epoch_end", "final")
SHARD_ATTRS = ("format_version", "step", "kind", "wall_time", "encoding")  # plus "epoch", optional
SHARD_ATTENTION = "attention"
SHARD_LOGITS = "logits"
SHARD_SUMMARY = "summary"
SHARD_EXTRA = "extra"
SHARD_MEAN = "mean"  # optional: mean/<stream>/<targets>/<example>, head means of long examples (step_products.py)
HIDDEN_ATTR = "hidden_mass"  # on each head mean: the mean share of attention its view hides
SHARD_SOURCE_ROWS = "source_rows"  # optional: source_rows/<stream>/<targets>, float32 [E, T_max] (step_products.py)
SOURCE_ROW_ATTR = "source_row"  # older shards: on each head mean, float32 [T], its row of source_rows
UNITS_ATTR = "units"  # on each head mean: "tokens" ([L, T, T]) or "words" ([L, W, W], word pieces merged)
MEAN_UNITS = ("tokens", "words")
SHAPE_ATTR = "shape"  # on each attention dataset: [layers, heads, Tq_i, Tk_i]


def attention_path(stream: str, example: int | None = None) -> str:
    """The group of a stream's attention, or the dataset of one example's attention in it."""
    return f"{SHARD_ATTENTION}/{stream}" if example is None else f"{SHARD_ATTENTION}/{stream}/{example}"


def summary_path(stream: str, name: str | None = None) -> str:
    """The group of a stream's summaries, or one summary in it (``entropy``, ``js_from_start``, ...)."""
    return f"{SHARD_SUMMARY}/{stream}" if name is None else f"{SHARD_SUMMARY}/{stream}/{name}"


def mean_group(stream: str, targets: str) -> str:
    """The group of every example's head mean under a named set of hidden ``targets`` ("none": raw)."""
    return f"{SHARD_MEAN}/{stream}/{targets}"


def source_rows_path(stream: str, targets: str) -> str:
    """The dataset of every example's source row (``[E, T_max]``, NaN where none is stored) under ``targets``."""
    return f"{SHARD_SOURCE_ROWS}/{stream}/{targets}"


def mean_path(stream: str, targets: str, example: int) -> str:
    """The dataset of one example's head mean under a named set of hidden ``targets`` ("none": raw)."""
    return f"{mean_group(stream, targets)}/{example}"


# ------------------------------------------------------------- what the recorder writes
def run_meta(model, probe, streams: dict, hparams: dict, reduction, *, fed_inputs: list[str],
             classification_last: bool, versions: dict, trainer_args: dict | None = None) -> dict:
    """``run.json``'s content (less ``format``, ``format_version``, ``encoding`` and ``created``,
    which :class:`~attnflows_callback.store.RunWriter` adds) for ``model`` recording ``probe``."""
    config = model.config
    shapes = ",".join(f"{s}={v['layers']}x{v['heads']}" for s, v in streams.items())
    if not reduction.is_identity:
        shapes += f";{json.dumps(reduction.describe(), sort_keys=True)}"
    config_dict = jsonable(config.to_dict())
    # Which stored head reads which key/value head (grouped-query attention); None: every head its own.
    streams = {name: {**shape, "kv_heads": key_value_heads(config_dict, shape.get("head_ids"))}
               for name, shape in streams.items()}
    meta = {
        "model": {
            "class": type(model).__name__,
            "name_or_path": getattr(config, "_name_or_path", "") or getattr(model, "name_or_path", ""),
            "model_type": getattr(config, "model_type", ""),
            "identity": f"{type(model).__name__}[{shapes}]",
            "config": config_dict,
        },
        "streams": streams,
        "probe_id": probe.probe_id,
        "model_inputs": ["input_ids", "attention_mask", *fed_inputs],
        "model_input_pad_values": {name: probe.pad_values.get(name, 0) for name in fed_inputs},
        "num_examples": len(probe),
        "classification_position": "last" if classification_last else "first",
        "reduction": reduction.describe(),
        "tokenizer": probe.tokenizer_name,
        "max_length": probe.max_length,
        "hparams": jsonable(hparams),
        "versions": versions,
    }
    if trainer_args:
        meta["trainer_args"] = jsonable(trainer_args)
    return meta


def key_value_heads(config: dict, head_ids: list[int] | None) -> list[int] | None:
    """The key/value head each stored query head reads, or None when every head has its own.

    Grouped-query attention (Llama, Mistral, Qwen, ...) lets ``num_attention_heads /
    num_key_value_heads`` consecutive query heads share one key/value head: query head ``h``
    reads key/value head ``h // group``. ``config`` is the model config as a dict (run.json's
    ``model.config``), ``head_ids`` the model's head index of each stored head (None: all).
    A config without ``num_key_value_heads`` (BERT, GPT-2, T5, older runs) means no grouping.

    Example:
        >>> config = {"num_attention_heads": 8, "num_key_value_heads": 2}
        >>> key_value_heads(config, None), key_value_heads(config, [1, 6])
        ([0, 0, 0, 0, 1, 1, 1, 1], [0, 1])
        >>> key_value_heads({"num_attention_heads": 8}, None) is None
        True
    """
    heads, kv = config.get("num_attention_heads"), config.get("num_key_value_heads")
    if not (isinstance(heads, int) and isinstance(kv, int)) or not 0 < kv < heads or heads % kv:
        return None
    group = heads // kv
    ids = range(heads) if head_ids is None else head_ids
    if any(not isinstance(h, int) or not 0 <= h < heads for h in ids):
        return None  # stored heads that are not the config's query heads (another stream's): no claim
    return [h // group for h in ids]


def probe_arrays(probe, *, fed_inputs: list[str], encoder_decoder: bool) -> dict:
    """``probe.h5``'s content: dataset name -> value (None: not written), ``attr:<name>`` -> attribute."""
    import numpy as np

    ps = probe.probe_set
    arrays = {
        "texts": list(ps.texts),
        "text_pairs": list(ps.text_pairs) if ps.text_pairs is not None else None,
        "labels": np.asarray(ps.labels, dtype=np.int64) if ps.labels is not None else None,
        "label_names": list(ps.label_names) if ps.label_names else None,
        "input_ids": probe.input_ids,
        "tokens": [t for row in probe.tokens for t in row],
        "word_ids": probe.word_ids,
        "sequence_ids": probe.sequence_ids,
        "truncated": np.asarray(probe.truncated, dtype=bool),
        "attr:probe_id": probe.probe_id,
        "attr:tokenizer": probe.tokenizer_name,
    }
    for name in fed_inputs:  # what the probe pass feeds beyond ids and mask, unpadded
        arrays[f"{PROBE_MODEL_INPUTS}/{name}"] = probe.extra_inputs[name]
    if encoder_decoder:
        # The decoder sees the input shifted right: a start token, then the input's tokens.
        arrays["decoder_tokens"] = [t for row in probe.tokens for t in ["<start>", *row[:-1]]]
    return arrays


def jsonable(value):
    """``value`` as plain JSON values (anything else as its ``str``)."""
    return json.loads(json.dumps(value, default=str))

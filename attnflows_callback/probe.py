"""The probe set: the fixed inputs whose attention is recorded at every snapshot.

A :class:`ProbeSet` holds raw texts (optionally sentence pairs and labels). It is
tokenised once per run with the model's tokenizer into a :class:`TokenizedProbe`,
whose :attr:`~TokenizedProbe.probe_id` ties a run directory to exactly one probe set.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import checks
from .records import JSON_LAYOUTS, RECORD_SUFFIXES, read_json_records, read_records  # noqa: F401  (re-exported)

MAX_LENGTH_CAP = 128  # run_glue.py's --max_seq_length and the Lightning GLUE tutorial's max_seq_length
DEFAULT_MAX_LENGTH = None  # the tokenizer's model_max_length, at most MAX_LENGTH_CAP


@dataclass(frozen=True)
class ProbeSet:
    """Texts (and optional second segments and labels) to probe attention on.

    Args:
        texts: the probe inputs, non-empty strings.
        text_pairs: optional second segments (sentence-pair tasks), one per text.
        labels: optional integer class labels, one per text.
        label_names: optional names of the classes, indexed by label.

    Raises:
        ValueError: if ``texts`` is empty, holds a non-string, or the other
            sequences do not have one entry per text.

    Example:
        >>> probe = ProbeSet(["a fine film", "a dull film"], labels=[1, 0],
        ...                  label_names=["negative", "positive"])
        >>> len(probe), probe.label_names[probe.labels[0]]
        (2, 'positive')
    """

    texts: Sequence[str]
    text_pairs: Sequence[str] | None = None
    labels: Sequence[int] | None = None
    label_names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        texts = _as_str_list(self.texts, "texts")
        if not texts:
            raise ValueError("texts must hold at least one probe example, got an empty sequence")
        object.__setattr__(self, "texts", texts)
        if self.text_pairs is not None:
            pairs = _as_str_list(self.text_pairs, "text_pairs")
            _check_length(pairs, len(texts), "text_pairs")
            object.__setattr__(self, "text_pairs", pairs)
        if self.labels is not None:
            labels = list(self.labels)
            _check_length(labels, len(texts), "labels")
            bad = [x for x in labels if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0]
            if bad:
                raise ValueError(f"labels must be non-negative integers, got {bad[0]!r}")
            object.__setattr__(self, "labels", [int(x) for x in labels])
        if self.label_names is not None:
            names = _as_str_list(self.label_names, "label_names")
            if self.labels is not None and names and max(self.labels) >= len(names):
                raise ValueError(
                    f"label_names has {len(names)} names but labels go up to {max(self.labels)}; "
                    "give one name per class"
                )
            object.__setattr__(self, "label_names", names)

    def __len__(self) -> int:
        return len(self.texts)

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_records(
        cls,
        records: Sequence[dict],
        *,
        text_field: str = "text",
        pair_field: str | None = None,
        label_field: str | None = "label",
        label_names: Sequence[str] | None = None,
        source: str = "records",
    ) -> ProbeSet:
        """Build a probe set from dicts; ``label_field`` is used only if every record has it."""
        records = list(records)
        if not records:
            raise ValueError(f"{source} holds no probe examples")
        for k, record in enumerate(records):
            if text_field not in record:
                raise ValueError(
                    f"{source}: record {k} has no field {text_field!r} (fields: {sorted(record)}); "
                    "pass text_field=... to name the text column"
                )
            if pair_field is not None and pair_field not in record:
                raise ValueError(f"{source}: record {k} has no field {pair_field!r} for pair_field")
        texts = [r[text_field] for r in records]
        pairs = [r[pair_field] for r in records] if pair_field else None
        labels = None
        if label_field is not None and all(label_field in r and r[label_field] not in (None, "") for r in records):
            labels = [_parse_label(r[label_field], source, label_field, label_names) for r in records]
        return cls(texts, pairs, labels, label_names)

    @classmethod
    def from_json(cls, path: str | os.PathLike, **fields) -> ProbeSet:
        """Read a JSON array of objects, or JSON lines (see :meth:`from_records` for the field arguments).

        Either layout is accepted whatever the suffix, as ``datasets.load_dataset("json")``
        (the ``--train_file``/``--validation_file`` of transformers' example scripts) does:
        the file's first character decides (``[``: an array; else one object per line).

        Raises:
            ValueError: the file is not valid JSON (naming the file and line), holds a single
                object, or a row that is not an object.

        Example:
            >>> import json, os, tempfile
            >>> path = os.path.join(tempfile.mkdtemp(), "validation.json")
            >>> with open(path, "w") as f:  # JSON lines in a .json file, as HF scripts take them
            ...     _ = f.write(json.dumps({"sentence": "a fine film", "label": 1}) + "\\n")
            ...     _ = f.write(json.dumps({"sentence": "a dull film", "label": 0}) + "\\n")
            >>> ProbeSet.from_json(path, text_field="sentence").labels
            [1, 0]
        """
        return cls.from_records(read_json_records(path), source=Path(path).name, **fields)

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike, **fields) -> ProbeSet:
        """Read JSON lines, one object per line (a JSON array is accepted too: see :meth:`from_json`)."""
        return cls.from_records(read_json_records(path), source=Path(path).name, **fields)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, **fields) -> ProbeSet:
        """Read a CSV file with a header row (see :meth:`from_records` for the field arguments)."""
        return cls.from_records(read_records(path), source=Path(path).name, **fields)

    @classmethod
    def from_dataset(cls, dataset, **fields) -> ProbeSet:
        """Build from a ``datasets.Dataset`` (or any sequence of dicts); class names come from a ClassLabel feature.

        The first choice for Hugging Face scripts: pass the split the script already loaded,
        e.g. ``ProbeSet.from_dataset(raw_datasets["validation"], text_field="sentence").sample(32)``.
        """
        label_field = fields.get("label_field", "label")
        if fields.get("label_names") is None and label_field is not None:
            feature = getattr(dataset, "features", {}).get(label_field) if hasattr(dataset, "features") else None
            if feature is not None and hasattr(feature, "names"):
                fields["label_names"] = list(feature.names)
        return cls.from_records([dict(r) for r in dataset], source="dataset", **fields)

    # ---------------------------------------------------------------- sampling
    def sample(self, n: int, *, seed: int = 0, stratify: bool = True) -> ProbeSet:
        """A deterministic subset of ``n`` examples, stratified by label when labels exist.

        Example:
            >>> p = ProbeSet([f"t{i}" for i in range(10)], labels=[i % 2 for i in range(10)])
            >>> s = p.sample(4, seed=1)
            >>> sorted(s.labels), s.texts == p.sample(4, seed=1).texts
            ([0, 0, 1, 1], True)
        """
        checks.integer("n", n, maximum=len(self))
        rng = random.Random(seed)
        if stratify and self.labels is not None:
            by_label: dict[int, list[int]] = {}
            for i, label in enumerate(self.labels):
                by_label.setdefault(label, []).append(i)
            for members in by_label.values():
                rng.shuffle(members)
            # Largest-remainder allocation keeps each class's share of the sample.
            quotas = {k: n * len(v) / len(self) for k, v in by_label.items()}
            take = {k: int(q) for k, q in quotas.items()}
            for k in sorted(quotas, key=lambda k: (take[k] - quotas[k], k))[: n - sum(take.values())]:
                take[k] += 1
            chosen = sorted(i for k, members in by_label.items() for i in members[: take[k]])
        else:
            chosen = sorted(rng.sample(range(len(self)), n))
        return self.subset(chosen)

    def subset(self, indices: Sequence[int]) -> ProbeSet:
        pick = lambda seq: None if seq is None else [seq[i] for i in indices]  # noqa: E731
        return ProbeSet(pick(self.texts), pick(self.text_pairs), pick(self.labels), self.label_names)

    # -------------------------------------------------------------- tokenising
    def tokenize(self, tokenizer, *, max_length: int | None = DEFAULT_MAX_LENGTH) -> TokenizedProbe:
        """Tokenise every example once, truncating to ``max_length`` tokens (with a warning).

        ``max_length=None``: the tokenizer's ``model_max_length``, at most :data:`MAX_LENGTH_CAP` (128).
        """
        max_length = probe_max_length(tokenizer, max_length)
        if not callable(tokenizer) or not hasattr(tokenizer, "convert_ids_to_tokens"):
            raise TypeError(
                f"tokenizer must be a Hugging Face tokenizer, got {type(tokenizer).__name__}; "
                "pass the tokenizer the model was trained with (AutoTokenizer.from_pretrained(...))"
            )
        input_ids, word_ids, sequence_ids, truncated = [], [], [], []
        extra_inputs: dict[str, list[list[int]]] = {}
        for i, text in enumerate(self.texts):
            pair = self.text_pairs[i] if self.text_pairs is not None else None
            full = tokenizer(text, pair, truncation=False, add_special_tokens=True)
            enc = tokenizer(text, pair, truncation=True, max_length=max_length, add_special_tokens=True)
            ids = list(enc["input_ids"])
            if not ids:
                raise ValueError(f"probe example {i} tokenises to no tokens: {text!r}")
            input_ids.append(ids)
            for name, values in per_token_inputs(enc, len(ids)).items():
                extra_inputs.setdefault(name, [None] * len(self))[i] = values
            truncated.append(len(full["input_ids"]) > len(ids))
            words = enc.word_ids() if getattr(enc, "is_fast", False) else None
            word_ids.append([-1 if w is None else int(w) for w in words] if words is not None else None)
            segments = enc.sequence_ids() if getattr(enc, "is_fast", False) else None
            sequence_ids.append([-1 if w is None else int(w) for w in segments] if segments is not None else None)
        if any(truncated):
            warnings.warn(
                f"{sum(truncated)} of {len(self)} probe examples were truncated to max_length={max_length} tokens; "
                "raise max_length to keep them whole",
                stacklevel=2,
            )
        for name, rows in extra_inputs.items():
            if any(row is None for row in rows):
                raise ValueError(
                    f"the tokenizer returned {name!r} for some probe examples and not for others; "
                    "pass a tokenizer that returns the same inputs for every example"
                )
        tokens = [list(tokenizer.convert_ids_to_tokens(ids)) for ids in input_ids]
        tokenizer_name = f"{type(tokenizer).__name__}:{getattr(tokenizer, 'name_or_path', '') or ''}"
        return TokenizedProbe(
            probe_set=self,
            input_ids=input_ids,
            tokens=tokens,
            word_ids=word_ids if all(w is not None for w in word_ids) else None,
            truncated=truncated,
            tokenizer_name=tokenizer_name,
            max_length=max_length,
            extra_inputs=extra_inputs,
            sequence_ids=sequence_ids if all(w is not None for w in sequence_ids) else None,
            pad_values={name: input_pad_value(tokenizer, name) for name in extra_inputs},
        )


@dataclass(frozen=True)
class TokenizedProbe:
    """A probe set tokenised for one model: ids, tokens and word ids per example.

    ``extra_inputs`` holds every other per-token input the tokenizer returned, by name
    (``token_type_ids`` for a BERT pair), one unpadded row per example; ``pad_values``
    says what pads each in a batch. The probe pass feeds those that the model's
    ``forward`` names as parameters, as the transformers Trainer does with dataset columns.
    ``sequence_ids`` says which segment each token comes from (0: text, 1: text pair,
    -1: special tokens), from a fast tokenizer; it is what shows a pair's boundary for
    any tokenizer, with segment ids or not. It is not fed to the model.
    """

    probe_set: ProbeSet
    input_ids: list[list[int]]
    tokens: list[list[str]]
    word_ids: list[list[int]] | None
    truncated: list[bool]
    tokenizer_name: str
    max_length: int
    extra_inputs: dict[str, list[list[int]]] = field(default_factory=dict)
    pad_values: dict[str, int] = field(default_factory=dict)
    sequence_ids: list[list[int]] | None = None
    probe_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "probe_id", probe_content_id(self.probe_set, self.tokenizer_name, self.max_length,
                                                              self.extra_inputs))

    def __len__(self) -> int:
        return len(self.input_ids)

    def subset(self, indices: Sequence[int]) -> TokenizedProbe:
        """The examples at ``indices``, as tokenised here."""
        indices = list(indices)
        return TokenizedProbe(
            probe_set=self.probe_set.subset(indices),
            input_ids=[self.input_ids[i] for i in indices],
            tokens=[self.tokens[i] for i in indices],
            word_ids=None if self.word_ids is None else [self.word_ids[i] for i in indices],
            truncated=[self.truncated[i] for i in indices],
            tokenizer_name=self.tokenizer_name,
            max_length=self.max_length,
            extra_inputs={name: [rows[i] for i in indices] for name, rows in self.extra_inputs.items()},
            pad_values=dict(self.pad_values),
            sequence_ids=None if self.sequence_ids is None else [self.sequence_ids[i] for i in indices],
        )

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids], dtype=np.int64)


def check_max_length(max_length) -> int | None:
    """None (follow the tokenizer) or an integer >= 2 (a special token on each side and one more)."""
    allowed = f"None (the tokenizer's model_max_length, at most {MAX_LENGTH_CAP}) or an integer >= 2"
    return checks.integer("max_length", max_length, minimum=2, none=True, allowed=allowed)


def probe_max_length(tokenizer, max_length: int | None = None) -> int:
    """The tokens kept per probe example: ``max_length``, else ``min(tokenizer.model_max_length, 128)``.

    Example:
        >>> class Tok: model_max_length = 512
        >>> probe_max_length(Tok()), probe_max_length(Tok(), 256)
        (128, 256)
    """
    if check_max_length(max_length) is not None:
        return max_length
    model_max = getattr(tokenizer, "model_max_length", None)  # 1e30 when the tokenizer sets none
    if isinstance(model_max, int) and not isinstance(model_max, bool) and model_max >= 2:
        return min(model_max, MAX_LENGTH_CAP)
    return MAX_LENGTH_CAP


# Per-token outputs of a tokenizer that are not model inputs, and the mask the probe pass rebuilds itself.
NOT_MODEL_INPUTS = frozenset({"input_ids", "attention_mask", "special_tokens_mask", "offset_mapping", "length"})


def per_token_inputs(encoding, length: int) -> dict[str, list[int]]:
    """The per-token integer inputs a tokenizer returned beyond ids and mask (``token_type_ids``, ...).

    Example:
        >>> per_token_inputs({"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1],
        ...                   "token_type_ids": [0, 0, 1]}, 3)
        {'token_type_ids': [0, 0, 1]}
    """
    found = {}
    for name in encoding.keys():
        if name in NOT_MODEL_INPUTS:
            continue
        values = encoding[name]
        if isinstance(values, (list, tuple)) and len(values) == length and all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            found[name] = [int(v) for v in values]
    return found


def input_pad_value(tokenizer, name: str) -> int:
    """What pads input ``name`` in a batch: the tokenizer's ``pad_token_type_id`` for segment ids, else 0."""
    if name == "token_type_ids":
        return int(getattr(tokenizer, "pad_token_type_id", 0) or 0)
    return 0


def probe_content_id(probe_set: ProbeSet, tokenizer_name: str, max_length: int,
                     extra_inputs: dict[str, list[list[int]]] | None = None) -> str:
    """A stable hash of the probe's texts, pairs, labels, tokenizer and the inputs fed beyond the token ids.

    Two runs share it iff they probe alike. A run recorded before the extra inputs were
    fed (format 1) has another id than the same probe fed its ``token_type_ids``, so a
    resume across that change is refused rather than mixed.
    """
    content = {
        "texts": list(probe_set.texts),
        "text_pairs": probe_set.text_pairs and list(probe_set.text_pairs),
        "labels": probe_set.labels and list(probe_set.labels),
        "tokenizer": tokenizer_name,
        "max_length": max_length,
    }
    if extra_inputs:
        content["extra_inputs"] = {name: rows for name, rows in sorted(extra_inputs.items())}
    payload = json.dumps(
        content,
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def _as_str_list(values, name: str) -> list[str]:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of strings, got a single {type(values).__name__}; wrap it in a list")
    values = list(values)
    for k, value in enumerate(values):
        if not isinstance(value, str):
            raise TypeError(f"{name}[{k}] must be a str, got {type(value).__name__}: {value!r}")
    return values


def _check_length(values: list, expected: int, name: str) -> None:
    if len(values) != expected:
        raise ValueError(f"{name} must have one entry per text ({expected}), got {len(values)}")


def _parse_label(value, source: str, field_name: str, label_names=None) -> int:
    """An integer class id; a class name when ``label_names`` lists it (GLUE-style files often hold names)."""
    if isinstance(value, str) and label_names is not None and value in label_names:
        return list(label_names).index(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{source}: {field_name} must hold integer class ids, got {value!r}; pass label_names=[...] with "
            "the class names in id order, or label_field=None to load the texts without labels"
        ) from None

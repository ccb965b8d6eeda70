"""Check a run against a saved checkpoint: recompute the probe pass and compare it with the snapshot.

``attnflows verify RUN --checkpoint PATH [--step N]`` loads the weights a trainer saved,
feeds them the very inputs the run stored in ``probe.h5`` (token ids and every other fed
input, such as segment ids), and compares the attention of every stream and the logits
with the snapshot recorded at the checkpoint's optimizer step. The stored attention is
quantised, so a snapshot matches when every difference is within the run's encoding
error (``max_abs_error``) plus ``atol`` for float noise.

Checkpoints it reads:

- a Hugging Face directory (``checkpoint-N`` of the ``Trainer``, or any
  ``save_pretrained`` folder): the model class named in ``run.json`` loads it with
  ``from_pretrained``; the step is ``global_step`` in its ``trainer_state.json``.
- a Lightning ``.ckpt`` file: its ``state_dict`` goes into a model, and the step is its
  ``global_step``. The model is, by default, the run's own model class built from the
  config saved in ``run.json``, whose weights are found in the ``state_dict`` under any
  prefix (``model.`` for a LightningModule holding the Hugging Face model as
  ``self.model``). When the module holds the model some other way, pass a model factory
  ``module:function``: a function of no arguments returning the LightningModule (or any
  ``nn.Module`` holding the Hugging Face model) that the ``state_dict`` loads into.

Loading a ``.ckpt`` unpickles it, as Lightning does when it resumes from it: verify only
checkpoints you would train from.
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_ATOL = 1e-4  # float noise between a batched probe pass and this one (another device, another batch)
# Config fields that fix a model's shape: a checkpoint that differs in one is another model.
SHAPE_FIELDS = (
    "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "intermediate_size", "embedding_size", "type_vocab_size", "max_position_embeddings", "n_embd", "n_layer",
    "n_head", "n_positions", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
    "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads", "dim", "n_layers",
    "n_heads", "hidden_dim",
)


class VerifyError(ValueError):
    """The checkpoint cannot be compared with the run: another model, another probe set, no such snapshot."""


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify_checkpoint` found.

    Attributes:
        step: the snapshot compared (the checkpoint's optimizer step, or ``--step``).
        differences: max abs difference per stream, and ``"logits"`` when both have them.
        tolerances: the bound each difference must stay within.
        notes: caveats (a format-1 run, a checkpoint without its step).
    """

    run: str
    checkpoint: str
    step: int
    differences: dict[str, float]
    tolerances: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(self.differences[k] <= self.tolerances[k] for k in self.differences)

    def report(self) -> str:
        """The text ``attnflows verify`` prints."""
        lines = [f"Run        {self.run}", f"Checkpoint {self.checkpoint}", f"Step       {self.step} ({'matched' if self.passed else 'compared'})",
                 f"  {'stream':<10} {'max |diff|':>12} {'allowed':>12}"]
        for name, diff in self.differences.items():
            verdict = "ok" if diff <= self.tolerances[name] else "MISMATCH"
            lines.append(f"  {name:<10} {diff:>12.3e} {self.tolerances[name]:>12.3e}  {verdict}")
        lines += [f"Note: {note}" for note in self.notes]
        lines.append("PASS: the snapshot is what the checkpoint computes on the probe inputs" if self.passed else
                     f"FAIL: snapshot {self.step} is not what this checkpoint computes on the probe inputs")
        return "\n".join(lines)


def verify_checkpoint(run_dir: str | os.PathLike, checkpoint: str | os.PathLike, *, step: int | None = None,
                      model_factory: str | None = None, atol: float = DEFAULT_ATOL) -> VerifyResult:
    """Recompute the probe pass from ``checkpoint`` and compare it with the run's snapshot at its step.

    Args:
        run_dir: the recorded run.
        checkpoint: a Hugging Face checkpoint directory or a Lightning ``.ckpt`` file.
        step: the snapshot to compare with; required when the checkpoint does not say its step.
        model_factory: ``"module:function"`` building the module a Lightning ``state_dict`` loads into.
        atol: float slack added to the encoding's error (and the bound on logits).

    Raises:
        VerifyError: a checkpoint of another model or probe set, a step with no snapshot,
            a checkpoint that cannot be read.

    Example:
        >>> import tempfile
        >>> from transformers import BertConfig, BertForSequenceClassification
        >>> from attnflows_callback import AttentionRecorder, ProbeSet
        >>> class Tok:  # the smallest tokenizer-like object, for the example only
        ...     name_or_path = "toy"
        ...     def __call__(self, text, pair=None, **kw):
        ...         return {"input_ids": [2] + [5 + len(w) % 20 for w in text.split()] + [3]}
        ...     def convert_ids_to_tokens(self, ids): return [str(i) for i in ids]
        >>> model = BertForSequenceClassification(BertConfig(hidden_size=16, num_hidden_layers=2,
        ...     num_attention_heads=2, intermediate_size=16, vocab_size=30))
        >>> run_dir, saved = tempfile.mkdtemp(), tempfile.mkdtemp()
        >>> with AttentionRecorder(model, Tok(), ProbeSet(["good film", "bad"]), run_dir, tensorboard=False) as rec:
        ...     _ = rec.snapshot(0)
        >>> model.save_pretrained(saved)
        >>> verify_checkpoint(run_dir, saved, step=0).passed
        True
    """
    from .reader import NotARunError, open_run

    if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not atol >= 0:
        raise ValueError(f"atol must be a number >= 0, got {atol!r}")
    try:
        run = open_run(run_dir)
    except NotARunError as err:
        raise VerifyError(str(err)) from None
    with run:
        path = Path(checkpoint)
        if path.is_dir():
            model, saved_step, notes = _load_hf_directory(path, run)
        elif path.is_file():
            model, saved_step, notes = _load_lightning_checkpoint(path, run, model_factory)
        else:
            raise VerifyError(f"checkpoint {path.name or path}: no such file or directory; pass a Hugging Face "
                              "checkpoint directory (checkpoint-N) or a Lightning .ckpt file")
        matched = _matched_step(run, saved_step, step)
        if saved_step is None:
            notes.append(f"the checkpoint does not say its step; compared with snapshot {matched} as --step says")
        differences = _compare(run, model, matched)
        error = _encoding_error(run)
        tolerances = {name: error + atol if name != "logits" else atol * max(1.0, _logit_scale(run, matched))
                      for name in differences}
        return VerifyResult(run=run.run_dir.name, checkpoint=path.name, step=matched, differences=differences,
                            tolerances=tolerances, notes=[*run.notes, *notes])


# ------------------------------------------------------------------ loading
def _load_hf_directory(path: Path, run):
    """The run's model class from a ``save_pretrained`` directory, checked against the run first."""
    if not (path / "config.json").is_file():
        raise VerifyError(f"checkpoint {path.name}: no config.json, so it is not a Hugging Face checkpoint "
                          "directory; pass checkpoint-N of a Trainer's output_dir, or a Lightning .ckpt file")
    saved_config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    _check_same_model(run, saved_config, path.name)
    model_class = _model_class(run)
    with _quiet_transformers():
        model = model_class.from_pretrained(str(path))
    notes = []
    state_path = path / "trainer_state.json"
    step = None
    if state_path.is_file():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        step = int(state["global_step"]) if "global_step" in state else None
        _check_hf_callback_probe(run, state, path.name)
    if (path / "tokenizer_config.json").is_file():
        _check_tokenizer(run, path)
    return model.eval(), step, notes


def _load_lightning_checkpoint(path: Path, run, model_factory: str | None):
    import torch

    from .capture import find_pretrained_model

    try:
        saved = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise VerifyError(f"checkpoint {path.name} cannot be read as a Lightning .ckpt ({type(err).__name__}); "
                          "pass a .ckpt file written by a Lightning Trainer, or a Hugging Face checkpoint directory")
    if not isinstance(saved, dict) or not isinstance(saved.get("state_dict"), dict):
        raise VerifyError(f"checkpoint {path.name} holds no state_dict: it is not a Lightning checkpoint")
    state_dict = saved["state_dict"]
    _check_lightning_callback_probe(run, saved.get("callbacks") or {}, path.name)
    if model_factory is not None:
        holder = _call_factory(model_factory)
        _load_state(holder, state_dict, path.name, run)
        model = find_pretrained_model(holder)
        _check_same_model(run, model.config.to_dict(), path.name)
    else:
        model = _model_from_run_config(run)
        _load_state(model, _strip_prefix(model, state_dict, path.name), path.name, run)
    step = saved.get("global_step")
    return model.eval(), None if step is None else int(step), []


def _model_class(run):
    import transformers

    name = run.meta.get("model", {}).get("class", "")
    model_class = getattr(transformers, name, None)
    if model_class is None:
        raise VerifyError(f"the run's model class {name!r} is not a transformers class, so verify cannot build it; "
                          "for a Lightning .ckpt pass --model-factory module:function")
    return model_class


def _model_from_run_config(run):
    """A fresh model of the run's class and config (from ``run.json``), for a ``state_dict`` to fill."""
    import torch
    from transformers import AutoConfig

    saved = dict(run.meta.get("model", {}).get("config") or {})
    if not saved.get("model_type"):
        raise VerifyError("run.json holds no model config; pass --model-factory module:function")
    config = AutoConfig.for_model(**saved)
    with _quiet_transformers(), torch.device("cpu"):
        return _model_class(run)(config)


def _call_factory(spec: str):
    import torch

    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise VerifyError(f"model factory must be 'module:function', got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as err:
        raise VerifyError(f"model factory {spec!r} cannot be imported ({err}); put its module on PYTHONPATH") from None
    holder = factory()
    if not isinstance(holder, torch.nn.Module):
        raise VerifyError(f"model factory {spec!r} returned a {type(holder).__name__}, not a torch.nn.Module; "
                          "return the LightningModule (or the Hugging Face model) the checkpoint was saved from")
    return holder


def _strip_prefix(model, state_dict: dict, name: str) -> dict:
    """The entries of ``state_dict`` that belong to ``model``, under whatever prefix the LightningModule gave them."""
    wanted = list(model.state_dict())
    anchor = wanted[0]
    for key in state_dict:
        if key.endswith(anchor):
            prefix = key[: len(key) - len(anchor)]
            if all(prefix + k in state_dict for k in wanted):
                return {k: state_dict[prefix + k] for k in wanted}
    raise VerifyError(
        f"checkpoint {name}: its state_dict holds no complete {type(model).__name__} (no prefix P with every "
        f"P+{anchor!r} ...); it is a checkpoint of another model, or pass --model-factory module:function"
    )


def _load_state(module, state_dict: dict, name: str, run) -> None:
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        first = str(err).split("\n\t")[1] if "\n\t" in str(err) else str(err)
        raise VerifyError(f"checkpoint {name} is of another model than the run's "
                          f"{run.meta.get('model', {}).get('identity', '?')}: {first.strip()}") from None


def _check_same_model(run, saved_config: dict, name: str) -> None:
    recorded = run.meta.get("model", {})
    config = recorded.get("config") or {}
    differ = [f"{key} {saved_config.get(key)!r} (run: {config.get(key)!r})" for key in SHAPE_FIELDS
              if key in config and key in saved_config and config[key] != saved_config[key]]
    architectures = saved_config.get("architectures") or []
    if architectures and recorded.get("class") and recorded["class"] not in architectures:
        differ.insert(0, f"class {architectures[0]} (run: {recorded['class']})")
    labels = [len(c.get("id2label") or {}) for c in (saved_config, config)]
    if all(labels) and labels[0] != labels[1]:
        differ.append(f"{labels[0]} labels (run: {labels[1]})")
    if differ:
        raise VerifyError(f"checkpoint {name} is of another model than the run: " + "; ".join(differ))


def _probe_fields(run) -> dict:
    from .timeline import probe_set_fields
    from .probe import ProbeSet

    return probe_set_fields(ProbeSet(run.texts, run.text_pairs, run.labels, run.label_names))


def _check_hf_callback_probe(run, state: dict, name: str) -> None:
    """A Trainer checkpoint names the probe sets its attnflows callbacks recorded: the run's must be one."""
    saved = (state.get("stateful_callbacks") or {}).get("AttentionFlowsTrainerCallback")
    if not saved:
        return
    mine = _probe_fields(run)
    entries = saved if isinstance(saved, list) else [saved]
    probes = [e.get("args", {}).get("probe_set") for e in entries if isinstance(e, dict)]
    probes = [p for p in probes if isinstance(p, dict)]
    if probes and not any(_same_probe(p, mine) for p in probes):
        texts = probes[0].get("texts") or ["?"]
        raise VerifyError(f"checkpoint {name} was trained with attnflows recording another probe set "
                          f"({len(texts)} examples, the first {texts[0]!r}); pass the run that training recorded")


def _check_lightning_callback_probe(run, callbacks: dict, name: str) -> None:
    from .timeline import probe_fingerprint
    from .probe import ProbeSet

    ours = [key for key in callbacks if str(key).startswith("AttentionFlowsCallback")]
    if not ours:
        return
    fingerprint = probe_fingerprint(ProbeSet(run.texts, run.text_pairs, run.labels, run.label_names))
    if not any(f"'probe': '{fingerprint}'" in str(key) for key in ours):
        raise VerifyError(f"checkpoint {name} was trained with attnflows recording another probe set "
                          f"(probe fingerprint {fingerprint} is not among its callbacks); pass the run that "
                          "training recorded")


def _same_probe(saved: dict, mine: dict) -> bool:
    return all(saved.get(k) == mine.get(k) for k in ("texts", "text_pairs", "labels"))


def _check_tokenizer(run, path: Path) -> None:
    """The checkpoint's tokenizer must turn the probe texts into the ids the run fed."""
    from transformers import AutoTokenizer

    from .probe import ProbeSet

    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception:  # noqa: BLE001 - a tokenizer that does not load proves nothing either way
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = ProbeSet(run.texts, run.text_pairs).tokenize(tokenizer, max_length=int(run.meta.get("max_length", 64)))
    for i in range(run.num_examples):
        if probe.input_ids[i] != run.model_inputs(i)["input_ids"].tolist():
            raise VerifyError(f"checkpoint {path.name}: its tokenizer turns probe example {i} into other token ids "
                              "than the run fed: another tokenizer or probe set")


def _matched_step(run, saved_step: int | None, step: int | None) -> int:
    steps = [int(s) for s in run.steps]
    if step is not None and saved_step is not None and step != saved_step:
        raise VerifyError(f"--step {step} but the checkpoint was saved at step {saved_step}; leave --step out, "
                          "or pass the checkpoint of that step")
    wanted = step if step is not None else saved_step
    if wanted is None:
        raise VerifyError("the checkpoint does not say its optimizer step (no trainer_state.json); pass --step N")
    if wanted not in steps:
        shown = steps if len(steps) <= 12 else [*steps[:6], "...", *steps[-3:]]
        raise VerifyError(f"the run has no snapshot at step {wanted} (steps: {shown}); verify a checkpoint saved at a "
                          "snapshot step (the callbacks snapshot at every checkpoint by default)")
    return wanted


# ------------------------------------------------------------------ comparing
def stored_probe(run):
    """The run's probe as the recorder fed it: stored ids and other inputs, not a new tokenisation."""
    from .probe import ProbeSet, TokenizedProbe

    fed = [run.model_inputs(i) for i in range(run.num_examples)]
    extra = [name for name in fed[0] if name != "input_ids"]
    return TokenizedProbe(
        probe_set=ProbeSet(run.texts, run.text_pairs, run.labels, run.label_names),
        input_ids=[f["input_ids"].tolist() for f in fed],
        tokens=[run.tokens(i) for i in range(run.num_examples)],
        word_ids=None,
        truncated=list(run.truncated),
        tokenizer_name=str(run.meta.get("tokenizer", "")),
        max_length=int(run.meta.get("max_length", 0)),
        extra_inputs={name: [f[name].tolist() for f in fed] for name in extra},
        pad_values={k: int(v) for k, v in (run.meta.get("model_input_pad_values") or {}).items()},
    )


def _compare(run, model, step: int) -> dict[str, float]:
    from .capture import Reduction, capture_probe, is_decoder_only

    probe = stored_probe(run)
    reduction = run.meta.get("reduction") or {}
    capture = capture_probe(model, probe, batch_size=8, reduction=Reduction(**reduction),
                            classification_last=is_decoder_only(model))
    missing = [s for s in run.streams if s not in capture.attention]
    if missing:
        raise VerifyError(f"the checkpoint's model has no attention stream {missing[0]!r}: another model")
    differences = {}
    for stream in run.streams:
        worst = 0.0
        for i in range(run.num_examples):
            stored, recomputed = run.attention(i, step, stream), capture.attention[stream][i]
            if stored.shape != recomputed.shape:
                raise VerifyError(f"stream {stream!r}, example {i}: the snapshot holds {stored.shape}, the checkpoint "
                                  f"gives {recomputed.shape}: another model or probe set")
            worst = max(worst, float(np.abs(stored - recomputed).max()))
        differences[stream] = worst
    logits = run.logits(step)
    if logits is not None and capture.logits is not None:
        if logits.shape != capture.logits.shape:
            raise VerifyError(f"logits: the snapshot holds {logits.shape}, the checkpoint gives {capture.logits.shape}: "
                              "another model")
        differences["logits"] = float(np.abs(logits - capture.logits).max())
    return differences


def _encoding_error(run) -> float:
    from .store import ENCODINGS

    return ENCODINGS[str(run.meta.get("encoding", "compact"))].max_abs_error


def _logit_scale(run, step: int) -> float:
    logits = run.logits(step)
    return 1.0 if logits is None else float(np.abs(logits).max())


class _quiet_transformers:
    """transformers' loading chatter (progress bars, newly initialised heads) off for the duration."""

    def __enter__(self):
        from transformers import logging

        self.level, self.bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
        logging.set_verbosity_error()
        logging.disable_progress_bar()

    def __exit__(self, *exc):
        from transformers import logging

        logging.set_verbosity(self.level)
        if self.bars:
            logging.enable_progress_bar()

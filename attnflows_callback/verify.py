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
checkpoints you would train from. Loading, and the checks that a checkpoint is of the run's
model and probe set, are :mod:`attnflows_callback.checkpoint_loading`'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoint_loading import SHAPE_FIELDS, VerifyError, load_hf_directory, load_lightning_checkpoint  # noqa: F401  (re-exported)

DEFAULT_ATOL = 1e-4  # float noise between a batched probe pass and this one (another device, another batch)


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
            model, saved_step, notes = load_hf_directory(path, run)
        elif path.is_file():
            model, saved_step, notes = load_lightning_checkpoint(path, run, model_factory)
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

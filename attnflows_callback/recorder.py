"""``AttentionRecorder``: snapshots of attention on a probe set, for any training loop.

The training thread pays only for the probe forward pass; summaries, encoding and the
atomic file writes happen on a background writer behind a bounded queue. The Lightning
and Hugging Face callbacks are thin adapters over this class.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from .capture import ProbeCapture, ProbePass, Reduction, fed_input_names, is_decoder_only
from .health import AttentionHealth, special_masks
from . import checks, exit_hooks
from .hparams import redact
from .options import RecorderOptions
from .probe import DEFAULT_MAX_LENGTH, ProbeSet, TokenizedProbe
from .schema import probe_arrays, run_meta
from .sharding import sharded_across_ranks, sharding_of
from .step_products import StepProducts, snapshot_products
from .store import DEFAULT_ENCODING, SNAPSHOT_KINDS, RunWriter
from .tensorboard_log import TensorBoardLog, layer_scalars

DEFAULT_QUEUE_SIZE = 8


class AttentionRecorder:
    """Record attention on a fixed probe set at chosen training steps.

    Args:
        model: a Hugging Face ``PreTrainedModel`` (or a module that holds one).
        tokenizer: the model's tokenizer. May be None if ``probe_set`` is already a
            :class:`~attnflows_callback.probe.TokenizedProbe`.
        probe_set: a :class:`~attnflows_callback.probe.ProbeSet` (or a tokenised one).
        run_dir: the TensorBoard run directory; snapshots go to ``run_dir/attnflows``.
        encoding, max_length, batch_size, strict, overwrite, tensorboard, layers, heads, rows,
            top_k, head_importance, health_warnings: the recording options, each documented
            and checked in :class:`~attnflows_callback.options.RecorderOptions`.
        hparams: hyperparameters to keep in the run's metadata (and log to TensorBoard); values of
            secret-looking keys (``hub_token``, ``*_api_key``, ...) are replaced by
            :func:`~attnflows_callback.hparams.redact` first.
        trainer_args: the trainer's full arguments, kept in ``run.json`` as ``trainer_args``
            only (the callbacks pass every ``TrainingArguments`` field here), redacted alike.
        resume: continue the run in ``run_dir``; a snapshot at or before its last step
            purges the orphans of the crashed attempt and replaces them.
        queue_size: snapshots waiting for the writer before ``snapshot`` blocks.
        sharded: True when every other rank makes this recorder's probe passes alongside it,
            which the Lightning and transformers Trainer callbacks arrange. Without it, a model
            whose parameters FSDP or DeepSpeed ZeRO-3 shards across ranks is refused: a probe
            pass on one rank alone would wait for the others forever.

    Raises:
        ValueError: bad arguments, a tokenizer that does not fit the model, a run
            directory that holds another probe set or model, or a sharded model without
            ``sharded=True``.
        AttentionCaptureError: a model from which no attention can be had.

    Example:
        >>> import tempfile
        >>> from transformers import BertConfig, BertForSequenceClassification
        >>> model = BertForSequenceClassification(BertConfig(hidden_size=16, num_hidden_layers=2,
        ...     num_attention_heads=2, intermediate_size=16, vocab_size=30))
        >>> class Tok:  # the smallest tokenizer-like object, for the example only
        ...     name_or_path = "toy"
        ...     def __call__(self, text, pair=None, **kw):
        ...         return {"input_ids": [2] + [5 + len(w) % 20 for w in text.split()] + [3]}
        ...     def convert_ids_to_tokens(self, ids): return [str(i) for i in ids]
        >>> run_dir = tempfile.mkdtemp()
        >>> with AttentionRecorder(model, Tok(), ProbeSet(["good film", "bad"], labels=[1, 0]), run_dir) as rec:
        ...     _ = rec.snapshot(0)
        ...     _ = rec.snapshot(10)
        >>> from attnflows_callback import open_run
        >>> open_run(run_dir).steps.tolist()
        [0, 10]
    """

    def __init__(
        self,
        model,
        tokenizer,
        probe_set: ProbeSet | TokenizedProbe,
        run_dir: str | Path,
        *,
        encoding: str = DEFAULT_ENCODING,
        max_length: int | None = DEFAULT_MAX_LENGTH,
        batch_size: int = 16,
        hparams: dict | None = None,
        trainer_args: dict | None = None,
        strict: bool = False,
        overwrite: bool = False,
        resume: bool = False,
        tensorboard: bool = True,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        layers=None,
        heads=None,
        rows: str = "all",
        top_k: int | None = None,
        head_importance: bool = False,
        health_warnings: bool = False,
        sharded: bool = False,
    ):
        if not sharded and sharded_across_ranks(model):
            raise ValueError(
                f"the model's parameters are sharded across ranks ({sharding_of(model)}), so every rank must join each "
                "probe pass; record with the Lightning or transformers Trainer callback, which do (see "
                "docs/distributed.md), or pass sharded=True once every rank makes the same probe passes"
            )
        self.options = RecorderOptions(encoding=encoding, max_length=max_length, batch_size=batch_size,
                                       strict=strict, overwrite=overwrite, tensorboard=tensorboard, layers=layers,
                                       heads=heads, rows=rows, top_k=top_k, head_importance=head_importance,
                                       health_warnings=health_warnings)
        checks.integer("queue_size", queue_size)
        self.reduction = self.options.reduction()
        if hparams is not None and not isinstance(hparams, dict):
            raise TypeError(f"hparams must be a dict of hyperparameters, got {type(hparams).__name__}")
        if isinstance(probe_set, TokenizedProbe):
            probe = probe_set
        elif isinstance(probe_set, ProbeSet):
            if tokenizer is None:
                raise ValueError("tokenizer is required to tokenise the probe set; pass the model's tokenizer")
            probe = probe_set.tokenize(tokenizer, max_length=max_length)
        else:
            raise TypeError(
                f"probe_set must be a ProbeSet, got {type(probe_set).__name__}; build one with ProbeSet(texts, labels=...)"
            )
        self.probe_pass = ProbePass(model, probe, batch_size=batch_size, reduction=self.reduction,
                                    head_importance=head_importance)
        self.model = self.probe_pass.model
        self._classification_last = is_decoder_only(self.model)
        self.probe = probe
        self.strict = strict
        self.resume = resume
        self.run_dir = Path(run_dir)
        self.hparams = redact(hparams or {})  # run.json and the events file are served without authentication
        streams = self.probe_pass.stream_shapes()
        meta, arrays = _schema_arrays(self.model, probe, streams, self.hparams, self.reduction, trainer_args)
        self.writer = RunWriter(
            self.run_dir,
            meta=meta,
            probe_arrays=arrays,
            encoding=encoding,
            overwrite=overwrite,
            resume=resume,
        )
        existing = self.writer.steps()
        self.last_step: int | None = existing[-1] if existing else None
        self._published: int | None = self.last_step  # the last step on disk, for the final status
        self._orphans_purged = not resume
        self._reference: dict[str, list[np.ndarray]] | None = None
        self._error: BaseException | None = None
        self._failure: BaseException | None = None  # the I/O failure that stopped recording, for the status
        self._stopped = False
        self._closed = False
        self._health = AttentionHealth(special_masks(probe.tokens, probe.word_ids), warn=health_warnings)
        try:
            self._tensorboard = TensorBoardLog(self.run_dir) if tensorboard else None
            if self._tensorboard is not None and self.hparams:
                self._tensorboard.hparams(self.hparams)
        except BaseException as err:
            self._close_writer("failed", f"{type(err).__name__}: {err}")
            raise
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._write_loop, name="attnflows-writer", daemon=True)
        self._thread.start()
        exit_hooks.track(self)

    # ------------------------------------------------------------------ API
    @property
    def recording(self) -> bool:
        """False once closed, or after an I/O failure stopped the recording."""
        return not (self._closed or self._stopped)

    def snapshot(self, step: int, *, kind: str = "step", epoch: int | None = None) -> bool:
        """Capture attention now and queue it for writing as ``step``.

        Returns False (and does nothing) when recording has stopped after an I/O failure.
        """
        self._raise_pending()
        if self._closed:
            raise RuntimeError("this recorder is closed; create a new AttentionRecorder to record more snapshots")
        if self._stopped:
            return False
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step must be a non-negative integer (the optimizer step), got {step!r}")
        if kind not in SNAPSHOT_KINDS:
            raise ValueError(f"kind must be one of {SNAPSHOT_KINDS}, got {kind!r}")
        step = int(step)
        purge = False
        if self.last_step is None:
            if step != 0:
                raise ValueError(
                    f"the first snapshot of a new run must be step 0 (the pre-trained model), got step {step}; "
                    "call snapshot(0) before the first optimizer step"
                )
        elif step <= self.last_step:
            if self._orphans_purged:
                raise ValueError(
                    f"step must be after the last snapshot ({self.last_step}), got {step}; "
                    "pass resume=True to continue a run from an earlier checkpoint"
                )
            purge = True
        self._orphans_purged = True
        capture = self.probe_pass.capture()
        if purge:
            self._put(("purge", step))
        self._put(("write", step, kind, epoch, time.time(), capture))
        self.last_step = step
        return True

    def flush(self) -> None:
        """Block until every queued snapshot is on disk."""
        if self._thread.is_alive():
            self._queue.join()
        self._raise_pending()

    def discard_after(self, step: int) -> list[int]:
        """Delete the snapshots after ``step``: the orphans of a crashed attempt resumed from ``step``.

        Returns the discarded steps; :attr:`last_step` becomes the last step kept.
        """
        self.flush()
        purged = [] if self._stopped else self.writer.purge_from(int(step) + 1)
        kept = self.writer.steps()
        self.last_step = kept[-1] if kept else None
        return purged

    def close(self, status: str = "finished", reason: str | None = None) -> None:
        """Drain the queue, publish the run's final status, release the run and stop the writer.

        The status is written on every way out whenever ``status.json`` can be written:
        ``status`` (``finished``, or ``failed``/``interrupted`` with ``reason``), and ``failed``
        with the I/O error when a failure stopped the recording earlier. Safe to call twice.
        """
        if self._closed:
            return
        self._closed = True
        exit_hooks.untrack(self)
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        try:
            if self._failure is not None:
                status, reason = "failed", f"recording stopped: {type(self._failure).__name__}: {self._failure}"
            self._close_writer(status, reason)
        except OSError as err:
            self._fail(err)
        finally:
            if self._tensorboard is not None:
                self._tensorboard.close()
        self._raise_pending()

    def _close_writer(self, status: str, reason: str | None) -> None:
        """Publish the final status, then release the writer lock (even if the status cannot be written)."""
        try:
            details = {"last_step": self._published_step()}
            if reason:
                details["reason"] = reason
            self.writer.set_status(status, **details)
        finally:
            self.writer.close()

    def _published_step(self) -> int | None:
        return self.last_step if self._failure is None else self._published

    def __enter__(self) -> AttentionRecorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(exit_hooks.status_for(exc_type), None if exc_type is None else f"{exc_type.__name__}: {exc}".rstrip(": "))

    # ------------------------------------------------------------- internals
    def _put(self, item) -> None:
        while True:
            try:
                self._queue.put(item, timeout=1.0)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    raise RuntimeError("the attnflows writer thread died; see the earlier warning") from None

    def _raise_pending(self) -> None:
        if self.strict and self._error is not None:
            error, self._error = self._error, None
            raise error

    def _fail(self, err: BaseException) -> None:
        self._stopped = True
        if self._failure is None:
            self._failure = err
        if self.strict:
            self._error = err
        else:
            warnings.warn(
                f"attnflows stopped recording after an error writing to {self.run_dir.name}: {err}. "
                "Training goes on and earlier snapshots are intact; pass strict=True to raise instead.",
                RuntimeWarning,
                stacklevel=2,
            )

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._stopped:
                    continue
                if item[0] == "purge":
                    self.writer.purge_from(item[1])
                    self._published = None if self._published is None or self._published >= item[1] else self._published
                else:
                    self._write(*item[1:])
            except BaseException as err:  # noqa: BLE001 - any failure stops recording, never training
                self._fail(err)
            finally:
                self._queue.task_done()

    def _write(self, step: int, kind: str, epoch, wall_time: float, capture: ProbeCapture) -> None:
        if step == 0:
            self._reference = capture.attention
        elif self._reference is None:
            self._reference = self._load_reference()
        summaries = snapshot_summaries(capture.attention, self._reference)
        for stream, scores in (capture.importance or {}).items():
            summaries.setdefault(stream, {})["importance"] = scores
        products = self._products(capture)
        for stream, metrics in products.summaries.items():
            summaries.setdefault(stream, {}).update(metrics)
        accuracy = _accuracy(capture.logits, self.probe.probe_set.labels)
        self.writer.write_snapshot(
            step,
            attention=capture.attention,
            logits=capture.logits,
            summaries=summaries,
            kind=kind,
            epoch=epoch,
            wall_time=wall_time,
            means=products.means,
        )
        self._published = step
        if self._tensorboard is not None or self._health.warn:
            health = self._health.observe(step, capture.attention, summaries, self._reference)
            if self._tensorboard is not None:
                self._tensorboard.scalars(step, {**layer_scalars(summaries, accuracy), **health})

    def _products(self, capture: ProbeCapture) -> StepProducts:
        """What a viewer would derive from this snapshot's long examples (:mod:`.step_products`); none for
        reduced rows, whose head means and metrics would not be those of the model's attention."""
        if self.reduction.rows != "all" or self.reduction.top_k is not None:
            return StepProducts()
        return snapshot_products(capture.attention, self.probe.tokens, self.probe.word_ids,
                                 classification_last=self._classification_last)

    def _load_reference(self) -> dict[str, list[np.ndarray]] | None:
        from .reader import open_run

        run = open_run(self.run_dir)
        try:
            if 0 not in run.steps:
                return None
            return {s: [run.attention(i, 0, s) for i in range(run.num_examples)] for s in run.streams}
        finally:
            run.close()

    def _close_at_exit(self) -> None:
        try:
            self.close(exit_hooks.exit_status())
        except Exception as err:  # noqa: BLE001 - never raise from interpreter exit
            print(f"attnflows: could not close the recorder at exit: {err}", file=sys.stderr)


def snapshot_summaries(
    attention: dict[str, list[np.ndarray]], reference: dict[str, list[np.ndarray]] | None
) -> dict[str, dict[str, np.ndarray]]:
    """Per-stream ``{metric: [examples, layers, heads]}``: entropy, and change from the reference snapshot."""
    from .analysis import head_cosine_similarity, head_entropy, head_js_divergence

    summaries = {}
    for stream, per_example in attention.items():
        metrics = {"entropy": np.stack([head_entropy(a) for a in per_example])}
        if reference is not None and stream in reference:
            ref = reference[stream]
            metrics["js_from_start"] = np.stack([head_js_divergence(r, a) for r, a in zip(ref, per_example)])
            metrics["cosine_from_start"] = np.stack([head_cosine_similarity(r, a) for r, a in zip(ref, per_example)])
        summaries[stream] = metrics
    return summaries


# ------------------------------------------------------------------ helpers
def _accuracy(logits: np.ndarray | None, labels) -> float | None:
    if logits is None or labels is None:
        return None
    labels = np.asarray(labels)
    if labels.max() >= logits.shape[1]:
        return None
    return float((logits.argmax(axis=1) == labels).mean())


def _schema_arrays(model, probe: TokenizedProbe, streams: dict, hparams: dict, reduction: Reduction,
                   trainer_args: dict | None) -> tuple[dict, dict]:
    """``run.json``'s and ``probe.h5``'s content for this model and probe (the schema is :mod:`.schema`'s)."""
    import torch
    import transformers

    from . import __version__

    fed = fed_input_names(model, probe)
    versions = {"attnflows": __version__, "torch": torch.__version__, "transformers": transformers.__version__}
    meta = run_meta(model, probe, streams, hparams, reduction, fed_inputs=fed,
                    classification_last=is_decoder_only(model), versions=versions,
                    trainer_args=redact(trainer_args) if trainer_args else None)
    arrays = probe_arrays(probe, fed_inputs=fed, encoder_decoder=getattr(model.config, "is_encoder_decoder", False))
    return meta, arrays

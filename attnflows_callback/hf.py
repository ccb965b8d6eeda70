"""Hugging Face ``Trainer`` callback: attention snapshots along a ``Trainer.train`` timeline."""

from __future__ import annotations

import math
import os
import sys

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from .timeline import (
    RECORDER_DEFAULTS,
    SnapshotTimeline,
    announce,
    as_probe_set,
    check_hparams,
    check_name,
    find_tokenizer,
    fresh_run_dir,
    named_run_dir,
    probe_set_fields,
    recording_message,
)
from .capture import find_pretrained_model
from .options import RecorderOptions
from .probe import ProbeSet
from .schedule import DEFAULT_LOG_PER_DECADE, SnapshotSchedule
from .sharding import is_global_rank_zero, joint_probing


class AttentionFlowsTrainerCallback(TrainerCallback, ExportableState):
    """Record attention on a probe set during ``Trainer.train``, into its TensorBoard run.

    Where the data goes, with no configuration: the directory of the Trainer's
    ``TensorBoardCallback`` when one is active (``report_to="tensorboard"``), so the
    snapshots sit in the same TensorBoard run as the loss; otherwise the directory it
    would use (transformers 5 defaults to ``report_to="none"``): ``$TENSORBOARD_LOGGING_DIR``,
    else ``output_dir/runs/<date>_<host>``. ``log_dir`` wins when given. A folder that
    already holds an attnflows run gets the new one in ``version_N`` inside it. One INFO
    line on the ``attnflows`` logger says where. Only world process zero writes. Under DDP it
    alone runs the probe pass, on the unwrapped model the Trainer hands its callbacks; when
    that model's parameters are sharded (FSDP1, FSDP2 through accelerate or
    ``from_pretrained(distributed_config=...)``, DeepSpeed ZeRO-3), every rank joins each
    probe pass, on rank zero's word (see docs/distributed.md).

    The tokenizer is ``tokenizer=``, else the Trainer's ``processing_class`` (its
    ``.tokenizer`` for a processor); the model is the one being trained. Hyperparameters:
    the ones runs are compared by (:data:`COMPARED_TRAINING_ARGS`, plus ``model``,
    ``precision`` and ``total_train_batch_size``) and ``hparams`` go to TensorBoard's
    HParams dashboard and ``run.json``'s ``hparams``; every ``TrainingArguments`` field is
    kept in ``run.json`` as ``trainer_args``.

    Resume: ``train(resume_from_checkpoint=...)`` continues the run recorded in the
    checkpoint's ``trainer_state.json`` (its ``run_dir``), even when the TensorBoard
    directory of the new attempt has another date; snapshots of the crashed attempt
    after the checkpoint's step are discarded. ``state()`` holds JSON values only, so
    ``restore_callback_states_from_checkpoint=True`` can rebuild the callback (``model``
    and ``tokenizer`` are not saved: they come from the Trainer).

    Faults: transformers has no exception hook, so nothing waits for ``on_train_end``:
    every snapshot is published on its own, and a process that dies of an exception marks
    the run ``failed`` (``interrupted`` for Ctrl-C) at exit. If the exception is caught and
    ``train`` is called again, the stale run is closed as ``failed`` first; or call
    :meth:`close` yourself.

    Args:
        probe_set: the fixed inputs (a ProbeSet, or its fields as a dict).
        log_dir: the run directory (default: the TensorBoard run's, as above).
        every_n_steps: snapshot every ``n`` optimizer steps (None: no fixed interval).
        log_per_decade: log-spaced snapshots per factor of ten in steps (None: none).
        at_checkpoints: snapshot whenever a checkpoint is saved (``on_save``).
        at_epoch_ends: snapshot at the end of each epoch.
        name: record into ``<run dir>/<name>``, a TensorBoard run of its own; needed for a
            second instance in the same Trainer.
        hparams: extra hyperparameters for the run's metadata and TensorBoard.
        model: default: the model the Trainer trains.
        tokenizer: default: the Trainer's ``processing_class``.
        max_length: tokens kept per probe example; None: the tokenizer's ``model_max_length``,
            at most 128.
        encoding, batch_size, strict, overwrite, tensorboard, layers, heads, rows,
            top_k, head_importance, health_warnings: the recording options, each documented
            and checked in :class:`~attnflows_callback.options.RecorderOptions`.

    Raises:
        ValueError: a bad schedule or recorder argument (checked here); no tokenizer (checked
            when training starts).
        TypeError: ``probe_set`` is not a ProbeSet or dict, or a flag is not a bool.

    Example:
        >>> import tempfile, torch
        >>> from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
        >>> class Tok:  # the smallest tokenizer-like object, for the example only
        ...     name_or_path = "toy"
        ...     def __call__(self, text, pair=None, **kw):
        ...         return {"input_ids": [2] + [5 + len(w) % 20 for w in text.split()] + [3]}
        ...     def convert_ids_to_tokens(self, ids): return [str(i) for i in ids]
        >>> model = BertForSequenceClassification(BertConfig(hidden_size=16, num_hidden_layers=2,
        ...     num_attention_heads=2, intermediate_size=16, vocab_size=30))
        >>> data = [{"input_ids": torch.randint(5, 25, (6,)), "labels": torch.tensor(k % 2)} for k in range(8)]
        >>> run_dir = tempfile.mkdtemp()
        >>> callback = AttentionFlowsTrainerCallback(ProbeSet(["good film", "bad"]), log_dir=run_dir,
        ...                                          every_n_steps=3, tokenizer=Tok())
        >>> args = TrainingArguments(tempfile.mkdtemp(), max_steps=4, per_device_train_batch_size=2,
        ...                          report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True,
        ...                          log_level="error", logging_strategy="no")
        >>> _ = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()  # doctest: +ELLIPSIS
        {'train_runtime': ...}
        >>> from attnflows_callback import open_run
        >>> open_run(run_dir).steps.tolist()
        [0, 1, 3, 4]
    """

    def __init__(
        self,
        probe_set: ProbeSet | dict,
        *,
        log_dir: str | None = None,
        every_n_steps: int | None = None,
        log_per_decade: int | None = DEFAULT_LOG_PER_DECADE,
        at_checkpoints: bool = True,
        at_epoch_ends: bool = True,
        name: str | None = None,
        hparams: dict | None = None,
        model=None,
        tokenizer=None,
        encoding: str = RECORDER_DEFAULTS["encoding"],
        max_length: int | None = RECORDER_DEFAULTS["max_length"],
        batch_size: int = RECORDER_DEFAULTS["batch_size"],
        strict: bool = RECORDER_DEFAULTS["strict"],
        overwrite: bool = RECORDER_DEFAULTS["overwrite"],
        tensorboard: bool = RECORDER_DEFAULTS["tensorboard"],
        layers=RECORDER_DEFAULTS["layers"],
        heads=RECORDER_DEFAULTS["heads"],
        rows: str = RECORDER_DEFAULTS["rows"],
        top_k: int | None = RECORDER_DEFAULTS["top_k"],
        head_importance: bool = RECORDER_DEFAULTS["head_importance"],
        health_warnings: bool = RECORDER_DEFAULTS["health_warnings"],
    ):
        if log_dir is not None and not isinstance(log_dir, str):
            log_dir = str(log_dir)
        self.probe_set = as_probe_set(probe_set)
        self.schedule = SnapshotSchedule(every_n_steps, log_per_decade, at_checkpoints, at_epoch_ends)
        self.log_dir = log_dir
        self.name = check_name(name)
        self.hparams = check_hparams(hparams)
        self.model = model
        self.tokenizer = tokenizer
        self._options = RecorderOptions(encoding=encoding, max_length=max_length, batch_size=batch_size, strict=strict,
                                        overwrite=overwrite, tensorboard=tensorboard, layers=layers, heads=heads, rows=rows,
                                        top_k=top_k, head_importance=head_importance, health_warnings=health_warnings).as_kwargs()
        self.timeline = SnapshotTimeline(self.probe_set, self.schedule, **self._options)
        self.run_dir: str | None = None  # restored from the checkpoint on resume

    # ------------------------------------------------------------------ state
    def state(self) -> dict:
        return {
            "args": {
                "probe_set": probe_set_fields(self.probe_set),
                "log_dir": self.log_dir,
                "name": self.name,
                **self.schedule.as_dict(),
                "hparams": self.hparams,
                **self._options,
            },
            "attributes": {"run_dir": self.run_dir},
        }

    def close(self, status: str = "failed") -> None:
        """Close the run now with ``status``: for a caller that caught a training exception."""
        self.timeline.close(status)

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        hf_model = find_pretrained_model(self.model if self.model is not None else model)
        probing = joint_probing(model if model is not None else hf_model, hf_model)  # None unless sharded
        # The rank whose word the others take writes: torch.distributed's rank zero. (The Trainer's own
        # notion can differ: under DeepSpeed on CPU every process believes it is world process zero.)
        writer = state.is_world_process_zero if probing is None else is_global_rank_zero()
        if not writer and probing is None:
            return
        tokenizer = find_tokenizer(self.tokenizer, getattr(processing_class, "tokenizer", processing_class),
                                   fix=NO_TOKENIZER_FIX)
        step = state.global_step
        resumed_run_dir = _saved_run_dir(state, self) if step > 0 and writer else None
        resume = resumed_run_dir is not None
        if probing is not None:  # every rank makes the passes of a fresh or a resumed run alike: rank zero says which
            resume = probing.agree(resume)
        if not writer:
            why = None
        elif resume:
            self.run_dir, why = resumed_run_dir, "continuing the run saved in the checkpoint"
        else:
            base_dir, why = self._base_dir(args)
            self.run_dir = fresh_run_dir(named_run_dir(base_dir, self.name))
        self.timeline.start(
            hf_model,
            tokenizer,
            self.run_dir if writer else None,
            step=step,
            resume=resume,
            is_writer=writer,
            hparams={**compared_hparams(args, hf_model), **self.hparams},
            trainer_args=args.to_sanitized_dict(),
            sharded=probing,
        )
        if writer and self.timeline.recorder is not None:
            announce(recording_message(self.run_dir, why))

    def _base_dir(self, args) -> tuple[str, str]:
        """Where this run records, and why there: ``log_dir``, the TensorBoard run, or where it would be."""
        if self.log_dir is not None:
            return self.log_dir, "log_dir"
        active = _tensorboard_dir(self)
        if active is not None:
            return active, "the Trainer's TensorBoard run"
        env = os.environ.get("TENSORBOARD_LOGGING_DIR")
        if env:
            return os.path.expanduser(env), "$TENSORBOARD_LOGGING_DIR"
        from transformers.integrations.integration_utils import default_logdir

        return (os.path.join(args.output_dir, default_logdir()),
                "report_to has no 'tensorboard': where its TensorBoard run would be")

    def on_step_end(self, args, state, control, **kwargs):
        self.timeline.event("step", state.global_step, _epoch(state))
        self._final_before_best_model_reload(args, state, control)

    def on_save(self, args, state, control, **kwargs):
        self.timeline.event("checkpoint", state.global_step, _epoch(state))
        self._final_before_best_model_reload(args, state, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        self.timeline.event("epoch_end", state.global_step, _epoch(state))

    def on_train_end(self, args, state, control, **kwargs):
        if args.load_best_model_at_end and state.best_model_checkpoint is not None:
            # The model now holds the best checkpoint's weights, not the last step's: the last step
            # was recorded before the reload (_final_before_best_model_reload); record nothing now.
            self.timeline.close("finished")
        else:
            self.timeline.finish(state.global_step, _epoch(state))

    def _final_before_best_model_reload(self, args, state, control) -> None:
        """The last step's snapshot, while the model still holds its weights, when the Trainer will
        load the best checkpoint back before ``on_train_end`` (``load_best_model_at_end``).

        Training stops after this step when ``should_training_stop`` is set: by the step count
        in ``on_step_end``, or by early stopping on evaluation, which comes before ``on_save``.
        """
        if args.load_best_model_at_end and control.should_training_stop:
            self.timeline.event("final", state.global_step, _epoch(state))


NO_TOKENIZER_FIX = (
    "it looks at tokenizer= of AttentionFlowsTrainerCallback, then the Trainer's processing_class; pass "
    "processing_class=tokenizer to Trainer(...) (transformers 5 renamed its tokenizer= argument), or "
    "tokenizer=... to AttentionFlowsTrainerCallback"
)

# The TrainingArguments runs are compared by; with model, precision and total_train_batch_size they
# are the run's hparams (TensorBoard's HParams table, `attnflows summary`). run.json keeps them all.
COMPARED_TRAINING_ARGS = (
    "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs", "max_steps",
    "warmup_steps", "warmup_ratio", "lr_scheduler_type", "weight_decay", "optim", "seed",
)


def compared_hparams(args, model) -> dict:
    """The hyperparameters people compare fine-tuning runs by, from ``TrainingArguments`` and the model.

    ``warmup_ratio`` only where the installed transformers still has it.

    Example:
        >>> from transformers import BertConfig, BertForSequenceClassification, TrainingArguments
        >>> args = TrainingArguments("out", learning_rate=3e-5, gradient_accumulation_steps=4, use_cpu=True)
        >>> model = BertForSequenceClassification(BertConfig(hidden_size=8, num_hidden_layers=1,
        ...     num_attention_heads=2, intermediate_size=8, vocab_size=10))
        >>> hparams = compared_hparams(args, model)
        >>> hparams["learning_rate"], hparams["total_train_batch_size"], hparams["precision"], hparams["model"]
        (3e-05, 32, 'fp32', 'BertForSequenceClassification')
    """
    full = args.to_sanitized_dict()
    hparams = {"model": getattr(model.config, "_name_or_path", "") or type(model).__name__}
    hparams.update({key: full[key] for key in COMPARED_TRAINING_ARGS if key in full})
    hparams["total_train_batch_size"] = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
    hparams["precision"] = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
    return hparams


def _epoch(state) -> int | None:
    """The 0-based epoch the last optimizer step belongs to (``state.epoch`` is 1.0 after epoch 0's last step)."""
    if state.epoch is None:
        return None
    return max(0, math.ceil(state.epoch - 1e-9) - 1)


def _saved_run_dir(state, callback) -> str | None:
    """The run directory this callback recorded into, from the checkpoint's ``trainer_state.json``."""
    if callback.run_dir is not None:  # restore_callback_states_from_checkpoint=True set it already
        return callback.run_dir
    saved = (state.stateful_callbacks or {}).get(type(callback).__name__)
    mine = callback.state()["args"]["probe_set"]
    for entry in saved if isinstance(saved, list) else [saved]:
        args = entry.get("args", {}) if isinstance(entry, dict) else {}
        if args.get("probe_set") == mine and args.get("name") == callback.name:
            return entry.get("attributes", {}).get("run_dir")
    return None


def _tensorboard_dir(callback) -> str | None:
    """The directory of the TensorBoardCallback that runs beside ``callback``, if any.

    transformers hands a callback no reference to the Trainer or the other callbacks; the
    ``CallbackHandler`` that calls this hook is on the stack, so it is found there.
    """
    from transformers.integrations import TensorBoardCallback
    from transformers.trainer_callback import CallbackHandler

    frame = sys._getframe(1)
    while frame is not None:
        handler = frame.f_locals.get("self")
        if isinstance(handler, CallbackHandler) and any(cb is callback for cb in handler.callbacks):
            for other in handler.callbacks:
                if isinstance(other, TensorBoardCallback) and other.tb_writer is not None:
                    return str(getattr(other.tb_writer, "log_dir", None) or other.logging_dir)
            return None
        frame = frame.f_back
    return None

"""Lightning callback: attention snapshots along a ``Trainer.fit`` timeline.

One class serves both ``lightning.pytorch`` and ``pytorch_lightning``: it derives from the
``Callback`` of each package that is installed, so either Trainer accepts it as
``callbacks=cb`` or ``callbacks=[cb]``.
"""

from __future__ import annotations

import os
import warnings

from .timeline import (
    RECORDER_DEFAULTS,
    SHARDED_WARNING,
    ShardedProbing,
    SnapshotTimeline,
    announce,
    as_probe_set,
    check_hparams,
    check_name,
    find_tokenizer,
    fresh_run_dir,
    named_run_dir,
    next_version_dir,
    probe_fingerprint,
    recording_message,
)
from .capture import find_pretrained_model
from .options import RecorderOptions
from .probe import ProbeSet
from .schedule import DEFAULT_LOG_PER_DECADE, SnapshotSchedule
from .sharding import joint_probing

STATE_VERSION = 1


def _callback_bases() -> tuple[type, ...]:
    bases = []
    try:
        from lightning.pytorch import Callback
    except ImportError:
        pass
    else:
        bases.append(Callback)
    try:
        from pytorch_lightning import Callback
    except ImportError:
        pass
    else:
        bases.append(Callback)
    if not bases:
        raise ImportError("attnflows_callback.lightning needs `lightning` or `pytorch_lightning`; pip install lightning")
    return tuple(bases)


class AttentionFlowsCallback(*_callback_bases()):
    """Record attention on a probe set during ``Trainer.fit``, into the trainer's TensorBoard run.

    Where the data goes, with no configuration: with a ``TensorBoardLogger`` (Lightning's
    default when tensorboard is installed) or a ``CSVLogger`` first in ``loggers``, its
    ``log_dir`` (``lightning_logs/version_N`` under ``default_root_dir``), in ``attnflows/``,
    with TensorBoard scalars (per-layer change from the pre-trained snapshot, probe accuracy)
    and the hyperparameters beside them. With ``logger=False`` or another logger (W&B,
    MLflow, ...), a new ``default_root_dir/lightning_logs/version_N``. A folder that already
    holds an attnflows run gets the new one in ``version_N`` inside it. One INFO line on the
    ``attnflows`` logger says where; ``name`` records into a sub-folder.

    Only global rank zero writes. Under DDP it alone runs the probe pass, on the plain Hugging
    Face model (never through the DDP wrapper); under FSDP (``FSDPStrategy``,
    ``ModelParallelStrategy``) every rank joins each probe pass, on rank zero's word (see
    docs/distributed.md). Nothing is recorded during the sanity check, under
    ``fast_dev_run``, or in ``validate``/``test``/``predict``.

    Resume: ``fit(ckpt_path=...)`` continues the *original* run. ``state_dict`` records its
    directory; Lightning opens a new ``version_N`` on resume, but the snapshots keep going
    to the recorded one, and those of the crashed attempt after the checkpoint's step are
    discarded, so the timeline never shows a step twice.

    Args:
        probe_set: the fixed inputs to record attention on.
        every_n_steps: snapshot every ``n`` optimizer steps (None: no fixed interval).
        log_per_decade: log-spaced snapshots per factor of ten in steps (None: none).
        at_checkpoints: snapshot whenever a checkpoint is saved.
        at_epoch_ends: snapshot at the end of each training epoch.
        name: record into ``<log_dir>/<name>``, a TensorBoard run of its own; needed for a
            second instance in the same Trainer (another probe set or schedule).
        model: the Hugging Face model; default: the ``PreTrainedModel`` inside the LightningModule.
        tokenizer: default: the LightningModule's ``tokenizer`` attribute, else the
            LightningDataModule's (``trainer.datamodule.tokenizer``).
        hparams: extra hyperparameters for the run's metadata and TensorBoard's HParams
            dashboard, on top of the LightningModule's ``hparams`` (also handed to the
            Trainer's TensorBoardLogger, whose session TensorBoard would show otherwise).
        max_length: tokens kept per probe example; None: the tokenizer's ``model_max_length``,
            at most 128.
        encoding, batch_size, strict, overwrite, tensorboard, layers, heads, rows,
            top_k, head_importance, health_warnings: the recording options, each documented
            and checked in :class:`~attnflows_callback.options.RecorderOptions`.

    Raises:
        ValueError: a bad schedule or recorder argument (checked here); no tokenizer found
            (checked when training starts).
        TypeError: ``probe_set`` is not a ProbeSet, or a flag is not a bool.

    Example:
        >>> import tempfile, torch, lightning.pytorch as L
        >>> from transformers import BertConfig, BertForSequenceClassification
        >>> class Tok:  # the smallest tokenizer-like object, for the example only
        ...     name_or_path = "toy"
        ...     def __call__(self, text, pair=None, **kw):
        ...         return {"input_ids": [2] + [5 + len(w) % 20 for w in text.split()] + [3]}
        ...     def convert_ids_to_tokens(self, ids): return [str(i) for i in ids]
        >>> class Classifier(L.LightningModule):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.model = BertForSequenceClassification(BertConfig(hidden_size=16,
        ...             num_hidden_layers=2, num_attention_heads=2, intermediate_size=16, vocab_size=30))
        ...         self.tokenizer = Tok()
        ...     def training_step(self, batch, batch_idx):
        ...         return self.model(input_ids=batch[0], labels=batch[1]).loss
        ...     def configure_optimizers(self):
        ...         return torch.optim.SGD(self.parameters(), lr=0.1)
        >>> data = torch.utils.data.TensorDataset(torch.randint(5, 25, (8, 6)), torch.randint(0, 2, (8,)))
        >>> callback = AttentionFlowsCallback(ProbeSet(["good film", "bad"]), every_n_steps=3)
        >>> root = tempfile.mkdtemp()
        >>> trainer = L.Trainer(max_steps=4, default_root_dir=root, callbacks=callback, logger=True,
        ...                     enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
        >>> trainer.fit(Classifier(), torch.utils.data.DataLoader(data, batch_size=2))
        >>> from attnflows_callback import open_run
        >>> open_run(trainer.log_dir).steps.tolist()
        [0, 1, 3, 4]
    """

    def __init__(
        self,
        probe_set: ProbeSet,
        *,
        every_n_steps: int | None = None,
        log_per_decade: int | None = DEFAULT_LOG_PER_DECADE,
        at_checkpoints: bool = True,
        at_epoch_ends: bool = True,
        name: str | None = None,
        model=None,
        tokenizer=None,
        hparams: dict | None = None,
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
        self.probe_set = as_probe_set(probe_set)
        self.schedule = SnapshotSchedule(every_n_steps, log_per_decade, at_checkpoints, at_epoch_ends)
        self.name = check_name(name)
        self.model = model
        self.tokenizer = tokenizer
        self.hparams = check_hparams(hparams)
        options = RecorderOptions(encoding=encoding, max_length=max_length, batch_size=batch_size, strict=strict,
                                  overwrite=overwrite, tensorboard=tensorboard, layers=layers, heads=heads, rows=rows,
                                  top_k=top_k, head_importance=head_importance, health_warnings=health_warnings)
        self.timeline = SnapshotTimeline(self.probe_set, self.schedule, options)
        self.log_dir: str | None = None  # where a fresh run of this fit records, resolved on every rank
        self._log_dir_reason = ""
        self.run_dir: str | None = None  # where the snapshots go: log_dir, or the resumed run's
        self._resumed_run_dir: str | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(name=self.name, probe=probe_fingerprint(self.probe_set),
                                        **self.schedule.as_dict())

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer, pl_module, stage: str) -> None:
        if _should_skip(trainer, stage):
            return
        base_dir, self._log_dir_reason = _base_dir(trainer)  # a collective: every rank must ask
        self.log_dir = trainer.strategy.broadcast(fresh_run_dir(named_run_dir(base_dir, self.name)), src=0)
        self._resumed_run_dir = None
        logger = trainer.logger
        if self.hparams and self.timeline.options.tensorboard and self.name is None and _is_tensorboard(logger):
            # TensorBoard shows the first hparams session of a run; Lightning logs the module's
            # own right after setup, so ours (module's plus the extra ones) must come first.
            logger.log_hyperparams({**_module_hparams(pl_module), **self.hparams})

    def on_train_start(self, trainer, pl_module) -> None:
        if _should_skip(trainer):
            return
        sharded = _sharded_strategy(trainer.strategy)
        if sharded is not None and not _strategy_names(trainer.strategy) & FSDP_STRATEGIES:  # DeepSpeed ZeRO-3
            if trainer.is_global_zero:
                warnings.warn(SHARDED_WARNING.format(strategy=sharded), RuntimeWarning, stacklevel=2)
            return
        model = find_pretrained_model(self.model if self.model is not None else pl_module)
        probing = _sharded_probing(trainer, model) if sharded is not None else None
        step = trainer.global_step
        resume = step > 0 and self._resumed_run_dir is not None
        self.run_dir = self._resumed_run_dir if resume else self.log_dir
        writer = trainer.is_global_zero
        tokenizer = None
        if writer or probing:
            tokenizer = find_tokenizer(self.tokenizer, getattr(pl_module, "tokenizer", None),
                                       getattr(trainer.datamodule, "tokenizer", None), fix=NO_TOKENIZER_FIX)
        self.timeline.start(
            model,
            tokenizer,
            self.run_dir,
            step=step,
            resume=resume,
            is_writer=writer,
            hparams={**_module_hparams(pl_module), **self.hparams},
            sharded=probing,
        )
        if writer and self.timeline.recorder is not None:
            announce(recording_message(self.run_dir, "continuing the run saved in the checkpoint" if resume
                                       else self._log_dir_reason))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not _should_skip(trainer):
            self.timeline.event("step", trainer.global_step, trainer.current_epoch)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not _should_skip(trainer):
            self.timeline.event("epoch_end", trainer.global_step, trainer.current_epoch)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if not _should_skip(trainer):
            self.timeline.event("checkpoint", trainer.global_step, trainer.current_epoch)

    def on_train_end(self, trainer, pl_module) -> None:
        if not _should_skip(trainer):
            self.timeline.finish(trainer.global_step, trainer.current_epoch)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self.timeline.close("finished")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        status = "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed"
        try:
            self.timeline.close(status)
        except Exception as err:  # noqa: BLE001 - the training exception must be the one that surfaces
            warnings.warn(f"attnflows could not close the run after a training error: {err}", RuntimeWarning,
                          stacklevel=2)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {"version": STATE_VERSION, "run_dir": self.run_dir}

    def load_state_dict(self, state_dict: dict) -> None:
        self._resumed_run_dir = state_dict.get("run_dir")


NO_TOKENIZER_FIX = (
    "it looks at tokenizer= of AttentionFlowsCallback, the LightningModule's `tokenizer` attribute, then the "
    "LightningDataModule's (trainer.datamodule.tokenizer); set self.tokenizer = AutoTokenizer.from_pretrained(...) "
    "in either module's __init__, or pass tokenizer=... to AttentionFlowsCallback"
)
RUN_FOLDER_LOGGERS = {"TensorBoardLogger": "the TensorBoardLogger's run", "CSVLogger": "the CSVLogger's folder"}


def _base_dir(trainer) -> tuple[str, str]:
    """Where a fresh run records, and why there.

    The first logger's ``log_dir`` if it is a TensorBoardLogger or CSVLogger, else a new
    ``default_root_dir/lightning_logs/version_N``. Every rank must call it (a broadcast).
    """
    loggers = trainer.loggers
    first = loggers[0] if loggers else None
    names = {cls.__name__ for cls in type(first).__mro__} if first is not None else set()
    for logger_name, why in RUN_FOLDER_LOGGERS.items():
        if logger_name in names:
            return trainer.log_dir, why
    why = "logger=False" if first is None else f"{type(first).__name__} writes no TensorBoard run"
    root = os.path.join(trainer.default_root_dir, "lightning_logs")
    return trainer.strategy.broadcast(next_version_dir(root), src=0), f"{why}: a new version under default_root_dir"


def _should_skip(trainer, stage: str | None = None) -> bool:
    """Sanity check, fast_dev_run, or anything but fit: attnflows records nothing."""
    fitting = (stage or str(getattr(trainer.state.fn, "value", trainer.state.fn))) == "fit"
    return not fitting or bool(trainer.fast_dev_run) or trainer.sanity_checking


FSDP_STRATEGIES = {"FSDPStrategy", "ModelParallelStrategy"}  # sharded, and recorded with every rank joining


def _strategy_names(strategy) -> set[str]:
    return {cls.__name__ for cls in type(strategy).__mro__}


def _sharded_strategy(strategy) -> str | None:
    """The strategy's name when parameters are sharded across ranks (FSDP, DeepSpeed ZeRO-3), else None."""
    names = _strategy_names(strategy)
    if names & FSDP_STRATEGIES:
        return type(strategy).__name__
    if "DeepSpeedStrategy" in names and getattr(strategy, "zero_stage_3", False):
        return f"{type(strategy).__name__} (ZeRO stage 3)"
    return None


def _sharded_probing(trainer, model) -> ShardedProbing | None:
    """How every rank joins the probe pass of ``model`` under Lightning's FSDPStrategy or ModelParallelStrategy.

    Lightning's FSDP1 wraps the LightningModule itself; :func:`~attnflows_callback.sharding.joint_probing`
    summons that root unit's own parameters around each pass.
    """
    return joint_probing(trainer.strategy.model, model,
                         agree=lambda wanted: bool(trainer.strategy.broadcast(bool(wanted), src=0)))


def _is_tensorboard(logger) -> bool:
    return logger is not None and any(cls.__name__ == "TensorBoardLogger" for cls in type(logger).__mro__)


def _module_hparams(pl_module) -> dict:
    hparams = getattr(pl_module, "hparams", None)
    return dict(hparams) if hparams else {}

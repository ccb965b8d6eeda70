"""The trainer layer: one snapshot timeline per training run, the way to add a trainer.

A trainer integration (the Lightning and Hugging Face callbacks, or yours: see the trainer
recipe in docs/extending.md) translates its framework's events into four calls on
:class:`SnapshotTimeline` (``start``, ``event``, ``finish``, ``close``) and takes its recording
options as :class:`~attnflows_callback.options.RecorderOptions`; the schedule, the
one-snapshot-per-step rule, resume and the writer-rank rule live here, once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import warnings
from collections.abc import Mapping

from .capture import ProbePass
from .options import RecorderOptions
from .probe import ProbeSet
from .recorder import AttentionRecorder
from .schedule import SnapshotSchedule
from .schema import DATA_DIRNAME, RUN_JSON
from .sharding import ShardedProbing  # noqa: F401  (re-exported: the callbacks hand it to start)

EVENT_KINDS = {"start": "step", "step": "step", "checkpoint": "checkpoint", "epoch_end": "epoch_end", "final": "final"}
SHARDED_WARNING = (
    "attnflows does not record under {strategy}: parameters are sharded across ranks, and recording needs every "
    "rank to join the probe pass, which is implemented for Lightning's FSDPStrategy and ModelParallelStrategy and "
    "for the transformers Trainer (see docs/distributed.md). Training goes on without snapshots."
)


class SnapshotTimeline:
    """Drives an :class:`AttentionRecorder` from training events; only the writer rank records.

    Every rank keeps the same ``last_step`` (the schedule depends only on the optimizer
    step, which all ranks share), so every rank makes the same decisions; only the rank
    built with ``is_writer=True`` touches the filesystem. Without ``sharded``, only the
    writer runs the probe pass. With it, every rank runs each probe pass (the writer's
    word decides whether there is one), and the writer keeps the result.

    Args:
        probe_set: the probe set to record.
        schedule: when to snapshot.
        options: how to record (default: ``RecorderOptions(**recorder_options)``).
        recorder_options: the fields of :class:`~attnflows_callback.options.RecorderOptions`,
            as keyword arguments, when ``options`` is not given.

    Example (a trainer of its own: step events, then the end of training):
        >>> import tempfile
        >>> from transformers import BertConfig, BertForSequenceClassification
        >>> from attnflows_callback import open_run
        >>> model = BertForSequenceClassification(BertConfig(hidden_size=16, num_hidden_layers=2,
        ...     num_attention_heads=2, intermediate_size=16, vocab_size=30))
        >>> class Tok:  # the smallest tokenizer-like object, for the example only
        ...     name_or_path = "toy"
        ...     def __call__(self, text, pair=None, **kw):
        ...         return {"input_ids": [2] + [5 + len(w) % 20 for w in text.split()] + [3]}
        ...     def convert_ids_to_tokens(self, ids): return [str(i) for i in ids]
        >>> timeline = SnapshotTimeline(ProbeSet(["good film", "bad"]), SnapshotSchedule(every_n_steps=2, log_per_decade=None),
        ...                             RecorderOptions(tensorboard=False))
        >>> run_dir = tempfile.mkdtemp()
        >>> timeline.start(model, Tok(), run_dir, step=0, resume=False, is_writer=True, hparams={})
        >>> [timeline.event("step", step) for step in (1, 2, 3)]
        [False, True, False]
        >>> timeline.finish(3)
        >>> open_run(run_dir).steps.tolist()
        [0, 2, 3]
    """

    def __init__(self, probe_set: ProbeSet, schedule: SnapshotSchedule, options: RecorderOptions | None = None,
                 **recorder_options):
        if options is not None and recorder_options:
            raise TypeError("pass options=RecorderOptions(...) or its fields as keyword arguments, not both")
        self.options = options if options is not None else RecorderOptions(**recorder_options)
        self.probe_set = probe_set
        self.schedule = schedule
        self.recorder_options = self.options.as_kwargs()
        self.recorder: AttentionRecorder | None = None
        self.probe_pass: ProbePass | None = None
        self.sharded: ShardedProbing | None = None
        self.last_step: int | None = None
        self.active = False

    def start(self, model, tokenizer, run_dir, *, step: int, resume: bool, is_writer: bool, hparams: dict,
              sharded: ShardedProbing | None = None, trainer_args: dict | None = None) -> None:
        """Begin recording at optimizer step ``step``, or continue the run in ``run_dir`` when ``resume``."""
        self.close("failed")  # a previous attempt in this process that never reached its end
        if sharded is not None and self.options.head_importance:
            raise ValueError("head_importance=True is not supported under sharded training (FSDP); "
                             "pass head_importance=False")
        self.active = True
        self.last_step = step
        self.sharded = sharded
        if step > 0 and not resume:
            if is_writer:
                self._give_up(
                    f"training starts at step {step} but the checkpoint holds no attnflows state, and a new run "
                    "must start at step 0; resume from a checkpoint saved with this callback"
                )
            return
        if not is_writer and sharded is None:
            return
        with self._gathered():
            if is_writer:
                self.recorder = AttentionRecorder(model, tokenizer, self.probe_set, run_dir, hparams=hparams,
                                                  trainer_args=trainer_args, resume=resume,
                                                  sharded=sharded is not None, **self.recorder_options)
                self.probe_pass = self.recorder.probe_pass
            else:  # the same passes as the writer's recorder makes, in the same order
                probe = self.probe_set.tokenize(tokenizer, max_length=self.options.max_length)
                self.probe_pass = ProbePass(model, probe, batch_size=self.options.batch_size,
                                            reduction=self.options.reduction())
                self.probe_pass.stream_shapes()
        if not resume:
            self._snapshot(step, EVENT_KINDS["start"])
            return
        wanted, kind = False, "step"
        if self.recorder is not None:
            self.recorder.discard_after(step)
            if self.recorder.last_step is None:
                self._give_up(f"{run_dir} holds no snapshots to continue from")
            elif self.recorder.last_step < step and (self.schedule.at_checkpoints or self.schedule.is_scheduled_step(step)):
                # The crashed attempt died between saving this checkpoint and publishing its snapshot.
                wanted, kind = True, "checkpoint" if self.schedule.at_checkpoints else "step"
        self._snapshot(step, kind, wanted=wanted)

    def event(self, event: str, step: int, epoch: int | None = None) -> bool:
        """Handle a training event at optimizer step ``step``; True when a snapshot was taken."""
        if not self.active or (self.last_step is not None and step <= self.last_step):
            return False
        if not self.schedule.wants(event, step):
            return False
        self.last_step = step
        return self._snapshot(step, EVENT_KINDS[event], epoch)

    def finish(self, step: int, epoch: int | None = None) -> None:
        """The last step's snapshot, then close the run as finished."""
        self.event("final", step, epoch)
        self.close("finished")

    def close(self, status: str) -> None:
        """Publish the run's status and stop; safe to call on any rank, and twice."""
        self.active = False
        self.probe_pass = None
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.close(status)

    @property
    def run_dir(self) -> str | None:
        return None if self.recorder is None else str(self.recorder.run_dir)

    def _snapshot(self, step: int, kind: str, epoch: int | None = None, *, wanted: bool = True) -> bool:
        """The writer records ``step``; under sharded training every rank makes the same probe pass."""
        if self.sharded is None:
            return wanted and self.recorder is not None and self.recorder.snapshot(step, kind=kind, epoch=epoch)
        if not self.sharded.agree(wanted and self.recorder is not None):
            return False
        with self._gathered():
            if self.recorder is not None and self.recorder.snapshot(step, kind=kind, epoch=epoch):
                return True
            if self.probe_pass is not None:  # another rank, or a writer whose recording stopped: keep in step
                self.probe_pass.capture()
            return False

    def _gathered(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext() if self.sharded is None else self.sharded.gathered()

    def _give_up(self, reason: str) -> None:
        warnings.warn(f"attnflows is not recording: {reason}", RuntimeWarning, stacklevel=3)
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.close("failed")


def recorder_options(**options) -> dict:
    """The recorder's keyword arguments, checked now (:class:`RecorderOptions`) so a bad value fails before training."""
    return RecorderOptions(**options).as_kwargs()


# The options' defaults, by name: the callbacks' keyword defaults.
RECORDER_DEFAULTS = RecorderOptions().as_kwargs()


def as_probe_set(value) -> ProbeSet:
    """A :class:`ProbeSet`, or its fields as a dict (the form callback state is saved in)."""
    if isinstance(value, ProbeSet):
        return value
    if isinstance(value, Mapping):
        return ProbeSet(**value)
    raise TypeError(
        f"probe_set must be a ProbeSet (or its fields as a dict), got {type(value).__name__}; "
        "build one with ProbeSet(texts, labels=...)"
    )


def probe_set_fields(probe_set: ProbeSet) -> dict:
    """JSON-serialisable fields of a probe set; ``ProbeSet(**fields)`` rebuilds it."""
    return {
        "texts": list(probe_set.texts),
        "text_pairs": None if probe_set.text_pairs is None else list(probe_set.text_pairs),
        "labels": None if probe_set.labels is None else list(probe_set.labels),
        "label_names": None if probe_set.label_names is None else list(probe_set.label_names),
    }


def probe_fingerprint(probe_set: ProbeSet) -> str:
    """A short hash of the probe set's content, to tell two callbacks in one trainer apart."""
    payload = json.dumps(probe_set_fields(probe_set), sort_keys=True).encode("utf-8")
    return hashlib.sha1(payload).hexdigest()[:12]


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_name(name) -> str | None:
    """None, or one folder name: letters, digits, ``_``, ``.``, ``-``."""
    if name is not None and (not isinstance(name, str) or not NAME.match(name)):
        raise ValueError(f"name must be None or a folder name of letters, digits, '_', '.' and '-', got {name!r}")
    return name


def named_run_dir(run_dir: str, name: str | None) -> str:
    """Where a named callback records: a TensorBoard run nested in the trainer's own."""
    return run_dir if name is None else os.path.join(run_dir, name)


def check_hparams(hparams) -> dict:
    if hparams is not None and not isinstance(hparams, Mapping):
        raise TypeError(f"hparams must be a dict of hyperparameters, got {type(hparams).__name__}")
    return dict(hparams or {})


def find_tokenizer(*candidates, fix: str):
    """The first candidate that is not None: the places a trainer keeps a tokenizer, in order.

    Raises:
        ValueError: none was found; the message ends with ``fix``, the trainer-specific
            advice that lists exactly the places searched.
    """
    for candidate in candidates:
        if candidate is not None:
            return candidate
    raise ValueError(f"attnflows found no tokenizer: {fix}")


def fresh_run_dir(run_dir: str) -> str:
    """``run_dir``, or a new ``run_dir/version_N`` (N >= 1) when it already holds an attnflows run.

    A fresh run never mixes with (or is refused by) an earlier one in the same folder, the
    folder's own run counting as version 0.

    Example:
        >>> import os, tempfile
        >>> root = tempfile.mkdtemp()
        >>> fresh_run_dir(root) == root  # nothing recorded there yet
        True
        >>> os.makedirs(os.path.join(root, "attnflows")); open(os.path.join(root, "attnflows", "run.json"), "w").close()
        >>> os.path.relpath(fresh_run_dir(root), root)
        'version_1'
    """
    if not os.path.exists(os.path.join(run_dir, DATA_DIRNAME, RUN_JSON)):
        return run_dir
    return next_version_dir(run_dir, first=1)


def next_version_dir(parent: str, *, first: int = 0) -> str:
    """``parent/version_N``: one past the highest existing ``version_*``, at least ``first`` (Lightning's numbering).

    Example:
        >>> import os, tempfile
        >>> root = tempfile.mkdtemp()
        >>> os.path.basename(next_version_dir(root))
        'version_0'
        >>> os.makedirs(os.path.join(root, "version_3"))
        >>> os.path.basename(next_version_dir(root))
        'version_4'
    """
    taken = [first - 1]
    with contextlib.suppress(OSError):
        for entry in os.listdir(parent):
            number = entry[len("version_"):]
            if entry.startswith("version_") and number.isdigit():
                taken.append(int(number))
    return os.path.join(parent, f"version_{max(taken) + 1}")


LOGGER_NAME = "attnflows"


def announce(message: str) -> None:
    """Log one INFO line on the ``attnflows`` logger, visible without any logging set-up.

    The logger gets level INFO (unless the user set one) and, when the root logger has no
    handler, a stderr handler of its own; ``logging.getLogger("attnflows").setLevel("WARNING")``
    silences it.
    """
    logger = logging.getLogger(LOGGER_NAME)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.info(message)


def recording_message(run_dir: str, why: str) -> str:
    """The one line a callback logs when it starts a run: where, why there, and how to look."""
    logdir = os.path.dirname(os.path.abspath(run_dir))
    return f"recording attention into {run_dir} ({why}); view it with: tensorboard --logdir {logdir}"

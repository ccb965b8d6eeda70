"""What the Lightning and Hugging Face callbacks share: one snapshot timeline per training run.

The callbacks translate their framework's events into four calls on
:class:`SnapshotTimeline` (``start``, ``event``, ``finish``, ``close``); the schedule, the
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .capture import ProbePass, Reduction
from .probe import ProbeSet, check_max_length
from .recorder import AttentionRecorder
from .schedule import SnapshotSchedule
from .store import DEFAULT_ENCODING, ENCODINGS

EVENT_KINDS = {"start": "step", "step": "step", "checkpoint": "checkpoint", "epoch_end": "epoch_end", "final": "final"}
SHARDED_WARNING = (
    "attnflows does not record under {strategy}: parameters are sharded across ranks, and recording needs every "
    "rank to join the probe pass, which is implemented for Lightning's FSDPStrategy and ModelParallelStrategy only "
    "(see docs/distributed.md). Training goes on without snapshots."
)


@dataclass(frozen=True)
class ShardedProbing:
    """How the ranks of a sharded (FSDP) run make each probe pass together.

    Args:
        agree: takes the writer rank's yes/no and returns it on every rank (a broadcast
            from rank zero), so that no rank enters a probe pass alone.
        gathered: a context manager, entered by every rank around each pass, that makes
            the parameters the probe forward needs available (FSDP1: the root unit's own
            parameters, which the inner model's forward would otherwise never gather).
    """

    agree: Callable[[bool], bool]
    gathered: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


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
        recorder_options: keyword arguments for :class:`AttentionRecorder`.
    """

    def __init__(self, probe_set: ProbeSet, schedule: SnapshotSchedule, **recorder_options):
        self.probe_set = probe_set
        self.schedule = schedule
        self.recorder_options = recorder_options
        self.recorder: AttentionRecorder | None = None
        self.probe_pass: ProbePass | None = None
        self.sharded: ShardedProbing | None = None
        self.last_step: int | None = None
        self.active = False

    def start(self, model, tokenizer, run_dir, *, step: int, resume: bool, is_writer: bool, hparams: dict,
              sharded: ShardedProbing | None = None, trainer_args: dict | None = None) -> None:
        """Begin recording at optimizer step ``step``, or continue the run in ``run_dir`` when ``resume``."""
        self.close("failed")  # a previous attempt in this process that never reached its end
        if sharded is not None and self.recorder_options["head_importance"]:
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
                probe = self.probe_set.tokenize(tokenizer, max_length=self.recorder_options["max_length"])
                self.probe_pass = ProbePass(model, probe, batch_size=self.recorder_options["batch_size"],
                                            reduction=Reduction(**{k: self.recorder_options[k] for k in REDUCTION_KEYS}))
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


def recorder_options(encoding: str, max_length: int | None, batch_size: int, strict: bool, overwrite: bool,
                     tensorboard: bool, *, layers=None, heads=None, rows: str = "all", top_k: int | None = None,
                     head_importance: bool = False) -> dict:
    """The recorder's keyword arguments, checked now so a bad value fails before training starts."""
    reduction = Reduction(layers=layers, heads=heads, rows=rows, top_k=top_k)
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {sorted(ENCODINGS)}, got {encoding!r}")
    check_max_length(max_length)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    for name, value in (("strict", strict), ("overwrite", overwrite), ("tensorboard", tensorboard),
                        ("head_importance", head_importance)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    return dict(encoding=encoding, max_length=max_length, batch_size=batch_size, strict=strict,
                overwrite=overwrite, tensorboard=tensorboard, head_importance=head_importance,
                **reduction.describe())


REDUCTION_KEYS = ("layers", "heads", "rows", "top_k")
RECORDER_DEFAULTS = dict(encoding=DEFAULT_ENCODING, max_length=None, batch_size=16, strict=False,
                         overwrite=False, tensorboard=True)


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
    if not os.path.exists(os.path.join(run_dir, "attnflows", "run.json")):
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

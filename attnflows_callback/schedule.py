"""When snapshots are taken: a small pure object that both training callbacks share.

A step is an optimizer step (``trainer.global_step`` in Lightning, ``state.global_step``
in the Hugging Face Trainer). Step 0, before the first optimizer step, and the final step
are always taken; the other triggers are chosen per run.
"""

from __future__ import annotations

import math

EVENTS = ("start", "step", "checkpoint", "epoch_end", "final")
DEFAULT_LOG_PER_DECADE = 2


class SnapshotSchedule:
    """Which optimizer steps get an attention snapshot.

    Args:
        every_n_steps: also snapshot every ``n`` optimizer steps; None for no fixed interval.
        log_per_decade: log-spaced snapshots, ``n`` per factor of ten in steps
            (``round(10 ** (k / n))``): dense early, where fine-tuning changes attention
            fastest. With the default of 2: steps 1, 3, 10, 32, 100, 316, 1000, ...
            None for no log spacing.
        at_checkpoints: snapshot whenever the trainer saves a checkpoint.
        at_epoch_ends: snapshot at the end of each training epoch.

    Step 0 (``"start"``) and the last step (``"final"``) are always taken. The schedule is
    stateless; the callbacks make sure one optimizer step is never snapshotted twice
    (under gradient accumulation, or when a checkpoint and an epoch end coincide).

    Raises:
        ValueError: ``every_n_steps`` or ``log_per_decade`` is not None or an integer >= 1.
        TypeError: ``at_checkpoints`` or ``at_epoch_ends`` is not a bool.

    Example:
        >>> schedule = SnapshotSchedule(every_n_steps=50, log_per_decade=2)
        >>> [s for s in range(201) if schedule.wants("step", s)]
        [0, 1, 3, 10, 32, 50, 100, 150, 200]
        >>> schedule.wants("start", 0), schedule.wants("final", 7), schedule.wants("epoch_end", 7)
        (True, True, True)
        >>> SnapshotSchedule(at_epoch_ends=False).wants("epoch_end", 7)
        False
        >>> SnapshotSchedule(every_n_steps=0)
        Traceback (most recent call last):
        ...
        ValueError: every_n_steps must be None or an integer >= 1, got 0
    """

    def __init__(
        self,
        every_n_steps: int | None = None,
        log_per_decade: int | None = DEFAULT_LOG_PER_DECADE,
        at_checkpoints: bool = True,
        at_epoch_ends: bool = True,
    ):
        for name, value in (("every_n_steps", every_n_steps), ("log_per_decade", log_per_decade)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
        for name, value in (("at_checkpoints", at_checkpoints), ("at_epoch_ends", at_epoch_ends)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        self.every_n_steps = every_n_steps
        self.log_per_decade = log_per_decade
        self.at_checkpoints = at_checkpoints
        self.at_epoch_ends = at_epoch_ends

    def wants(self, event: str, step: int) -> bool:
        """Whether ``event`` at optimizer step ``step`` calls for a snapshot.

        ``event`` is one of ``"start"`` (before the first optimizer step), ``"step"`` (after
        an optimizer step), ``"checkpoint"``, ``"epoch_end"`` or ``"final"``.
        """
        if event not in EVENTS:
            raise ValueError(f"event must be one of {EVENTS}, got {event!r}")
        if event in ("start", "final"):
            return True
        if event == "checkpoint":
            return self.at_checkpoints
        if event == "epoch_end":
            return self.at_epoch_ends
        return self.is_scheduled_step(step)

    def is_scheduled_step(self, step: int) -> bool:
        """Whether ``step`` is on the fixed-interval or log-spaced grid (step 0 always is)."""
        if step == 0:
            return True
        if self.every_n_steps is not None and step % self.every_n_steps == 0:
            return True
        return self.log_per_decade is not None and _is_log_step(step, self.log_per_decade)

    def as_dict(self) -> dict:
        """The constructor arguments, JSON-serialisable."""
        return {
            "every_n_steps": self.every_n_steps,
            "log_per_decade": self.log_per_decade,
            "at_checkpoints": self.at_checkpoints,
            "at_epoch_ends": self.at_epoch_ends,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"SnapshotSchedule({args})"

    def __eq__(self, other) -> bool:
        return isinstance(other, SnapshotSchedule) and self.as_dict() == other.as_dict()


def log_steps(per_decade: int, up_to: int) -> list[int]:
    """The log-spaced steps ``round(10 ** (k / per_decade))`` up to ``up_to``, without repeats.

    Example:
        >>> log_steps(4, 100)
        [1, 2, 3, 6, 10, 18, 32, 56, 100]
    """
    steps: list[int] = []
    k = 0
    while (step := _log_step(k, per_decade)) <= up_to:
        if not steps or step != steps[-1]:
            steps.append(step)
        k += 1
    return steps


def _log_step(k: int, per_decade: int) -> int:
    return int(round(10 ** (k / per_decade)))


def _is_log_step(step: int, per_decade: int) -> bool:
    k = round(per_decade * math.log10(step))
    return any(_log_step(j, per_decade) == step for j in (k - 1, k, k + 1) if j >= 0)

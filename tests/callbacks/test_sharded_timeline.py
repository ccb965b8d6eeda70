"""Under sharded training every rank makes the writer's probe passes, in the writer's order.

FSDP turns each probe forward into collectives, so a rank that skipped one, or made one more,
would hang the others. Here the writer and another rank run in one process: the writer's
yes/no answers stand in for the broadcast, and a forward pre-hook lists each rank's passes.
"""

import pytest

from attnflows_callback.timeline import RECORDER_DEFAULTS, ShardedProbing, SnapshotTimeline, recorder_options
from attnflows_callback.schedule import SnapshotSchedule
from tests.helpers import probe_set, tiny_model, tokenizer

EVENTS = [("step", 1), ("step", 2), ("checkpoint", 2), ("step", 3), ("epoch_end", 3), ("step", 4)]


def timeline(**overrides):
    options = {**RECORDER_DEFAULTS, "batch_size": 4, "tensorboard": False, **overrides}
    schedule = SnapshotSchedule(every_n_steps=2, log_per_decade=None, at_epoch_ends=False)
    return SnapshotTimeline(probe_set(), schedule, **recorder_options(**options))


def forwards_of(model) -> list:
    passes = []
    model.register_forward_pre_hook(lambda module, args, kwargs: passes.append(tuple(kwargs["input_ids"].shape)),
                                    with_kwargs=True)
    return passes


def train(line, model, run_dir, *, is_writer, agree, step=0, resume=False, events=EVENTS, final=5):
    line.start(model, tokenizer(), run_dir, step=step, resume=resume, is_writer=is_writer, hparams={},
               sharded=ShardedProbing(agree))
    taken = [line.event(event, s) for event, s in events if s > step]
    line.finish(final)
    return taken


def writer_then_other(run_dir, **kwargs):
    said = []

    def writer_agree(wanted):
        said.append(wanted)
        return wanted

    writer_model, other_model = tiny_model("bert", seed=0), tiny_model("bert", seed=0)
    writer_passes, other_passes = forwards_of(writer_model), forwards_of(other_model)
    taken = train(timeline(), writer_model, run_dir, is_writer=True, agree=writer_agree, **kwargs)
    answers = iter(said)
    train(timeline(), other_model, None, is_writer=False, agree=lambda wanted: next(answers), **kwargs)
    assert next(answers, None) is None, "the other rank asked fewer times than the writer answered"
    return taken, writer_passes, other_passes


def test_every_rank_makes_the_writers_probe_passes_in_order(tmp_path):
    taken, writer_passes, other_passes = writer_then_other(tmp_path / "run")
    assert taken == [False, True, False, False, False, True]  # steps 2 and 4, then the final step 5
    assert writer_passes and other_passes == writer_passes


def test_a_resumed_run_keeps_the_ranks_in_step(tmp_path):
    writer_then_other(tmp_path / "run", events=EVENTS[:3], final=2)
    _, writer_passes, other_passes = writer_then_other(tmp_path / "run", step=2, resume=True)
    assert writer_passes and other_passes == writer_passes


def test_a_writer_that_gave_up_tells_the_other_ranks_to_skip(tmp_path):
    with pytest.warns(RuntimeWarning, match="holds no snapshots to continue from"):
        taken, writer_passes, other_passes = writer_then_other(tmp_path / "empty", step=2, resume=True)
    assert not any(taken) and other_passes == writer_passes


def test_head_importance_is_refused_under_sharded_training(tmp_path):
    line = timeline(head_importance=True)
    with pytest.raises(ValueError, match="head_importance=True is not supported under sharded training"):
        line.start(tiny_model("bert"), tokenizer(), tmp_path, step=0, resume=False, is_writer=True, hparams={},
                   sharded=ShardedProbing(lambda wanted: wanted))
    assert not (tmp_path / "attnflows").exists()

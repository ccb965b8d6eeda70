"""SnapshotSchedule: the grids it draws, and the arguments it refuses."""

import pytest

from attnflows_callback.schedule import SnapshotSchedule, log_steps


def scheduled(schedule, up_to):
    return [s for s in range(up_to + 1) if schedule.wants("step", s)]


def test_every_n_steps_grid_includes_step_zero():
    assert scheduled(SnapshotSchedule(every_n_steps=4, log_per_decade=None), 13) == [0, 4, 8, 12]


def test_log_spacing_is_dense_early_and_never_repeats_a_step():
    assert scheduled(SnapshotSchedule(log_per_decade=2), 1000) == [0, 1, 3, 10, 32, 100, 316, 1000]
    assert log_steps(10, 10) == [1, 2, 3, 4, 5, 6, 8, 10]
    assert scheduled(SnapshotSchedule(log_per_decade=10), 10)[1:] == log_steps(10, 10)


def test_start_and_final_are_always_taken_other_events_follow_their_flags():
    none = SnapshotSchedule(every_n_steps=None, log_per_decade=None, at_checkpoints=False, at_epoch_ends=False)
    assert none.wants("start", 0) and none.wants("final", 17)
    assert not none.wants("checkpoint", 5) and not none.wants("epoch_end", 5) and scheduled(none, 50) == [0]
    assert SnapshotSchedule().wants("checkpoint", 5) and SnapshotSchedule().wants("epoch_end", 5)


@pytest.mark.parametrize("name", ["every_n_steps", "log_per_decade"])
@pytest.mark.parametrize("value", [0, -3, 2.5, "10", True])
def test_bad_intervals_are_refused_naming_what_is_allowed(name, value):
    with pytest.raises(ValueError, match=rf"{name} must be None or an integer >= 1, got {value!r}"):
        SnapshotSchedule(**{name: value})


def test_bad_flags_and_events_are_refused():
    with pytest.raises(TypeError, match="at_checkpoints must be True or False, got 1"):
        SnapshotSchedule(at_checkpoints=1)
    with pytest.raises(ValueError, match=r"event must be one of \('start', 'step', 'checkpoint', 'epoch_end', 'final'\)"):
        SnapshotSchedule().wants("save", 3)


def test_as_dict_round_trips():
    schedule = SnapshotSchedule(every_n_steps=7, log_per_decade=None, at_epoch_ends=False)
    assert SnapshotSchedule(**schedule.as_dict()) == schedule


def test_callbacks_check_reduction_options_before_training_starts():
    from attnflows_callback import ProbeSet
    from attnflows_callback.hf import AttentionFlowsTrainerCallback
    from attnflows_callback.lightning import AttentionFlowsCallback

    for callback in (AttentionFlowsCallback, AttentionFlowsTrainerCallback):
        with pytest.raises(ValueError, match=r"rows must be one of \('all', 'cls'\)"):
            callback(ProbeSet(["a"]), rows="diagonal")
        with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
            callback(ProbeSet(["a"]), top_k=0)
        state = callback(ProbeSet(["a"]), layers=[0], top_k=4, head_importance=True).timeline.recorder_options
        assert (state["layers"], state["top_k"], state["head_importance"]) == ([0], 4, True)

"""AttentionFlowsTrainerCallback in a real transformers Trainer: schedules, run directory, resume, faults."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from transformers import Trainer

from attnflows_callback import open_run
from attnflows_callback.hf import AttentionFlowsTrainerCallback
from tests.callbacks._models import FailAt, hf_args, hf_dataset, hf_model, snapshot_events
from tests.helpers import probe_set, tokenizer

SCRIPTS = Path(__file__).parent / "scripts"


def callback(**kwargs):
    kwargs.setdefault("log_per_decade", None)
    kwargs.setdefault("at_epoch_ends", False)
    return AttentionFlowsTrainerCallback(probe_set(), **kwargs)


def train(output_dir, callbacks, resume_from_checkpoint=None, **args):
    trainer = Trainer(model=hf_model(), args=hf_args(output_dir, **args), train_dataset=hf_dataset(),
                      eval_dataset=hf_dataset(4), processing_class=tokenizer(), callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer


@pytest.mark.parametrize(
    ("schedule", "args", "expected"),
    [
        pytest.param(dict(every_n_steps=3, at_epoch_ends=True), dict(num_train_epochs=2),
                     [(0, "step"), (3, "step"), (6, "step"), (8, "epoch_end"), (9, "step"), (12, "step"),
                      (15, "step"), (16, "epoch_end")], id="every_n_steps+epoch_ends"),
        pytest.param(dict(log_per_decade=4), dict(max_steps=12),
                     [(0, "step"), (1, "step"), (2, "step"), (3, "step"), (6, "step"), (10, "step"), (12, "final")],
                     id="log_spaced"),
        pytest.param(dict(every_n_steps=1, at_epoch_ends=True), dict(num_train_epochs=2, gradient_accumulation_steps=3),
                     [(0, "step"), (1, "step"), (2, "step"), (3, "step"), (4, "step"), (5, "step"), (6, "step")],
                     id="grad_accumulation"),
        pytest.param(dict(at_checkpoints=True), dict(max_steps=10, save_strategy="steps", save_steps=3,
                                                     eval_strategy="steps", eval_steps=4),
                     [(0, "step"), (3, "checkpoint"), (6, "checkpoint"), (9, "checkpoint"), (10, "checkpoint")],
                     id="save_and_eval_intervals"),
    ],
)
def test_snapshot_steps_follow_the_schedule_exactly(tmp_path, schedule, args, expected):
    train(tmp_path / "out", [callback(log_dir=str(tmp_path / "run"), **schedule)], **args)
    assert snapshot_events(tmp_path / "run") == expected


def test_data_goes_to_the_tensorboard_callbacks_run_and_tensorboard_shows_scalars_and_hparams(tmp_path):
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    train(tmp_path / "out", [callback(every_n_steps=2)], max_steps=4, report_to="tensorboard",
          logging_strategy="steps", logging_steps=1)
    (run_dir,) = (tmp_path / "out" / "runs").iterdir()
    assert snapshot_events(run_dir) == [(0, "step"), (2, "step"), (4, "step")]
    assert open_run(run_dir).meta["hparams"]["learning_rate"] == 0.5

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path / "out" / "runs"))
    multiplexer.Reload()
    assert list(multiplexer.Runs()) == [run_dir.name]
    tags = multiplexer.Runs()[run_dir.name]["tensors"]
    assert {"attnflows/change/layer_00", "attnflows/change/layer_01", "attnflows/probe_accuracy", "train/loss"} <= set(tags)
    steps = [e.step for e in multiplexer.Tensors(run_dir.name, "attnflows/change/layer_01")]
    assert steps == [0, 2, 4]
    content = multiplexer.PluginRunToTagToContent("hparams")[run_dir.name]["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["learning_rate"].number_value == 0.5 and hparams["max_steps"].number_value == 4


def test_tensorboard_logging_dir_from_the_environment_is_followed(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    train(tmp_path / "out", [callback()], max_steps=2, report_to="tensorboard")
    assert snapshot_events(tmp_path / "tb") == [(0, "step"), (2, "final")]


def test_without_tensorboard_or_log_dir_training_is_refused_before_it_starts(tmp_path):
    with pytest.raises(ValueError, match="pass log_dir=... to AttentionFlowsTrainerCallback"):
        train(tmp_path / "out", [callback()], max_steps=2)


@pytest.mark.parametrize("restore_callback_states", [False, True])
def test_resume_from_checkpoint_continues_one_timeline_with_the_same_values(tmp_path, restore_callback_states):
    common = dict(max_steps=12, save_strategy="steps", save_steps=4, report_to="tensorboard",
                  restore_callback_states_from_checkpoint=restore_callback_states)

    def attnflows():
        return callback(every_n_steps=3, at_checkpoints=True)

    train(tmp_path / "a", [attnflows()], **common)
    (expected_dir,) = (tmp_path / "a" / "runs").iterdir()

    crashed = attnflows()
    with pytest.raises(RuntimeError, match="boom at step 10"):
        train(tmp_path / "b", [crashed, FailAt(10)], **common)
    crashed.close("failed")  # the process goes on after the exception, so the caller closes the run
    run_dir = Path(crashed.run_dir)
    assert [s for s, _ in snapshot_events(run_dir)] == [0, 3, 4, 6, 8, 9]
    assert open_run(run_dir).status["status"] == "failed"
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(tmp_path / "b" / "runs" / "second-attempt")
    try:
        train(tmp_path / "b", [attnflows()], resume_from_checkpoint=str(tmp_path / "b" / "checkpoint-8"), **common)
    finally:
        del os.environ["TENSORBOARD_LOGGING_DIR"]
    assert not (tmp_path / "b" / "runs" / "second-attempt" / "attnflows").exists()

    expected = snapshot_events(expected_dir)
    assert expected == [(0, "step"), (3, "step"), (4, "checkpoint"), (6, "step"), (8, "checkpoint"), (9, "step"),
                        (12, "step")]
    assert snapshot_events(run_dir) == expected
    with open_run(expected_dir) as a, open_run(run_dir) as b:
        assert b.status["status"] == "finished"
        for step in a.steps.tolist():
            for i in range(a.num_examples):
                np.testing.assert_allclose(b.attention(i, step), a.attention(i, step), atol=2 / 255)
            np.testing.assert_allclose(b.logits(step), a.logits(step), rtol=1e-4, atol=1e-5)


def test_state_is_json_and_rebuilds_the_callback():
    cb = callback(every_n_steps=5, name="probe-a", hparams={"task": "sst"})
    state = json.loads(json.dumps(cb.state()))
    rebuilt = AttentionFlowsTrainerCallback.from_state(state)
    assert rebuilt.state() == state and rebuilt.schedule == cb.schedule and rebuilt.probe_set == cb.probe_set


def test_a_process_that_dies_of_a_training_exception_leaves_a_readable_failed_run(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPTS / "hf_train.py"), "--out", str(tmp_path), "--fail-at", "3"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode != 0 and "boom at step 3" in result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    with open_run(run_dir) as run:
        assert run.steps.tolist() == [0, 2] and run.status["status"] == "failed" and not run.problems
        assert np.allclose(run.attention(0, 2).sum(-1), 1, atol=0.02)

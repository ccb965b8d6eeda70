"""AttentionFlowsTrainerCallback in a real transformers Trainer: schedules, run directory, resume, faults."""

import json
import os
import socket
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


def test_with_transformers_defaults_the_run_goes_where_its_tensorboard_run_would_be(tmp_path, caplog):
    caplog.set_level("INFO", logger="attnflows")
    trainer = train(tmp_path / "out", [callback()], max_steps=2)  # report_to="none", transformers 5's default
    (run_dir,) = (tmp_path / "out" / "runs").iterdir()
    assert run_dir.name.endswith("_" + socket.gethostname())
    assert snapshot_events(run_dir) == [(0, "step"), (2, "final")]
    assert list(run_dir.glob("events.out.tfevents.*"))  # so TensorBoard lists the run
    (line,) = [r.getMessage() for r in caplog.records if r.name == "attnflows"]
    assert f"recording attention into {run_dir}" in line and "report_to has no 'tensorboard'" in line
    assert f"tensorboard --logdir {tmp_path / 'out' / 'runs'}" in line
    assert trainer.state.global_step == 2


def test_a_fresh_run_in_a_used_folder_gets_a_new_version_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    train(tmp_path / "out", [callback()], max_steps=2)
    train(tmp_path / "out", [callback()], max_steps=3)
    assert snapshot_events(tmp_path / "tb") == [(0, "step"), (2, "final")]
    assert snapshot_events(tmp_path / "tb" / "version_1") == [(0, "step"), (3, "final")]


def test_hparams_are_the_ones_runs_are_compared_by_and_run_json_keeps_every_training_argument(tmp_path):
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    cb = callback(log_dir=str(tmp_path / "run"), hparams={"task": "sst2"})
    train(tmp_path / "out", [cb], max_steps=2, gradient_accumulation_steps=2, warmup_steps=1, weight_decay=0.01)
    meta = open_run(tmp_path / "run").meta
    assert meta["hparams"] == {
        "model": "BertForSequenceClassification", "learning_rate": 0.5, "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 2, "total_train_batch_size": 4, "num_train_epochs": 1, "max_steps": 2,
        "warmup_steps": 1, "lr_scheduler_type": "constant", "weight_decay": 0.01, "optim": "sgd", "seed": 0,
        "precision": "fp32", "task": "sst2",
    }
    assert len(meta["trainer_args"]) > 100 and meta["trainer_args"]["adam_beta2"] == 0.999
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path / "run"))
    multiplexer.Reload()
    content = multiplexer.PluginRunToTagToContent("hparams")["."]["_hparams_/session_start_info"]
    shown = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert set(shown) == set(meta["hparams"])


def test_max_length_is_the_tokenizers_capped_at_128_or_what_the_callback_is_given(tmp_path):
    train(tmp_path / "out", [callback(log_dir=str(tmp_path / "default"))], max_steps=1)
    assert open_run(tmp_path / "default").meta["max_length"] == 128  # MiniLM's tokenizer allows 512
    with pytest.warns(UserWarning, match="3 of 6 probe examples were truncated to max_length=8"):
        train(tmp_path / "out", [callback(log_dir=str(tmp_path / "short"), max_length=8)], max_steps=1)
    assert open_run(tmp_path / "short").meta["max_length"] == 8


def test_without_a_tokenizer_the_error_names_the_places_a_trainer_user_can_set_one(tmp_path):
    trainer = Trainer(model=hf_model(), args=hf_args(tmp_path / "out", max_steps=1), train_dataset=hf_dataset(),
                      callbacks=[callback(log_dir=str(tmp_path / "run"))])
    with pytest.raises(ValueError, match=r"no tokenizer: .*processing_class=tokenizer to Trainer\(\.\.\.\).*"
                                         r"tokenizer=\.\.\. to AttentionFlowsTrainerCallback"):
        trainer.train()
    assert not (tmp_path / "run").exists()


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

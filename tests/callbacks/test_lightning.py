"""AttentionFlowsCallback in real Lightning Trainers (both packages): schedules, skips, resume, faults."""

import copy
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import pytest
import pytorch_lightning as PL
import torch

from attnflows_callback import open_run
from attnflows_callback.lightning import AttentionFlowsCallback
from tests.callbacks._models import LitClassifier, PLClassifier, loader, snapshot_events, tensorboard_runs
from tests.helpers import nudge, probe_set, tokenizer

PACKAGES = {"lightning.pytorch": (L, LitClassifier), "pytorch_lightning": (PL, PLClassifier)}


def make_trainer(root, callbacks, package=L, **kwargs):
    options = dict(default_root_dir=str(root), accelerator="cpu", devices=1, max_epochs=1, enable_progress_bar=False,
                   enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                   log_every_n_steps=1)
    options.update(kwargs)
    return package.Trainer(callbacks=callbacks, **options)


def callback(**kwargs):
    kwargs.setdefault("log_per_decade", None)
    kwargs.setdefault("at_epoch_ends", False)
    return AttentionFlowsCallback(probe_set(), **kwargs)


@pytest.mark.parametrize("package", sorted(PACKAGES))
@pytest.mark.parametrize("as_list", [False, True], ids=["callbacks=cb", "callbacks=[cb]"])
def test_either_lightning_package_accepts_the_callback_passed_the_natural_way(tmp_path, package, as_list):
    pkg, module_class = PACKAGES[package]
    cb = callback(every_n_steps=2)
    trainer = make_trainer(tmp_path, [cb] if as_list else cb, pkg, max_steps=5)
    trainer.fit(module_class(), loader())
    assert Path(trainer.log_dir).name == "version_0"
    assert snapshot_events(trainer.log_dir) == [(0, "step"), (2, "step"), (4, "step"), (5, "final")]
    assert open_run(trainer.log_dir).status["status"] == "finished"


@pytest.mark.parametrize(
    ("schedule", "trainer_kwargs", "expected"),
    [
        pytest.param(dict(every_n_steps=3, at_epoch_ends=True), dict(max_epochs=2),
                     [(0, "step"), (3, "step"), (6, "step"), (8, "epoch_end"), (9, "step"), (12, "step"),
                      (15, "step"), (16, "epoch_end")], id="every_n_steps+epoch_ends"),
        pytest.param(dict(log_per_decade=4), dict(max_steps=12, max_epochs=3),
                     [(0, "step"), (1, "step"), (2, "step"), (3, "step"), (6, "step"), (10, "step"), (12, "final")],
                     id="log_spaced"),
        pytest.param(dict(every_n_steps=1, at_epoch_ends=True), dict(max_epochs=2, accumulate_grad_batches=3),
                     [(0, "step"), (1, "step"), (2, "step"), (3, "step"), (4, "step"), (5, "step"),
                      (6, "step")], id="grad_accumulation"),
    ],
)
def test_snapshot_steps_follow_the_schedule_exactly(tmp_path, schedule, trainer_kwargs, expected):
    trainer = make_trainer(tmp_path, callback(**schedule), **trainer_kwargs)
    trainer.fit(LitClassifier(), loader())  # 8 batches per epoch
    assert snapshot_events(trainer.log_dir) == expected


def test_checkpoints_and_validation_intervals_and_two_instances(tmp_path):
    first = callback(at_checkpoints=True)
    second = AttentionFlowsCallback(probe_set(labels=None), name="unlabelled", every_n_steps=5,
                                    log_per_decade=None, at_checkpoints=False, at_epoch_ends=False)
    assert first.state_key != second.state_key
    checkpoints = L.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=3, save_top_k=-1)
    trainer = make_trainer(tmp_path, [first, second, checkpoints], max_steps=10, max_epochs=2, enable_checkpointing=True,
                           val_check_interval=4, num_sanity_val_steps=2)
    trainer.fit(LitClassifier(), loader(), loader(4))
    assert snapshot_events(trainer.log_dir) == [(0, "step"), (3, "checkpoint"), (6, "checkpoint"),
                                                (9, "checkpoint"), (10, "final")]
    assert snapshot_events(Path(trainer.log_dir) / "unlabelled") == [(0, "step"), (5, "step"), (10, "step")]
    saved = torch.load(next((tmp_path / "ckpt").glob("*step=6.ckpt")), weights_only=False)["callbacks"]
    assert saved[first.state_key]["run_dir"] == trainer.log_dir
    assert saved[second.state_key]["run_dir"] == str(Path(trainer.log_dir) / "unlabelled")


def test_nothing_is_written_by_validate_test_predict_or_fast_dev_run(tmp_path):
    module = LitClassifier()
    trainer = make_trainer(tmp_path, callback(every_n_steps=1))
    trainer.validate(module, loader(4))
    trainer.predict(module, loader(4))
    make_trainer(tmp_path / "fast", callback(every_n_steps=1), fast_dev_run=3).fit(module, loader())
    assert not list(tmp_path.rglob("run.json"))


def test_an_exception_in_training_step_keeps_snapshots_readable_and_marks_the_run_failed(tmp_path):
    trainer = make_trainer(tmp_path, callback(every_n_steps=2), max_steps=10)
    with pytest.raises(RuntimeError, match="boom at step 5"):
        trainer.fit(LitClassifier(fail_at_step=5), loader())
    with open_run(trainer.log_dir) as run:
        assert run.steps.tolist() == [0, 2, 4] and run.status["status"] == "failed" and not run.problems
        for step in run.steps:
            assert np.allclose(run.attention(0, int(step)).sum(-1), 1, atol=0.02)


def test_resume_from_a_checkpoint_continues_one_timeline_with_the_same_values(tmp_path):
    def run(root, fail_at_step=None, ckpt_path=None):
        torch.manual_seed(0)
        checkpoints = L.callbacks.ModelCheckpoint(dirpath=root / "ckpt", every_n_train_steps=4, save_top_k=-1)
        trainer = make_trainer(root, [callback(every_n_steps=3, at_checkpoints=True), checkpoints], max_steps=12,
                               enable_checkpointing=True, max_epochs=2)
        trainer.fit(LitClassifier(fail_at_step=fail_at_step), loader(), ckpt_path=ckpt_path)
        return trainer

    uninterrupted = run(tmp_path / "a")
    with pytest.raises(RuntimeError, match="boom at step 10"):
        run(tmp_path / "b", fail_at_step=10)
    crashed_dir = tmp_path / "b" / "lightning_logs" / "version_0"
    assert [s for s, _ in snapshot_events(crashed_dir)] == [0, 3, 4, 6, 8, 9]  # 9: after the step-8 checkpoint
    resumed = run(tmp_path / "b", ckpt_path=tmp_path / "b" / "ckpt" / "epoch=0-step=8.ckpt")
    assert Path(resumed.log_dir).name == "version_1" and not (Path(resumed.log_dir) / "attnflows").exists()

    expected = snapshot_events(uninterrupted.log_dir)
    assert expected == [(0, "step"), (3, "step"), (4, "checkpoint"), (6, "step"), (8, "checkpoint"),
                        (9, "step"), (12, "step")]
    assert snapshot_events(crashed_dir) == expected
    with open_run(uninterrupted.log_dir) as a, open_run(crashed_dir) as b:
        assert b.status["status"] == "finished"
        for step in a.steps.tolist():
            for i in range(a.num_examples):
                np.testing.assert_allclose(b.attention(i, step), a.attention(i, step), atol=2 / 255)
            np.testing.assert_allclose(b.logits(step), a.logits(step), rtol=1e-4, atol=1e-5)


def test_sdpa_model_under_bf16_autocast_records_real_attention(tmp_path):
    trainer = make_trainer(tmp_path, callback(every_n_steps=2), max_steps=2, precision="bf16-mixed")
    module = LitClassifier(attn_implementation="sdpa")
    nudge(module.model, scale=0.3)  # peaked attention, so uniform weights could not pass for real ones
    trainer.fit(module, loader())
    assert module.model.config._attn_implementation == "sdpa"

    reference = copy.deepcopy(module.model).eval()
    reference.set_attn_implementation("eager")
    with open_run(trainer.log_dir) as run:
        assert run.steps.tolist() == [0, 2]
        for i in range(run.num_examples):
            ids = torch.tensor([tokenizer()(run.texts[i])["input_ids"]])
            with torch.no_grad():
                expected = torch.stack(reference(input_ids=ids, output_attentions=True).attentions, 1)[0].numpy()
            recorded = run.attention(i, 2)
            np.testing.assert_allclose(recorded, expected, atol=1 / 255)
            assert np.abs(recorded - 1 / recorded.shape[-1]).max() > 0.05


def test_bad_arguments_are_refused_when_the_callback_is_built():
    with pytest.raises(ValueError, match="every_n_steps must be None or an integer >= 1, got 0"):
        AttentionFlowsCallback(probe_set(), every_n_steps=0)
    with pytest.raises(ValueError, match=r"encoding must be one of \['compact', 'float16', 'uint8', 'zstd-u8'\], got 'zip'"):
        AttentionFlowsCallback(probe_set(), encoding="zip")
    with pytest.raises(TypeError, match="probe_set must be a ProbeSet"):
        AttentionFlowsCallback(["a text"])
    with pytest.raises(ValueError, match=r"max_length must be None \(the tokenizer's model_max_length, at most 128\) "
                                         r"or an integer >= 2, got 0"):
        AttentionFlowsCallback(probe_set(), max_length=0)


def test_state_from_an_older_checkpoint_without_keys_still_loads():
    cb = callback()
    cb.load_state_dict({})
    assert cb.state_dict() == {"version": 1, "run_dir": None}


def test_tensorboard_lists_the_run_with_our_scalars_and_hparams(tmp_path):
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.plugins.hparams import plugin_data_pb2

    trainer = make_trainer(tmp_path, callback(every_n_steps=2, hparams={"probe": "six sentences"}), max_steps=4)
    trainer.fit(LitClassifier(), loader())
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    run = str(Path(trainer.log_dir).relative_to(tmp_path))
    assert list(multiplexer.Runs()) == [run]
    assert {"attnflows/change/layer_00", "attnflows/probe_accuracy"} <= set(multiplexer.Runs()[run]["tensors"])
    assert [e.step for e in multiplexer.Tensors(run, "attnflows/probe_accuracy")] == [0, 2, 4]
    content = multiplexer.PluginRunToTagToContent("hparams")[run]["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["lr"].number_value == 0.5 and hparams["probe"].string_value == "six sentences"
    assert open_run(trainer.log_dir).meta["hparams"]["probe"] == "six sentences"


def test_without_a_logger_each_fit_records_into_a_new_version_under_default_root_dir(tmp_path, caplog):
    caplog.set_level("INFO", logger="attnflows")
    for steps in (2, 3):
        make_trainer(tmp_path, callback(), logger=False, max_steps=steps).fit(LitClassifier(), loader())
    runs = tmp_path / "lightning_logs"
    assert snapshot_events(runs / "version_0") == [(0, "step"), (2, "final")]
    assert snapshot_events(runs / "version_1") == [(0, "step"), (3, "final")]
    assert tensorboard_runs(tmp_path) == ["lightning_logs/version_0", "lightning_logs/version_1"]
    lines = [r.getMessage() for r in caplog.records if r.name == "attnflows"]
    assert len(lines) == 2
    assert f"into {runs / 'version_1'} (logger=False: a new version under default_root_dir)" in lines[1]


def test_with_a_csv_logger_the_run_sits_in_its_folder_and_tensorboard_lists_it(tmp_path):
    logger = L.loggers.CSVLogger(tmp_path)
    trainer = make_trainer(tmp_path, callback(every_n_steps=2), logger=logger, max_steps=4)
    trainer.fit(LitClassifier(), loader())
    run_dir = tmp_path / "lightning_logs" / "version_0"
    assert trainer.log_dir == str(run_dir) and (run_dir / "hparams.yaml").is_file()  # the CSVLogger's own files
    assert snapshot_events(run_dir) == [(0, "step"), (2, "step"), (4, "step")]
    assert tensorboard_runs(tmp_path) == ["lightning_logs/version_0"]


def test_the_tokenizer_is_found_on_the_datamodule_and_the_error_names_the_lightning_places(tmp_path):
    class TokenizerlessClassifier(LitClassifier):
        def __init__(self):
            super().__init__()
            del self.tokenizer

    class DataModule(L.LightningDataModule):
        def __init__(self, with_tokenizer: bool):
            super().__init__()
            self.tokenizer = tokenizer() if with_tokenizer else None

        def train_dataloader(self):
            return loader()

    trainer = make_trainer(tmp_path / "a", callback(), max_steps=2)
    trainer.fit(TokenizerlessClassifier(), datamodule=DataModule(with_tokenizer=True))
    assert snapshot_events(trainer.log_dir) == [(0, "step"), (2, "final")]
    with pytest.raises(ValueError, match=r"no tokenizer: .*LightningModule's `tokenizer` attribute, then the "
                                         r"LightningDataModule's \(trainer.datamodule.tokenizer\).*tokenizer=\.\.\. "
                                         r"to AttentionFlowsCallback"):
        make_trainer(tmp_path / "b", callback(), max_steps=2).fit(TokenizerlessClassifier(),
                                                                   datamodule=DataModule(with_tokenizer=False))


def test_resume_without_a_logger_continues_the_original_version(tmp_path):
    def run(fail_at_step=None, ckpt_path=None):
        checkpoints = L.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
        trainer = make_trainer(tmp_path, [callback(every_n_steps=2), checkpoints], logger=False, max_steps=4,
                               enable_checkpointing=True)
        trainer.fit(LitClassifier(fail_at_step=fail_at_step), loader(), ckpt_path=ckpt_path)

    with pytest.raises(RuntimeError, match="boom at step 3"):
        run(fail_at_step=3)
    run(ckpt_path=tmp_path / "ckpt" / "epoch=0-step=2.ckpt")
    assert snapshot_events(tmp_path / "lightning_logs" / "version_0") == [(0, "step"), (2, "step"), (4, "step")]
    assert not (tmp_path / "lightning_logs" / "version_1").exists()


def test_a_fixed_logger_version_used_twice_gets_the_second_run_in_a_new_version_inside_it(tmp_path):
    for steps in (2, 3):
        logger = L.loggers.TensorBoardLogger(tmp_path, name="", version="baseline")
        make_trainer(tmp_path, callback(), logger=logger, max_steps=steps).fit(LitClassifier(), loader())
    assert snapshot_events(tmp_path / "baseline") == [(0, "step"), (2, "final")]
    assert snapshot_events(tmp_path / "baseline" / "version_1") == [(0, "step"), (3, "final")]

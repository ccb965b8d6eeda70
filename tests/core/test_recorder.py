"""AttentionRecorder: bad input, training invariance, I/O failure, resume, statuses, and the real MiniLM."""

import os

import numpy as np
import pytest
import torch

from attnflows_callback import AttentionRecorder, ProbeSet, RunExistsError, open_run
from tests.helpers import minilm_classifier, nudge, probe_set, tiny_model, tokenizer, write_run


def recorder(run_dir, model=None, probe=None, **kwargs):
    return AttentionRecorder(model or tiny_model("bert"), tokenizer(), probe or probe_set(), run_dir, **kwargs)


def test_snapshots_are_written_in_the_background_and_read_back(tmp_path):
    model = tiny_model("bert")
    with recorder(tmp_path, model) as rec:
        assert rec.snapshot(0) is True
        nudge(model)
        rec.snapshot(7, kind="checkpoint", epoch=1)
    run = open_run(tmp_path)
    assert run.steps.tolist() == [0, 7] and run.status["status"] == "finished"
    assert run.snapshot_info(7).kind == "checkpoint" and run.snapshot_info(7).epoch == 1
    assert run.summary(0)["js_from_start"].max() == pytest.approx(0.0, abs=1e-6)
    assert run.summary(7)["js_from_start"].mean() > 0
    assert run.meta["hparams"] == {} and run.meta["classification_position"] == "first"


def test_first_snapshot_of_a_new_run_must_be_step_zero(tmp_path):
    with recorder(tmp_path) as rec:
        with pytest.raises(ValueError, match="first snapshot of a new run must be step 0"):
            rec.snapshot(5)


@pytest.mark.parametrize("step", [3, 2])
def test_a_step_that_is_not_after_the_last_one_is_refused(tmp_path, step):
    with recorder(tmp_path) as rec:
        rec.snapshot(0)
        rec.snapshot(3)
        with pytest.raises(ValueError, match=r"step must be after the last snapshot \(3\).*resume=True"):
            rec.snapshot(step)
    assert open_run(tmp_path).steps.tolist() == [0, 3]


@pytest.mark.parametrize("step", [-1, 1.5, "3", True])
def test_a_step_that_is_not_a_non_negative_integer_is_refused(tmp_path, step):
    with recorder(tmp_path) as rec:
        with pytest.raises(ValueError, match="step must be a non-negative integer"):
            rec.snapshot(step)


def test_bad_probe_input_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        recorder(tmp_path, probe=ProbeSet([]))
    with pytest.raises(TypeError, match=r"texts\[0\] must be a str"):
        recorder(tmp_path, probe=ProbeSet([None]))
    with pytest.raises(ValueError, match="labels must have one entry per text"):
        recorder(tmp_path, probe=ProbeSet(["a", "b"], labels=[1]))
    with pytest.raises(TypeError, match="probe_set must be a ProbeSet"):
        recorder(tmp_path, probe=["a", "b"])
    assert not (tmp_path / "attnflows").exists()


def test_a_tokenizer_that_does_not_fit_the_model_is_refused(tmp_path):
    small_vocab = tiny_model("bert")
    small_vocab.resize_token_embeddings(100)
    with pytest.raises(ValueError, match="does not fit the model"):
        recorder(tmp_path, small_vocab)
    assert not (tmp_path / "attnflows").exists()


def test_a_run_directory_of_another_probe_set_or_model_is_refused_and_kept(tmp_path):
    write_run(tmp_path, steps=(0, 1))
    with pytest.raises(RunExistsError, match="another probe set"):
        recorder(tmp_path, probe=ProbeSet(["other text"]))
    with pytest.raises(RunExistsError, match="another model"):
        recorder(tmp_path, model=tiny_model("gpt2"))
    with pytest.raises(RunExistsError, match="pass resume=True"):
        recorder(tmp_path)
    assert open_run(tmp_path).steps.tolist() == [0, 1]
    with recorder(tmp_path, probe=ProbeSet(["other text"]), overwrite=True) as rec:
        rec.snapshot(0)
    assert open_run(tmp_path).texts == ["other text"]


def test_resume_purges_the_orphans_of_a_crashed_attempt(tmp_path):
    write_run(tmp_path, steps=(0, 10, 20, 30), close_status="failed")
    with recorder(tmp_path, resume=True) as rec:
        rec.snapshot(20)  # resumed from the checkpoint at step 20: 20 and 30 are orphans
        rec.snapshot(25)
        with pytest.raises(ValueError, match="step must be after the last snapshot"):
            rec.snapshot(24)
    run = open_run(tmp_path)
    assert run.steps.tolist() == [0, 10, 20, 25]
    assert run.summary(25)["js_from_start"].shape == (6, 2, 4)  # the reference came back from disk


def train(model, steps, recorder=None):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = tokenizer()(["good film", "bad film", "it was fine"], return_tensors="pt", padding=True)
    labels = torch.tensor([1, 0, 1])
    model.train()
    for step in range(steps):
        if recorder is not None:
            recorder.snapshot(step)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def test_training_with_snapshots_gives_bit_identical_weights(tmp_path):
    torch.manual_seed(0)
    plain = tiny_model("bert")
    plain.config.hidden_dropout_prob = 0.1
    recorded = tiny_model("bert")
    torch.manual_seed(5)
    train(plain, 6)
    torch.manual_seed(5)
    with recorder(tmp_path, recorded) as rec:
        train(recorded, 6, rec)
    for (name, a), b in zip(plain.named_parameters(), recorded.parameters()):
        assert torch.equal(a, b), name
    assert open_run(tmp_path).steps.tolist() == list(range(6))



def test_io_failure_warns_and_keeps_earlier_snapshots(tmp_path):
    rec = recorder(tmp_path)
    rec.snapshot(0)
    rec.flush()
    snaps = tmp_path / "attnflows" / "snapshots"
    # Make the snapshot folder unusable (a file where the folder was): every write now fails.
    os.rename(snaps, tmp_path / "kept")
    snaps.write_text("not a directory")
    with pytest.warns(RuntimeWarning, match="stopped recording.*Training goes on"):
        rec.snapshot(1)
        rec.flush()
    assert rec.recording is False
    assert rec.snapshot(2) is False  # no capture cost once stopped
    rec.close()
    snaps.unlink()
    os.rename(tmp_path / "kept", snaps)
    run = open_run(tmp_path)
    assert run.steps.tolist() == [0]
    assert run.status["status"] == "failed" and run.status["last_step"] == 0  # not "running" forever
    assert run.status["reason"].startswith("recording stopped: NotADirectoryError")


def test_io_failure_raises_when_strict(tmp_path):
    rec = recorder(tmp_path, strict=True)
    rec.snapshot(0)
    rec.flush()
    snaps = tmp_path / "attnflows" / "snapshots"
    os.rename(snaps, tmp_path / "kept")
    snaps.write_text("not a directory")
    rec.snapshot(1)
    with pytest.raises(OSError):
        rec.flush()
    rec.close()
    snaps.unlink()
    os.rename(tmp_path / "kept", snaps)
    status = open_run(tmp_path).status
    assert status["status"] == "failed" and "NotADirectoryError" in status["reason"]


@pytest.mark.parametrize("error, status", [(RuntimeError, "failed"), (KeyboardInterrupt, "interrupted")])
def test_context_exit_on_an_exception_records_the_status_and_lets_it_surface(tmp_path, error, status):
    with pytest.raises(error):
        with recorder(tmp_path) as rec:
            rec.snapshot(0)
            raise error("boom")
    run = open_run(tmp_path)
    assert run.status["status"] == status and run.steps.tolist() == [0]
    assert run.status["reason"] == ("RuntimeError: boom" if error is RuntimeError else "KeyboardInterrupt: boom")


def test_snapshot_after_close_is_an_error(tmp_path):
    rec = recorder(tmp_path)
    rec.close()
    with pytest.raises(RuntimeError, match="recorder is closed"):
        rec.snapshot(0)


def test_bad_constructor_arguments_list_the_allowed_values(tmp_path):
    with pytest.raises(ValueError, match=r"encoding must be one of \['compact', 'float16', 'uint8', 'zstd-u8'\]"):
        recorder(tmp_path, encoding="jpeg")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        recorder(tmp_path, batch_size=0)


def test_real_pretrained_minilm_records_attention_equal_to_eager(tmp_path):
    model = minilm_classifier()
    assert model.config._attn_implementation == "sdpa"
    with recorder(tmp_path, model, encoding="float16") as rec:
        rec.snapshot(0)
    run = open_run(tmp_path)
    assert (run.num_layers, run.num_heads) == (6, 12)
    ids = tokenizer()(run.texts[2], return_tensors="pt")
    model.set_attn_implementation("eager")
    with torch.no_grad():
        expected = torch.stack(model(**ids, output_attentions=True).attentions)[:, 0].numpy()
    np.testing.assert_allclose(run.attention(2, 0), expected, atol=2.0**-11)


EXIT_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from attnflows_callback import AttentionRecorder
from tests.helpers import nudge, probe_set, tiny_model, tokenizer
model = tiny_model("bert")
recorder = AttentionRecorder(model, tokenizer(), probe_set(), {run_dir!r}, queue_size=8)
for step in range(4):
    recorder.snapshot(step)
    nudge(model, seed=step)
{ending}
"""


@pytest.mark.parametrize(
    "ending, status, code",
    [("pass", "finished", 0), ("raise RuntimeError('boom')", "failed", 1), ("raise KeyboardInterrupt", "interrupted", 1)],
)
def test_interpreter_exit_drains_the_queue_and_records_how_the_process_ended(tmp_path, ending, status, code):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = EXIT_SCRIPT.format(root=root, run_dir=str(tmp_path), ending=ending)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert (done.returncode != 0) == bool(code), done.stderr
    run = open_run(tmp_path)
    assert run.steps.tolist() == [0, 1, 2, 3]
    assert run.status["status"] == status


def test_head_importance_is_stored_with_each_snapshot_when_asked(tmp_path):
    with recorder(tmp_path, head_importance=True) as rec:
        rec.snapshot(0)
    importance = open_run(tmp_path).summary(0)["importance"]
    assert importance.shape == (6, 2, 4) and (importance >= 0).all() and importance.max() > 0


FULL_DISK_SCRIPT = """
import resource, signal, sys, warnings
sys.path.insert(0, {root!r})
from attnflows_callback import AttentionRecorder
from tests.helpers import nudge, probe_set, tiny_model, tokenizer
model = tiny_model("bert")
recorder = AttentionRecorder(model, tokenizer(), probe_set(), {run_dir!r}, strict={strict}, tensorboard=False)
recorder.snapshot(0)
recorder.flush()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))  # no file may grow past 1 KiB: a shard cannot be written
nudge(model)
try:
    recorder.snapshot(1)
    recorder.flush()
except OSError as err:
    print("raised", type(err).__name__)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
        recorder.close()
    except OSError:
        pass
"""


@pytest.mark.parametrize("strict", [False, True])
def test_a_write_failure_mid_run_leaves_failed_with_the_reason(tmp_path, strict):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = FULL_DISK_SCRIPT.format(root=root, run_dir=str(tmp_path), strict=strict)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert ("raised" in done.stdout) == strict
    run = open_run(tmp_path)
    assert run.steps.tolist() == [0] and run.problems == []
    assert run.status["status"] == "failed" and "File too large" in run.status["reason"]
    assert not [p for p in (tmp_path / "attnflows").rglob(".*.tmp")]  # the failed write left nothing behind


@pytest.fixture()
def tiny_disk(tmp_path):
    """A 3 MiB tmpfs (needs root and mount), unmounted afterwards."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root (the RLIMIT_FSIZE test covers a failed write without it)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_mid_run_still_gets_the_final_status(tiny_disk):
    model = tiny_model("bert")
    rec = recorder(tiny_disk / "run", model, tensorboard=False)
    rec.snapshot(0)
    rec.flush()
    filler = os.open(tiny_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk to the last byte
        while os.write(filler, b"\0" * 4096):
            pass
    except OSError as err:
        assert err.errno == 28
    finally:
        os.close(filler)
    nudge(model)
    with pytest.warns(RuntimeWarning, match="stopped recording"):
        rec.snapshot(1)
        rec.flush()
    rec.close()
    run = open_run(tiny_disk / "run")
    assert run.steps.tolist() == [0]
    assert run.status["status"] == "failed" and "No space left on device" in run.status["reason"]


def test_the_plain_recorder_redacts_secrets_in_hyperparameters(tmp_path):
    import argparse

    args = argparse.Namespace(learning_rate=1e-3, hub_token="hf_SECRETVALUE", logger={"wandb_api_key": "SECRETKEY"})
    with recorder(tmp_path, hparams=vars(args)) as rec:
        rec.snapshot(0)
    hparams = open_run(tmp_path).meta["hparams"]
    assert hparams == {"learning_rate": 1e-3, "hub_token": "<HUB_TOKEN>", "logger": {"wandb_api_key": "<WANDB_API_KEY>"}}
    for path in tmp_path.rglob("*"):  # run.json and the TensorBoard events file alike
        if path.is_file():
            data = path.read_bytes()
            assert b"SECRETVALUE" not in data and b"SECRETKEY" not in data, path.name

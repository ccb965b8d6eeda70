"""`attnflows verify RUN --checkpoint PATH [--step N]`: a snapshot recomputed from a saved model, or a clear no.

Trainer checkpoints (HF ``checkpoint-N``, Lightning ``.ckpt`` at global step N) are checked in
tests/callbacks/test_step_alignment.py; here the checkpoints are ``save_pretrained`` folders.
"""

import pytest

from attnflows_callback import AttentionRecorder, ProbeSet
from attnflows_callback.cli import main
from tests.helpers import nudge, tiny_model, tokenizer
from tests.truth import HYPOTHESES, PAIR_LABELS, PREMISES, word_level_tokenizer


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A pair run with snapshots 0 and 5, and the model saved at each: what a trainer's checkpoints would hold."""
    root = tmp_path_factory.mktemp("verify")
    model = tiny_model("bert")
    with AttentionRecorder(model, tokenizer(), ProbeSet(PREMISES, HYPOTHESES, labels=PAIR_LABELS), root / "run",
                           tensorboard=False) as recorder:
        recorder.snapshot(0)
        model.save_pretrained(root / "at-0")
        tokenizer().save_pretrained(root / "at-0")
        nudge(model)
        recorder.snapshot(5)
        model.save_pretrained(root / "at-5")
    return root


def verify(capsys, *args):
    capsys.readouterr()  # what saving the checkpoints printed is not verify's output
    code = main(["verify", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_checkpoint_of_the_snapshot_passes_and_prints_each_stream_and_the_matched_step(capsys, recorded):
    for step in (0, 5):
        code, out, err = verify(capsys, recorded / "run", "--checkpoint", recorded / f"at-{step}", "--step", step)
        assert code == 0 and err == "", err
        assert f"Step       {step} (matched)" in out
        assert [line.split()[0] for line in out.splitlines() if line.endswith(" ok")] == ["self", "logits"]
        assert "PASS" in out


def test_a_checkpoint_of_another_step_fails_with_exit_status_1(capsys, recorded):
    code, out, err = verify(capsys, recorded / "run", "--checkpoint", recorded / "at-0", "--step", 5)
    assert code == 1
    assert "MISMATCH" in out and "FAIL: snapshot 5 is not what this checkpoint computes" in out


def one_line_error(code, err, *fragments):
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err


def test_a_checkpoint_of_another_model_is_refused(capsys, recorded, tmp_path):
    tiny_model("bert", hidden=64).save_pretrained(tmp_path)
    code, out, err = verify(capsys, recorded / "run", "--checkpoint", tmp_path, "--step", 0)
    one_line_error(code, err, "is of another model than the run", "hidden_size 64 (run: 32)")


def test_a_checkpoint_whose_tokenizer_gives_other_ids_is_another_probe_set(capsys, recorded, tmp_path):
    tiny_model("bert").save_pretrained(tmp_path)
    word_level_tokenizer(segment_ids=True).save_pretrained(tmp_path)
    code, out, err = verify(capsys, recorded / "run", "--checkpoint", tmp_path, "--step", 0)
    one_line_error(code, err, "other token ids than the run fed", "another tokenizer or probe set")


def test_a_step_with_no_snapshot_is_refused_with_the_steps_there_are(capsys, recorded):
    code, out, err = verify(capsys, recorded / "run", "--checkpoint", recorded / "at-5", "--step", 3)
    one_line_error(code, err, "no snapshot at step 3", "[0, 5]")


def test_a_checkpoint_that_does_not_say_its_step_needs_step(capsys, recorded):
    code, out, err = verify(capsys, recorded / "run", "--checkpoint", recorded / "at-5")
    one_line_error(code, err, "does not say its optimizer step", "--step N")


def test_a_path_that_is_no_checkpoint_is_refused(capsys, recorded, tmp_path):
    code, out, err = verify(capsys, recorded / "run", "--checkpoint", tmp_path / "missing", "--step", 0)
    one_line_error(code, err, "no such file or directory")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    code, out, err = verify(capsys, recorded / "run", "--checkpoint", tmp_path / "notes.txt", "--step", 0)
    one_line_error(code, err, "cannot be read as a Lightning .ckpt")
    code, out, err = verify(capsys, recorded / "run", "--checkpoint", tmp_path, "--step", 0)
    one_line_error(code, err, "no config.json")

"""The `attnflows` command: summary and export of small recorded runs, and one-line errors."""

import json
import subprocess

import numpy as np
import pytest

from attnflows_callback import open_run
from attnflows_callback.analysis import prediction_flips
from attnflows_callback.cli import main
from tests.examples.conftest import ATTNFLOWS
from tests.helpers import PROBE_TEXTS, write_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("logdir") / "run_a", steps=(0, 10, 20, 30))


def attnflows(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnflows: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


# ---------------------------------------------------------------- summary
def test_summary_shows_status_timeline_heads_and_flips(capsys, run_dir):
    code, out, err = attnflows(capsys, "summary", run_dir)
    assert code == 0 and err == ""
    run = open_run(run_dir)
    assert "Status    finished" in out and "2 layers x 4 heads" in out
    assert f"Probe     {len(PROBE_TEXTS)} examples" in out
    timeline = out.split("Timeline")[1].split("Most-changed heads")[0]
    for step in run.steps:
        labels = np.asarray(run.labels)
        accuracy = (run.predictions(int(step)) == labels).mean()
        assert f"{step:>8}" in timeline and f"{accuracy:.3f}" in timeline
    heads = out.split("Most-changed heads")[1].split("Flipped predictions")[0]
    assert heads.count("layer ") == 8 and "per layer: L0" in heads  # 2 x 4 heads, all listed with --heads 8
    flips = prediction_flips(run.steps.tolist(), np.stack([run.predictions(int(s)) for s in run.steps]))
    flipped = sum(bool(f) for f in flips)
    section = out.split("Flipped predictions")[1]
    if flipped:
        assert f"{flipped} of {len(PROBE_TEXTS)} examples changed" in section
    else:
        assert "none" in section


def test_summary_ranks_heads_like_the_analysis_library(capsys, run_dir):
    from attnflows_callback.analysis import head_change, most_changed_heads

    run = open_run(run_dir)
    change = head_change([run.attention(i, 0) for i in range(run.num_examples)],
                         [run.attention(i, 30) for i in range(run.num_examples)])
    (layer, head, score), *_ = most_changed_heads(change, 1)
    code, out, _ = attnflows(capsys, "summary", run_dir, "--heads", "1")
    assert code == 0
    line = out.split("Most-changed heads")[1].splitlines()[1]
    assert f"layer {layer:>2} head {head:>2}" in line and f"{score:.4f}"[:5] in line


def test_summary_lists_examples_whose_prediction_flipped(capsys, tmp_path):
    # Big nudges between snapshots: some tiny-model predictions flip for sure.
    texts = [f"example number {k} is {'good' if k % 2 else 'bad'}" for k in range(24)]
    run_dir = write_run(tmp_path / "flippy", steps=(0, 1, 2, 3, 4, 5), texts=texts, labels=[k % 2 for k in range(24)])
    run = open_run(run_dir)
    predictions = np.stack([run.predictions(int(s)) for s in run.steps])
    flipped = [i for i, f in enumerate(prediction_flips(run.steps.tolist(), predictions)) if f]
    code, out, _ = attnflows(capsys, "summary", run_dir, "--flips", "100")
    assert code == 0
    section = out.split("Flipped predictions")[1]
    for i in flipped:
        assert f"#{i:<3}" in section
    assert section.count("\n  #") == len(flipped)


def test_summary_of_a_path_that_does_not_exist(capsys, tmp_path):
    code, _, err = attnflows(capsys, "summary", tmp_path / "nope")
    assert_one_line_error(code, err, "no such file or directory")


def test_summary_of_a_folder_that_is_not_a_run(capsys, tmp_path):
    code, _, err = attnflows(capsys, "summary", tmp_path)
    assert_one_line_error(code, err, "is not an attnflows run")


def test_summary_of_a_logdir_names_the_runs_inside(capsys, run_dir):
    code, _, err = attnflows(capsys, "summary", run_dir.parent)
    assert_one_line_error(code, err, "is a log directory, not a run", "run_a")


def test_summary_of_an_empty_run(capsys, tmp_path):
    write_run(tmp_path / "empty", steps=())
    code, out, err = attnflows(capsys, "summary", tmp_path / "empty")
    assert_one_line_error(code, err, "empty run", "no snapshots")
    assert out == ""


def test_summary_of_a_failed_run_summarises_and_says_it_failed(capsys, tmp_path):
    write_run(tmp_path / "crashed", steps=(0, 5), close_status="failed")
    code, out, err = attnflows(capsys, "summary", tmp_path / "crashed")
    assert_one_line_error(code, err, "failed after step 5")
    assert "Status    FAILED after step 5" in out and "Timeline" in out and "Most-changed heads" in out


def test_summary_of_a_run_still_recording(capsys, tmp_path):
    write_run(tmp_path / "live", steps=(0, 5), close_status=None)
    code, out, err = attnflows(capsys, "summary", tmp_path / "live")
    assert code == 0 and err == "" and "Status    running" in out


def test_summary_reports_unreadable_snapshot_files(capsys, tmp_path):
    run_dir = write_run(tmp_path / "torn", steps=(0, 5, 9))
    shard = sorted((run_dir / "attnflows" / "snapshots").glob("step-*9.h5"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    code, out, _ = attnflows(capsys, "summary", run_dir)
    assert code == 0 and "Unreadable snapshot files" in out and shard.name in out
    assert "Snapshots 2 (steps 0 to 5)" in out


def test_summary_of_an_encoder_decoder_run_without_labels(capsys, tmp_path):
    write_run(tmp_path / "t5", steps=(0, 10), family="t5", labels=None)
    code, out, _ = attnflows(capsys, "summary", tmp_path / "t5", "--stream", "cross")
    assert code == 0
    assert "Streams   encoder, decoder, cross (showing cross)" in out
    assert "probe accuracy needs labels" in out and "no classifier head" in out
    code, _, err = attnflows(capsys, "summary", tmp_path / "t5", "--stream", "self")
    assert_one_line_error(code, err, "stream must be one of ['encoder', 'decoder', 'cross']")


# ---------------------------------------------------------------- export
def test_export_npz_holds_the_chosen_steps_and_examples(capsys, run_dir, tmp_path):
    target = tmp_path / "out.npz"
    code, _, err = attnflows(capsys, "export", run_dir, "--format", "npz", "--steps", "0,last",
                             "--examples", "1-2,4", "-o", target)
    assert code == 0 and "wrote" in err
    run = open_run(run_dir)
    with np.load(target, allow_pickle=False) as data:
        assert data["steps"].tolist() == [0, 30] and data["examples"].tolist() == [1, 2, 4]
        assert data["texts"].tolist() == [PROBE_TEXTS[i] for i in (1, 2, 4)]
        for i in (1, 2, 4):
            expected = np.stack([run.attention(i, 0), run.attention(i, 30)])
            np.testing.assert_array_equal(data[f"attention/self/{i}"], expected)
            assert data[f"tokens/{i}"].tolist() == run.tokens(i)
            assert data[f"word_ids/{i}"].tolist() == run.word_ids(i).tolist()
        np.testing.assert_array_equal(data["logits"][1], run.logits(30)[[1, 2, 4]])
        _, js = run.summary_timeline("js_from_start")
        np.testing.assert_array_equal(data["summary/self/js_from_start"], js[[0, 3]][:, [1, 2, 4]])
        assert json.loads(str(data["meta"]))["probe_id"] == run.probe_id
        assert "attention/self/0" not in data


def test_export_json_to_stdout(capsys, run_dir):
    code, out, _ = attnflows(capsys, "export", run_dir, "--format", "json", "--steps", "10-20", "--examples", "0",
                             "-o", "-")
    assert code == 0
    data = json.loads(out)
    run = open_run(run_dir)
    assert data["steps"] == [10, 20] and data["examples"] == [0]
    attention = np.asarray(data["attention/self/0"])
    assert attention.shape == (2, 2, 4, run.length(0), run.length(0))
    np.testing.assert_allclose(attention[1], run.attention(0, 20), atol=1e-6)
    assert data["meta"]["status"]["status"] == "finished" and data["label_names"] == ["negative", "positive"]


def test_export_without_attention_is_small(capsys, run_dir, tmp_path):
    target = tmp_path / "small.json"
    code, _, _ = attnflows(capsys, "export", run_dir, "--format", "json", "--no-attention", "-o", target)
    data = json.loads(target.read_text())
    assert code == 0 and not any(k.startswith("attention/") for k in data)
    assert np.asarray(data["predictions"]).shape == (4, len(PROBE_TEXTS))


def test_export_default_file_name_is_the_run_name(capsys, run_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = attnflows(capsys, "export", run_dir, "--format", "npz", "--steps", "first")
    assert code == 0 and (tmp_path / "run_a.npz").is_file()


@pytest.mark.parametrize(
    "option, fragment",
    [
        (["--steps", "15"], "step 15 was not recorded (steps: 0, 10, 20, 30)"),
        (["--steps", "40-50"], "no snapshot in that range"),
        (["--steps", "ten"], "expected an integer"),
        (["--examples", "99"], f"examples 0 to {len(PROBE_TEXTS) - 1}"),
        (["--examples", "3-1"], "backwards"),
        (["--examples", ","], "is empty"),
    ],
)
def test_export_rejects_steps_and_examples_that_are_not_there(capsys, run_dir, tmp_path, option, fragment):
    code, _, err = attnflows(capsys, "export", run_dir, "--format", "npz", "-o", tmp_path / "x.npz", *option)
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "x.npz").exists()


def test_export_npz_to_stdout_is_refused(capsys, run_dir):
    code, _, err = attnflows(capsys, "export", run_dir, "--format", "npz", "-o", "-")
    assert_one_line_error(code, err, "only --format json")


def test_export_of_a_failed_run_writes_and_says_it_failed(capsys, tmp_path):
    write_run(tmp_path / "crashed", steps=(0, 5), close_status="failed")
    code, _, err = attnflows(capsys, "export", tmp_path / "crashed", "--format", "json", "-o", tmp_path / "c.json")
    assert code == 2 and (tmp_path / "c.json").is_file()
    assert err.strip().splitlines()[-1].startswith("attnflows: error: run crashed failed")


# ---------------------------------------------------------------- the command itself
def test_console_script_help_lists_the_commands():
    done = subprocess.run([str(ATTNFLOWS), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("summary", "export", "demo"):
        assert command in done.stdout


@pytest.mark.parametrize("command", ["summary", "export", "demo"])
def test_each_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: attnflows " + command in capsys.readouterr().out


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "somewhere"])  # --format is required
    assert exit_info.value.code == 2
    assert "--format" in capsys.readouterr().err


def test_console_script_error_has_no_traceback(tmp_path):
    done = subprocess.run([str(ATTNFLOWS), "summary", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1

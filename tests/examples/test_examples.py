"""The example scripts, end to end with a tiny local model; their shared data loading; `attnflows demo`."""

import csv
import importlib.util
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from attnflows_callback import open_run
from tests.examples.conftest import ATTNFLOWS, EXAMPLES, run_script, tiny_options

SCRIPTS = ["plain_loop.py", "lightning_finetune.py", "hf_trainer_finetune.py", "sweep.py"]


def import_common():
    """examples/common.py, imported under a name no other module uses."""
    name = "attnflows_examples_common"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / "common.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def only_run(logdir):
    runs = sorted(p.parent for p in logdir.rglob("attnflows/run.json"))
    assert len(runs) == 1, runs
    return open_run(runs[0])


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help(script):
    done = run_script(sys.executable, EXAMPLES / script, "--help", timeout=60)
    for option in ("--model", "--dataset", "--text-column", "--label-column", "--max-steps", "--epochs",
                   "--logdir", "--no-progress"):
        assert option in done.stdout
    assert ("--lrs" in done.stdout) == (script == "sweep.py")


@pytest.mark.parametrize(
    "script, example",
    [("plain_loop.py", "plain_loop"), ("lightning_finetune.py", "lightning"), ("hf_trainer_finetune.py", "hf_trainer")],
)
def test_example_records_a_run_end_to_end(tiny_model_dir, tmp_path, script, example):
    done = run_script(sys.executable, EXAMPLES / script, *tiny_options(tiny_model_dir, tmp_path), "--lr", "1e-3")
    run = only_run(tmp_path)
    assert run.steps.tolist() == [0, 2, 3]
    assert run.status["status"] == "finished" and run.num_examples == 64
    assert run.meta["hparams"]["example"] == example and float(run.meta["hparams"]["lr"]) == 1e-3
    assert run.label_names == ["negative", "positive"]
    assert f"run: {run.run_dir}" in done.stdout and "dev accuracy:" in done.stdout
    assert list(run.run_dir.glob("events.out.tfevents.*")), "no TensorBoard events beside the snapshots"


def test_sweep_writes_one_run_per_setting_with_its_hparams(tiny_model_dir, tmp_path):
    run_script(sys.executable, EXAMPLES / "sweep.py", *tiny_options(tiny_model_dir, tmp_path),
               "--lrs", "1e-3", "1e-4", "--seeds", "0", "1")
    (group,) = tmp_path.glob("sweep-*")
    runs = {p.name: open_run(p) for p in group.iterdir()}
    assert sorted(runs) == ["lr0.0001-seed0", "lr0.0001-seed1", "lr0.001-seed0", "lr0.001-seed1"]
    for name, run in runs.items():
        lr, seed = re.fullmatch(r"lr([\d.e-]+)-seed(\d)", name).groups()
        assert float(run.meta["hparams"]["lr"]) == float(lr) and run.meta["hparams"]["seed"] == int(seed)
        assert run.meta["hparams"]["sweep"] == group.name and run.steps.tolist() == [0, 2, 3]


def test_example_trains_on_a_local_csv_with_class_names(tiny_model_dir, tmp_path):
    data = tmp_path / "reviews.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "verdict"])
        for k in range(30):
            writer.writerow([f"review {k}: the soup was {'great' if k % 2 else 'awful'}", "pos" if k % 2 else "neg"])
    options = tiny_options(tiny_model_dir, tmp_path / "runs")
    run_script(sys.executable, EXAMPLES / "plain_loop.py", *options, "--dataset", data, "--text-column", "review",
               "--label-column", "verdict", "--probe-size", "4")
    run = only_run(tmp_path / "runs")
    assert run.label_names == ["neg", "pos"] and run.num_examples == 4
    assert sorted(run.labels) == [0, 0, 1, 1]
    assert run.meta["hparams"]["dataset"] == "reviews.csv"


def test_bundled_data_and_probe():
    common = import_common()
    args = common.parse_args(common.parser("test"), ["--model", "x", "--train-size", "100", "--eval-size", "50"])
    data = common.load_data(args)
    assert len(data.train) == 100 and len(data.dev) == 50 and len(data.probe) == 64
    assert data.label_names == ["negative", "positive"] and data.probe.label_names == ["negative", "positive"]
    everything = common.load_data(common.parse_args(common.parser("t"), ["--model", "x"]))
    assert not set(data.probe.texts) & {e.text for e in everything.train}
    assert data.probe.text_pairs is None and all(e.pair is None for e in everything.train)


def test_bundled_entailment_pairs_and_probe():
    common = import_common()
    args = common.parse_args(common.parser("t"), ["--model", "x", "--task", "entailment", "--eval-size", "50"])
    data = common.load_data(args)
    assert len(data.train) == 2000 and len(data.dev) == 50 and len(data.probe) == 60
    assert data.label_names == ["entailment", "contradiction"] and data.source == "bundled entailment data"
    assert all(e.pair for e in data.train + data.dev) and len(data.probe.text_pairs) == 60
    trained = {(e.text, e.pair) for e in data.train}
    assert not set(zip(data.probe.texts, data.probe.text_pairs)) & trained
    assert common.hparams(args, "plain_loop", 80)["dataset"] == "bundled:entailment"


def test_local_pair_file_keeps_both_segments(tmp_path):
    common = import_common()
    path = tmp_path / "nli.jsonl"
    path.write_text("\n".join(json.dumps({"premise": f"p{k}", "hypothesis": f"h{k}", "y": ["yes", "no"][k % 2]})
                               for k in range(20)))
    args = common.parse_args(common.parser("t"), ["--model", "x", "--dataset", str(path), "--text-column", "premise",
                                                   "--text-pair-column", "hypothesis", "--label-column", "y",
                                                   "--probe-size", "4"])
    data = common.load_data(args)
    assert data.label_names == ["no", "yes"] and all(e.pair == "h" + e.text[1:] for e in data.train)
    assert [p[1:] for p in data.probe.text_pairs] == [t[1:] for t in data.probe.texts]


def test_local_jsonl_probe_is_held_out_of_training(tmp_path):
    common = import_common()
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"sentence": f"s{k}", "y": k % 3}) for k in range(50)))
    args = common.parse_args(common.parser("t"), ["--model", "x", "--dataset", str(path), "--text-column",
                                                   "sentence", "--label-column", "y", "--probe-size", "6"])
    data = common.load_data(args)
    assert data.label_names == ["0", "1", "2"] and len(data.probe) == 6
    assert not set(data.probe.texts) & {e.text for e in data.train}
    assert len(data.train) == 40


@pytest.mark.parametrize(
    "options, message",
    [
        (["--dataset", "missing.csv"], "no such file"),
        (["--dataset", "{path}", "--text-column", "body"], "has no field 'body'"),
        (["--dataset", "not-a-local-name"], "datasets"),
    ],
)
def test_dataset_errors_are_clear(tmp_path, options, message):
    common = import_common()
    path = tmp_path / "d.csv"
    path.write_text("text,label\nfine,1\nbad,0\n")
    options = [o.format(path=path) for o in options]
    try:
        import datasets  # noqa: F401

        if "datasets" in message:
            pytest.skip("`datasets` is installed: a Hub name would be looked up")
    except ImportError:
        pass
    with pytest.raises(SystemExit, match=message):
        common.load_data(common.parse_args(common.parser("t"), ["--model", "x", *options]))


@pytest.mark.parametrize("option", ["--max-steps=0", "--batch-size=0", "--lr=-1", "--epochs=0"])
def test_bad_options_exit_with_usage(option, capsys):
    common = import_common()
    with pytest.raises(SystemExit) as exit_info:
        common.parse_args(common.parser("t"), [option])
    assert exit_info.value.code == 2 and option.split("=")[0] in capsys.readouterr().err


# ---------------------------------------------------------------- attnflows demo
def test_demo_trains_a_single_sentence_and_a_pair_run_then_new_runs_go_beside_the_old(tiny_model_dir, tmp_path):
    logdir = tmp_path / "demo_runs"
    sweep = ["--", "--model", tiny_model_dir, "--max-steps", "2", "--train-size", "16", "--batch-size", "8",
             "--eval-size", "4", "--lrs", "1e-3", "--no-progress"]
    done = run_script(ATTNFLOWS, "demo", "--no-serve", "--logdir", logdir, *sweep, timeout=240)  # both tasks
    assert "fine-tuning on sentiment" in done.stdout and "fine-tuning on entailment" in done.stdout
    (sentiment,) = logdir.glob("sweep-2*")
    (entailment,) = logdir.glob("sweep-entailment-*")
    single, pair = open_run(sentiment / "lr0.001-seed0"), open_run(entailment / "lr0.001-seed0")
    assert single.text_pairs is None and single.label_names == ["negative", "positive"]
    assert len(pair.text_pairs) == 60 and pair.label_names == ["entailment", "contradiction"]
    assert pair.meta["hparams"]["dataset"] == "bundled:entailment"

    # The pair run keeps its final model: its last snapshot verifies against it, and a wrong step does not.
    saved = pair.run_dir / "final-model"
    assert f"attnflows verify {pair.run_dir} --checkpoint {saved} --step 2" in done.stdout
    ok = run_script(ATTNFLOWS, "verify", pair.run_dir, "--checkpoint", saved, "--step", "2", timeout=120)
    assert "Step       2 (matched)" in ok.stdout and "PASS" in ok.stdout
    wrong = subprocess.run([str(ATTNFLOWS), "verify", str(pair.run_dir), "--checkpoint", str(saved), "--step", "0"],
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 1 and "FAIL" in wrong.stdout, wrong.stdout + wrong.stderr

    run_script(ATTNFLOWS, "demo", "--no-serve", "--logdir", logdir, "--tasks", "sentiment", *sweep, timeout=240)
    assert len(list(logdir.glob("sweep-2*"))) == 2 and len(list(logdir.glob("sweep-entailment-*"))) == 1
    for group in logdir.glob("sweep-*"):
        assert open_run(group / "lr0.001-seed0").status["status"] == "finished"


def test_demo_serves_tensorboard_with_the_attention_flows_tab(tiny_model_dir, tmp_path):
    logdir = tmp_path / "logs"
    run_script(sys.executable, EXAMPLES / "plain_loop.py", *tiny_options(tiny_model_dir, logdir))
    process = subprocess.Popen([str(ATTNFLOWS), "demo", "--no-train", "--logdir", str(logdir), "--port", "16006"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 180
        url = None
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            found = re.search(r"http://\S+", line)
            url = found.group(0) if found else None
        assert url and url.endswith("/#attnflows"), url
        base = url.split("#")[0].replace("localhost", "127.0.0.1")
        # The tab is enabled once the plugin's background scan has seen the run (it rescans every 2 s
        # until one is found): poll, as TensorBoard's page does on each reload.
        enabled = False
        deadline = time.monotonic() + 60
        while not enabled and time.monotonic() < deadline:
            with urllib.request.urlopen(base + "data/plugins_listing", timeout=30) as response:
                listing = json.loads(response.read())
            enabled = "attnflows" in listing and listing["attnflows"]["enabled"]
            if not enabled:
                time.sleep(0.5)
        assert enabled, listing.get("attnflows")
        with urllib.request.urlopen(base + "data/runs", timeout=30) as response:
            assert any(name.startswith("plain_loop-") for name in json.loads(response.read()))
    finally:
        process.terminate()
        process.wait(timeout=30)
    host, port = base.split("/")[2].split(":")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and tensorboard_answers(host, int(port)):
        time.sleep(0.2)
    assert not tensorboard_answers(host, int(port)), "TensorBoard outlived the demo that started it"


def tensorboard_answers(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def test_demo_without_runs_to_show_is_a_clear_error(tmp_path):
    done = subprocess.run([str(ATTNFLOWS), "demo", "--no-train", "--logdir", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("attnflows: error: ") and "Traceback" not in done.stderr

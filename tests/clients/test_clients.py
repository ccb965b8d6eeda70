"""Outside clients: scripts shaped like the stock examples people run, with only the documented attnflows lines.

Each script runs as a user runs it (a subprocess, its own command line, the trainers' defaults)
on a tiny BERT saved with the real MiniLM tokenizer. Each test checks that the run appears
where the docs say, that TensorBoard lists it, that the script needed nothing beyond its
lines marked ``# attnflows``, and that those lines are the ones docs/callbacks.md shows.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from attnflows_callback import open_run
from tests.callbacks._models import snapshot_events, tensorboard_runs
from tests.helpers import PROBE_LABELS, PROBE_TEXTS, tiny_model, tokenizer

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
DOCS = (ROOT / "docs" / "callbacks.md").read_text(encoding="utf-8")
MARK = "# attnflows"
CLIENTS = ("run_glue.py", "lightning_glue.py", "glue_no_trainer.py", "plain_loop.py")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """A tiny BERT saved with the MiniLM tokenizer, and GLUE-style JSON-lines files as HF scripts take them."""
    base = tmp_path_factory.mktemp("clients")
    model_dir = base / "tiny-bert"
    tiny_model("bert", layers=2, heads=2, hidden=16).save_pretrained(model_dir)
    tokenizer().save_pretrained(model_dir)
    for name, n in (("train.json", 16), ("validation.json", 6)):
        rows = [{"sentence": PROBE_TEXTS[k % 6], "label": PROBE_LABELS[k % 6]} for k in range(n)]
        (base / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"--model_name_or_path": str(model_dir), "--train_file": str(base / "train.json"),
            "--validation_file": str(base / "validation.json")}


def run_client(script: str, inputs: dict, *args: str, launcher: tuple[str, ...] = (), env: dict | None = None) -> str:
    """Run ``tests/clients/<script>`` as a user would; its output (stdout and stderr) when it succeeds."""
    command = [sys.executable, *launcher, str(HERE / script), *[x for kv in inputs.items() for x in kv], *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    env.pop("TENSORBOARD_LOGGING_DIR", None)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def test_run_glue_with_transformers_defaults_records_where_its_tensorboard_run_would_be(tmp_path, inputs):
    out = tmp_path / "out"
    output = run_client("run_glue.py", inputs, "--do_train", "--output_dir", str(out))  # report_to="none"
    (run_dir,) = (out / "runs").iterdir()
    assert run_dir.name.endswith("_" + socket.gethostname())
    # 16 rows, batch 8, 3 epochs (the defaults): log-spaced steps, epoch ends, the checkpoint saved at the end
    assert snapshot_events(run_dir) == [(0, "step"), (1, "step"), (2, "epoch_end"), (3, "step"), (4, "epoch_end"),
                                        (6, "checkpoint")]
    assert tensorboard_runs(out) == [f"runs/{run_dir.name}"]
    assert f"recording attention into {run_dir} (report_to has no 'tensorboard'" in output
    with open_run(run_dir) as run:
        assert run.meta["max_length"] == 128 and run.meta["hparams"]["model"] == inputs["--model_name_or_path"]
        assert run.meta["hparams"]["learning_rate"] == 5e-05 and run.status["status"] == "finished"


def test_lightning_tutorial_layout_records_with_the_default_logger_and_without_one(tmp_path, inputs):
    root = tmp_path / "root"
    first = run_client("lightning_glue.py", inputs, "--default_root_dir", str(root))
    second = run_client("lightning_glue.py", inputs, "--default_root_dir", str(root), "--logger", "none")
    runs = root / "lightning_logs"
    assert snapshot_events(runs / "version_0") == [(0, "step"), (1, "step"), (3, "step"), (4, "epoch_end")]
    assert snapshot_events(runs / "version_1") == snapshot_events(runs / "version_0")
    assert tensorboard_runs(root) == ["lightning_logs/version_0", "lightning_logs/version_1"]
    assert f"into {runs / 'version_0'} (the TensorBoardLogger's run)" in first
    assert f"into {runs / 'version_1'} (logger=False: a new version under default_root_dir)" in second
    with open_run(runs / "version_0") as run:  # the tokenizer came from the DataModule
        assert run.meta["tokenizer"].endswith(inputs["--model_name_or_path"]) and run.meta["max_length"] == 128
        assert run.meta["hparams"]["learning_rate"] == 2e-05


def test_accelerate_loop_records_optimizer_steps_beside_the_trackers_tensorboard_files(tmp_path, inputs):
    out = tmp_path / "out"
    run_client("glue_no_trainer.py", inputs, "--output_dir", str(out), "--with_tracking", "--report_to",
               "tensorboard", "--num_train_epochs", "1", "--per_device_train_batch_size", "2",
               "--gradient_accumulation_steps", "2")
    run_dir = out / "glue_no_trainer"
    # 8 batches, 2 per optimizer step: 4 optimizer steps, log-spaced snapshots 1 and 3, then the last
    assert snapshot_events(run_dir) == [(0, "step"), (1, "step"), (3, "step"), (4, "final")]
    assert "glue_no_trainer" in tensorboard_runs(out)
    with open_run(run_dir) as run:
        assert run.meta["hparams"]["gradient_accumulation_steps"] == 2 and run.status["status"] == "finished"


def test_accelerate_loop_on_two_processes_records_once_from_the_main_process(tmp_path, inputs):
    out = tmp_path / "out"
    # torchrun with ACCELERATE_USE_CPU is what `accelerate launch --cpu --num_processes 2` sets up: gloo, MULTI_CPU
    output = run_client("glue_no_trainer.py", inputs, "--output_dir", str(out), "--with_tracking", "--report_to",
                        "tensorboard", "--num_train_epochs", "1", "--per_device_train_batch_size", "2",
                        "--gradient_accumulation_steps", "2", launcher=("-m", "torch.distributed.run",
                                                                        "--nproc_per_node", "2"),
                        env={"ACCELERATE_USE_CPU": "true"})
    assert "Num processes: 2" in output
    assert [p.parent.parent.name for p in out.rglob("run.json")] == ["glue_no_trainer"]  # one run, one writer
    # 8 batches per process, 2 per optimizer step, over the 2 epochs the script derives: 4 optimizer steps
    assert snapshot_events(out / "glue_no_trainer") == [(0, "step"), (1, "step"), (3, "step"), (4, "final")]
    assert open_run(out / "glue_no_trainer").status["status"] == "finished"


def test_plain_loop_records_into_its_own_tensorboard_run(tmp_path, inputs):
    run_client("plain_loop.py", inputs, "--logdir", str(tmp_path / "runs"))
    assert [s for s, _ in snapshot_events(tmp_path / "runs" / "plain_loop")] == [0, 2, 4]
    assert tensorboard_runs(tmp_path / "runs") == ["plain_loop"]


@pytest.mark.parametrize("script", CLIENTS)
def test_each_client_needs_only_its_marked_lines_and_the_docs_show_them(script):
    text = (HERE / script).read_text(encoding="utf-8")
    docstring_end = ast.parse(text).body[0].end_lineno  # every client opens with its docstring
    code = [line for line in text.splitlines()[docstring_end:] if not line.lstrip().startswith("#")]
    uses = [line for line in code if any(name in line for name in ("attnflows", "AttentionFlows", "AttentionRecorder",
                                                                     "ProbeSet", "recorder", "SnapshotSchedule"))]
    assert uses and all(line.rstrip().endswith(MARK) for line in uses), "an attnflows line is not marked"
    marked = [line.rsplit(MARK, 1)[0].strip() for line in code if line.rstrip().endswith(MARK)]
    for statement in marked:
        if not statement.startswith(("from ", "import ")):
            assert statement in DOCS, f"docs/callbacks.md does not show: {statement}"

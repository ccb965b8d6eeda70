"""Two CPU processes (gloo): Lightning ddp, ddp_spawn and sharded (FSDP1, FSDP2), and the transformers
Trainer under torchrun, plain (DDP) and sharded (FSDP2). One GPU, where there is one: the transformers
Trainer with accelerate's FSDP1 and FSDP2 at world size 1.

Each run must finish (no hang) and leave exactly one set of snapshots, written by rank zero.
"""

import importlib.util
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from attnflows_callback import capture_probe, open_run
from tests.callbacks._models import hf_model, snapshot_events
from tests.helpers import probe_set, tokenizer

SCRIPTS = Path(__file__).parent / "scripts"
EXPECTED = [(0, "step"), (2, "step"), (4, "step"), (5, "final")]
TIMEOUT = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def only_run(root: Path) -> Path:
    runs = sorted(p.parent.parent for p in root.rglob("attnflows/run.json"))
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_lightning_ddp_on_cpu_records_one_set_of_snapshots(tmp_path, strategy):
    run([sys.executable, str(SCRIPTS / "lightning_ddp.py"), "--root", str(tmp_path), "--strategy", strategy],
        env={**_env(), "MASTER_PORT": str(free_port())})
    run_dir = only_run(tmp_path)
    assert run_dir == tmp_path / "lightning_logs" / "version_0"
    assert snapshot_events(run_dir) == EXPECTED
    assert open_run(run_dir).status["status"] == "finished"


@pytest.mark.parametrize("sharding", ["fsdp2", "fsdp1"])
def test_lightning_fsdp_on_cpu_every_rank_joins_the_probe_pass_and_rank_zero_writes(tmp_path, sharding):
    run([sys.executable, str(SCRIPTS / "lightning_fsdp.py"), "--root", str(tmp_path), "--sharding", sharding],
        env={**_env(), "MASTER_PORT": str(free_port())})
    assert_recorded_once_and_true(tmp_path)


def assert_equals_unsharded_copies(run_dir, unsharded):
    """Attention and logits recorded at each step equal those of an unsharded model with that step's weights."""
    probe = probe_set().tokenize(tokenizer())
    with open_run(run_dir) as recorded:
        assert recorded.status["status"] == "finished"
        for step, model in unsharded.items():
            expected = capture_probe(model, probe).attention["self"]
            for i, weights in enumerate(expected):
                np.testing.assert_allclose(recorded.attention(i, step), weights, atol=2e-3)
            np.testing.assert_allclose(recorded.logits(step), capture_probe(model, probe).logits, atol=1e-5)
        assert not np.allclose(recorded.logits(0), recorded.logits(5))  # it trained


def test_a_recorder_on_one_rank_of_a_sharded_model_is_refused_not_left_hanging(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    result = run([torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()),
                  str(SCRIPTS / "plain_fsdp.py"), "--out", str(tmp_path / "run")], env=_env())
    assert "refused: the model's parameters are sharded across ranks (FSDP2)" in result.stdout
    assert not (tmp_path / "run").exists()


def test_hf_trainer_under_torchrun_records_one_set_of_snapshots(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    result = run([torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()),
                  str(SCRIPTS / "hf_train.py"), "--out", str(tmp_path)], env=_env())
    assert "'epoch': '1.25'" in result.stdout  # 5 steps of 2 x 2 examples over 16: two ranks shared the data
    run_dir = only_run(tmp_path)
    assert snapshot_events(run_dir) == EXPECTED
    assert open_run(run_dir).status["status"] == "finished"


def test_hf_trainer_with_fsdp2_on_cpu_every_rank_joins_the_probe_pass_and_rank_zero_writes(tmp_path):
    # accelerate enables FSDP on accelerator devices only (TrainingArguments(fsdp=...) on CPU trains
    # with DDP); transformers' own FSDP2, from_pretrained(distributed_config=...), shards on CPU too.
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    result = run([torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()),
                  str(SCRIPTS / "hf_fsdp.py"), "--out", str(tmp_path), "--sharding", "native"], env=_cpu_env())
    assert "sharded: FSDP2 units: ['<root>', 'bert.encoder.layer.0', 'bert.encoder.layer.1']" in result.stdout
    assert "'epoch': '1.25'" in result.stdout  # two ranks shared the data
    assert_recorded_once_and_true(tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="accelerate shards with FSDP on accelerator devices only")
@pytest.mark.parametrize("sharding", ["fsdp2", "fsdp1"])
def test_hf_trainer_with_accelerate_fsdp_on_one_gpu_records_true_attention(tmp_path, sharding):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    result = run([torchrun, "--nproc_per_node", "1", "--master_port", str(free_port()),
                  str(SCRIPTS / "hf_fsdp.py"), "--out", str(tmp_path), "--sharding", sharding], env=_env())
    assert f"sharded: {sharding.upper()} units: " in result.stdout
    assert_recorded_once_and_true(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="DeepSpeed is not installed")
def test_hf_trainer_with_deepspeed_zero3_every_rank_joins_the_probe_pass_and_rank_zero_writes(tmp_path):
    # Without CUDA, DeepSpeed's CPU accelerator (gloo) runs ZeRO-3; the script sets DS_ACCELERATOR=cpu.
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    result = run([torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()),
                  str(SCRIPTS / "hf_fsdp.py"), "--out", str(tmp_path), "--sharding", "zero3"], env=_cpu_env())
    assert "sharded: DeepSpeed ZeRO-3" in result.stdout
    assert_recorded_once_and_true(tmp_path)


def assert_recorded_once_and_true(root: Path):
    """One run with the expected snapshots, equal to the unsharded model at step 0 and at the last step."""
    run_dir = only_run(root)
    assert snapshot_events(run_dir) == EXPECTED
    unsharded = {0: hf_model(), 5: hf_model()}  # the same seeded initial weights, then the trained ones
    unsharded[5].load_state_dict(torch.load(root / "final_weights.pt"))
    assert_equals_unsharded_copies(run_dir, unsharded)


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "LOCAL_RANK", "RANK", "WORLD_SIZE"))}


def _cpu_env() -> dict:
    """Two CPU processes even on a GPU machine (two ranks cannot share its one GPU)."""
    return {**_env(), "CUDA_VISIBLE_DEVICES": ""}

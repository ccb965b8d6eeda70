"""Fixtures for the example, CLI and demo tests: a tiny local model folder, and the example scripts."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import tiny_model, tokenizer

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
ATTNFLOWS = Path(sys.executable).with_name("attnflows")  # the console script, installed beside this Python


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random BERT classifier and the MiniLM tokenizer, saved as a local model folder (`--model PATH`)."""
    path = tmp_path_factory.mktemp("tiny-bert")
    tiny_model("bert").save_pretrained(path)
    tokenizer().save_pretrained(path)
    return path


def run_script(*args, timeout: float = 240, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run a command with the test's Python environment; fail with its output if it does not exit 0."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    assert done.returncode == 0, (
        f"exit {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-5000:]}"
    )
    return done


def tiny_options(model_dir: Path, logdir: Path) -> list[str]:
    """Options that make any example finish in seconds: a tiny model, 40 examples, 3 steps."""
    return ["--model", str(model_dir), "--logdir", str(logdir), "--max-steps", "3", "--train-size", "40",
            "--batch-size", "8", "--eval-size", "8", "--snapshot-every", "2", "--no-progress"]

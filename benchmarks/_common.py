"""What every benchmark shares: paired timing, medians, and one way to report a figure.

A figure is a measured value with its baseline measured in the same process, the ratio,
and the goal. Each script prints its figures; `python -m benchmarks` collects them into
docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

FIGURE_PREFIX = "FIGURE "


@dataclass
class Figure:
    """One reported number. ``ratio`` = value / baseline; ``met`` says whether the goal holds."""

    benchmark: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: str = ""
    met: bool | None = None
    note: str = ""

    def __post_init__(self) -> None:
        self.value = float(self.value)
        self.baseline = None if self.baseline is None else float(self.baseline)
        self.met = None if self.met is None else bool(self.met)

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline else self.value / self.baseline

    def line(self) -> str:
        ratio = "" if self.ratio is None else f"  ratio {self.ratio:.3f}x vs {self.baseline_name} ({self.baseline:.4g} {self.unit})"
        verdict = "" if self.met is None else ("  [goal met]" if self.met else "  [GOAL MISSED]")
        goal = f"  goal {self.goal}" if self.goal else ""
        return f"{self.name}: {self.value:.4g} {self.unit}{ratio}{goal}{verdict}"


def report(figures: list[Figure]) -> None:
    """Print figures readably, and once more as JSON lines for the runner."""
    for figure in figures:
        print(figure.line())
    for figure in figures:
        print(FIGURE_PREFIX + json.dumps({**asdict(figure), "ratio": figure.ratio}))


def paired(a, b, *, repeats: int, warmup: int = 1) -> tuple[list[float], list[float]]:
    """Time ``a()`` and ``b()`` alternately (A/B/A/B) so drift hits both alike; returns seconds."""
    for _ in range(warmup):
        a()
        b()
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, into in ((a, times_a), (b, times_b)):
            start = time.perf_counter()
            fn()
            into.append(time.perf_counter() - start)
    return times_a, times_b


def median(values) -> float:
    return statistics.median(values)


def percentile(values, q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[k]


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} threads {torch.get_num_threads()}, Python {platform.python_version()}"


def padded_batch(rows: list[list[int]], device=None) -> dict:
    """Token-id rows right-padded with 0 (BERT's pad id), with their attention mask: a model's keyword inputs."""
    import torch

    width = max(map(len, rows))
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows], device=device)
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def bundled_probe():
    """The 64-example probe set shipped in examples/data."""
    from attnflows_callback import ProbeSet

    names = json.load(open(os.path.join(ROOT, "examples", "data", "label_names.json")))
    return ProbeSet.from_jsonl(os.path.join(ROOT, "examples", "data", "probe.jsonl"), label_names=names)

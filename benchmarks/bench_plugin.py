"""Server-side latency of the Attention Flows plugin's routes, at 10, 100 and 1,000 snapshots.

MiniLM-sized synthetic runs (6 and 12 layers, 12 heads, 64 probe examples of 12 to 64 tokens)
are written with `RunWriter` from random softmax attention; a few attention sets are encoded
once and reused, so 1,000 shards take seconds, not hours. Requests go through TensorBoard's
own WSGI stack (security middleware, `http_util.Respond`, gzip for JSON) in-process, so the
time is the server's alone. Each (example, step) pair is asked once per route and the decoded
attention cache is emptied between routes: these are cold reads of the shard.

Goals (issue 5): p95 <= 30 ms for /attention and /flow?method=rollout, and latency at 1,000
snapshots <= 1.5x latency at 10.

Run: python benchmarks/bench_plugin.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Figure, percentile, report  # noqa: E402

HEADS = 12
EXAMPLES = 64
TEMPLATES = 4  # distinct attention sets; snapshot k stores set k % TEMPLATES
P95_GOAL_MS = 30.0
RATIO_GOAL = 1.5
FAST_ROUTES = ("attention", "flow-rollout")


class _EncodeOnce:
    """Wraps a store encoding so that each template array is encoded once and its bytes reused."""

    def __init__(self, encoding):
        self._encoding = encoding
        self._done: dict[int, np.ndarray] = {}
        self.name, self.max_abs_error = encoding.name, encoding.max_abs_error

    def encode(self, weights):
        key = id(weights)
        if key not in self._done:
            self._done[key] = self._encoding.encode(weights)
        return self._done[key]

    def decode(self, stored, shape):
        return self._encoding.decode(stored, shape)

    def dataset_options(self, shape):
        return self._encoding.dataset_options(shape)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def synthetic_run(run_dir: Path, *, snapshots: int, layers: int, seed: int = 0) -> Path:
    """A run of ``snapshots`` shards with MiniLM-sized random attention (peaked rows, [CLS]/[SEP] stripes)."""
    from attnflows_callback.store import RunWriter

    rng = np.random.default_rng(seed)
    lengths = rng.integers(12, 65, size=EXAMPLES)
    lengths[:4] = 64  # the longest inputs are always there
    tokens = [["[CLS]"] + [f"w{k}" for k in range(n - 2)] + ["[SEP]"] for n in lengths]
    labels = rng.integers(0, 2, size=EXAMPLES)
    meta = {
        "model": {"class": "BertForSequenceClassification", "name_or_path": "synthetic-minilm",
                  "identity": f"BertForSequenceClassification[self={layers}x{HEADS}]"},
        "streams": {"self": {"layers": layers, "heads": HEADS}},
        "probe_id": f"synthetic-{EXAMPLES}", "num_examples": EXAMPLES, "classification_position": "first",
        "hparams": {"learning_rate": 3e-5, "seed": seed},
    }
    probe = {
        "texts": [" ".join(t[1:-1]) for t in tokens], "labels": labels, "label_names": ["negative", "positive"],
        "input_ids": [list(range(n)) for n in lengths], "tokens": [t for row in tokens for t in row],
        "truncated": np.zeros(EXAMPLES, dtype=bool), "attr:probe_id": meta["probe_id"],
    }
    writer = RunWriter(run_dir, meta=meta, probe_arrays=probe)
    writer.encoding = _EncodeOnce(writer.encoding)
    attention_sets = []
    for _ in range(TEMPLATES):
        per_example = []
        for n in lengths:
            logits = rng.normal(scale=2.0, size=(layers, HEADS, n, n))
            logits[..., 0] += rng.uniform(0, 4, size=(layers, HEADS, 1))
            logits[..., -1] += rng.uniform(0, 3, size=(layers, HEADS, 1))
            per_example.append(softmax(logits))
        attention_sets.append(per_example)
    for k in range(snapshots):
        shape = (EXAMPLES, layers, HEADS)
        summaries = {"self": {"entropy": rng.uniform(0.5, 3.0, shape), "js_from_start": rng.uniform(0, 0.1, shape),
                              "cosine_from_start": rng.uniform(0.8, 1.0, shape)}}
        writer.write_snapshot(k * 10, attention={"self": attention_sets[k % TEMPLATES]},
                              logits=rng.normal(size=(EXAMPLES, 2)), summaries=summaries,
                              kind="final" if k == snapshots - 1 else "step")
    writer.set_status("finished")
    return run_dir


def serve(logdir: Path):
    """(werkzeug client, plugin): TensorBoard's WSGI stack over the plugin, runs listed by TensorBoard."""
    from tensorboard import program
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_ingester
    from tensorboard.plugins.base_plugin import TBContext
    from werkzeug.test import Client

    from attnflows_tb.plugin import AttentionFlowsLoader

    tb = program.TensorBoard()
    tb.configure(logdir=str(logdir), load_fast="false", reload_interval=0, reload_task="blocking")
    ingester = data_ingester.LocalDataIngester(tb.flags)
    ingester.start()
    plugin = AttentionFlowsLoader().load(TBContext(logdir=str(logdir), data_provider=ingester.data_provider))
    app = application.TensorBoardWSGI([plugin], data_provider=ingester.data_provider)
    return Client(app), plugin


def timed(client, url: str) -> float:
    start = time.perf_counter()
    response = client.get(url, headers={"Accept-Encoding": "gzip"})
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {response.status_code} {response.data[:200]!r}")
    return elapsed * 1000.0


def measure_run(client, plugin, name: str, steps: list[int], requests: int, seed: int) -> dict[str, list[float]]:
    """Milliseconds per request, per route, for one run."""
    rng = random.Random(seed)
    prefix = "/data/plugin/attnflows"
    pairs = [(e, s) for e in range(EXAMPLES) for s in steps]
    times: dict[str, list[float]] = {}

    def sample(count: int):
        return rng.sample(pairs, min(count, len(pairs)))

    per_pair = {
        "attention": ("attention", "", requests),
        "attention-layer": ("attention", "&layer=3", requests // 2),
        "flow-raw": ("flow", "&method=raw", requests // 2),
        "flow-rollout": ("flow", "&method=rollout", requests),
        "flow-trace": ("flow", "&method=trace", requests // 2),
        "flow-flow": ("flow", "&method=flow", max(10, requests // 10)),
        "heads-example": ("heads", "", max(10, requests // 10)),
    }
    for route, (path, extra, count) in per_pair.items():
        plugin.attention.clear()
        times[route] = [timed(client, f"{prefix}/{path}?run={name}&example={e}&step={s}{extra}") for e, s in sample(count)]
    plugin.attention.clear()
    times["compare-example"] = [
        timed(client, f"{prefix}/compare?run={name}&step={s}&other_run={name}&other_step={steps[0]}&example={e}")
        for e, s in sample(max(10, requests // 10))
    ]
    for route in ("runs", "summary", "probe"):  # answered from per-run caches after the first call
        query = "" if route == "runs" else f"?run={name}"
        times[f"{route}-first"] = [timed(client, f"{prefix}/{route}{query}")]
        times[route] = [timed(client, f"{prefix}/{route}{query}") for _ in range(20)]
    return times


def run(quick: bool = False) -> list[Figure]:
    counts = (10, 100) if quick else (10, 100, 1000)
    requests = 60 if quick else 200
    layer_counts = (6, 12)
    base = Path(tempfile.mkdtemp(prefix="attnflows-bench-plugin-"))
    figures: list[Figure] = []
    try:
        results: dict[tuple[int, int], dict[str, list[float]]] = {}
        for layers in layer_counts:
            for count in counts:
                logdir = base / f"L{layers}-{count}"
                start = time.perf_counter()
                synthetic_run(logdir / "run", snapshots=count, layers=layers)
                written = time.perf_counter() - start
                time.sleep(2.1)  # let the directory settle: a just-written run is re-listed on every request
                client, plugin = serve(logdir)
                start = time.perf_counter()
                timed(client, "/data/plugin/attnflows/runs")
                opened = (time.perf_counter() - start) * 1000
                steps = [k * 10 for k in range(count)]
                results[(layers, count)] = measure_run(client, plugin, "run", steps, requests, seed=layers * 7 + count)
                size = sum(p.stat().st_size for p in (logdir / "run").rglob("*.h5")) / 2**20
                print(f"L{layers} x{count}: wrote {size:.0f} MiB in {written:.1f} s; first /runs (index) {opened:.0f} ms",
                      flush=True)
                plugin.runs.clear()
                shutil.rmtree(logdir)
        print()
        print(f"{'route':<18}{'layers':>7}" + "".join(f"{f'p50@{c}':>10}{f'p95@{c}':>10}" for c in counts)
              + f"{'p95 ratio':>11}")
        for route in results[(layer_counts[0], counts[0])]:
            for layers in layer_counts:
                row = [results[(layers, c)][route] for c in counts]
                cells = "".join(f"{percentile(t, 50):>10.2f}{percentile(t, 95):>10.2f}" for t in row)
                ratio = percentile(row[-1], 95) / percentile(row[0], 95)
                print(f"{route:<18}{layers:>7}{cells}{ratio:>10.2f}x")
        print()
        largest = counts[-1]
        for layers in layer_counts:
            for route in FAST_ROUTES + ("flow-trace", "flow-raw", "heads-example", "summary", "runs"):
                low, high = results[(layers, counts[0])][route], results[(layers, largest)][route]
                for q in (50, 95):
                    value, baseline = percentile(high, q), percentile(low, q)
                    fast = route in FAST_ROUTES
                    met = value <= RATIO_GOAL * baseline and (q != 95 or not fast or value <= P95_GOAL_MS)
                    goal = f"<= {RATIO_GOAL}x" + (f" and <= {P95_GOAL_MS:g} ms" if fast and q == 95 else "")
                    figures.append(Figure(
                        benchmark="plugin", name=f"/{route} p{q} at {largest} snapshots, {layers} layers",
                        value=value, unit="ms", baseline=baseline, baseline_name=f"{counts[0]} snapshots",
                        goal=goal if route in FAST_ROUTES else "", met=met if route in FAST_ROUTES else None,
                        note="cold shard reads, TensorBoard WSGI stack in-process",
                    ))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 and 100 snapshots, fewer requests")
    report(run(quick=parser.parse_args().quick))

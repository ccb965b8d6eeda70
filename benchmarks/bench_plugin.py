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
TEMPLATES = 2  # distinct attention sets; snapshot k stores set k % TEMPLATES
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


def attention_sets(layers: int, lengths: np.ndarray, rng) -> list[list[np.ndarray]]:
    """TEMPLATES sets of per-example attention: [CLS]/[SEP] stripes, a diagonal band, some noise (like BERT's)."""
    sets = []
    for _ in range(TEMPLATES):
        per_example = []
        for n in lengths:
            logits = rng.normal(scale=0.7, size=(layers, HEADS, n, n))
            logits[..., 0] += rng.uniform(0, 4, size=(layers, HEADS, 1))
            logits[..., -1] += rng.uniform(0, 3, size=(layers, HEADS, 1))
            band = rng.uniform(0, 3, size=(layers, HEADS, 1))
            index = np.arange(n)
            logits[..., index[1:], index[:-1]] += band
            per_example.append(softmax(logits))
        sets.append(per_example)
    return sets


_ENCODED: dict[int, tuple] = {}  # layers -> (attention sets, their encoder): shared by the runs of one size


def synthetic_run(run_dir: Path, *, snapshots: int, layers: int, seed: int = 0) -> Path:
    """A run of ``snapshots`` shards of MiniLM-sized attention, written by RunWriter (without fsync: scratch data).

    Runs with the same ``layers`` and ``seed`` share their attention sets and encoded bytes.
    """
    from attnflows_callback import store
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
    fsync = store.os.fsync
    store.os.fsync = lambda fd: None  # durability is beside the point for scratch benchmark data
    try:
        writer = RunWriter(run_dir, meta=meta, probe_arrays=probe)
        if (layers, seed) not in _ENCODED:
            _ENCODED[(layers, seed)] = (attention_sets(layers, lengths, rng), _EncodeOnce(writer.encoding))
        sets, writer.encoding = _ENCODED[(layers, seed)]
        shape = (EXAMPLES, layers, HEADS)
        for k in range(snapshots):
            summaries = {"self": {"entropy": rng.uniform(0.5, 3.0, shape),
                                  "js_from_start": rng.uniform(0, 0.1, shape),
                                  "cosine_from_start": rng.uniform(0.8, 1.0, shape)}}
            writer.write_snapshot(k * 10, attention={"self": sets[k % TEMPLATES]},
                                  logits=rng.normal(size=(EXAMPLES, 2)), summaries=summaries,
                                  kind="final" if k == snapshots - 1 else "step")
        writer.set_status("finished")
    finally:
        store.os.fsync = fsync
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


PER_PAIR = {  # route: (path, extra query, share of the request budget)
    "attention": ("attention", "", 1.0),
    "attention-layer": ("attention", "&layer=3", 0.5),
    "flow-raw": ("flow", "&method=raw", 0.5),
    "flow-rollout": ("flow", "&method=rollout", 1.0),
    "flow-trace": ("flow", "&method=trace", 0.5),
    "flow-flow": ("flow", "&method=flow", 0.1),
    "heads-example": ("heads", "", 0.1),
    "compare-example": ("compare", "", 0.1),
}


def measure(client, plugin, runs: dict[str, int], requests: int, seed: int) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per request, per route and run. Requests alternate between the runs, so load
    changes on the machine hit every run alike; each (example, step) is asked once per route."""
    rng = random.Random(seed)
    prefix = "/data/plugin/attnflows"
    times = {name: {} for name in runs}
    for route, (path, extra, share) in PER_PAIR.items():
        count = max(10, int(requests * share))
        samples = {name: rng.sample([(e, s * 10) for e in range(EXAMPLES) for s in range(n)], min(count, EXAMPLES * n))
                   for name, n in runs.items()}
        plugin.attention.clear()
        for name in runs:
            times[name][route] = []
        for k in range(count):
            for name in runs:
                example, step = samples[name][k % len(samples[name])]
                if route == "compare-example":
                    url = f"{prefix}/compare?run={name}&step={step}&other_run={name}&other_step=0&example={example}"
                else:
                    url = f"{prefix}/{path}?run={name}&example={example}&step={step}{extra}"
                times[name][route].append(timed(client, url))
    for route in ("runs", "summary", "probe"):  # whole-run answers: computed once per run version, then cached
        for name in runs:
            query = "" if route == "runs" else f"?run={name}"
            times[name][f"{route}-first"] = [timed(client, f"{prefix}/{route}{query}")]
            times[name][route] = []
        for _ in range(20):
            for name in runs:
                query = "" if route == "runs" else f"?run={name}"
                times[name][route].append(timed(client, f"{prefix}/{route}{query}"))
    return times


def run(quick: bool = False) -> list[Figure]:
    plan = {6: (10, 100) if quick else (10, 100, 1000), 12: (10, 100)}
    requests = 60 if quick else 200
    base = Path(tempfile.mkdtemp(prefix="attnflows-bench-plugin-"))
    figures: list[Figure] = []
    try:
        for layers, counts in plan.items():
            logdir = base / f"L{layers}"
            runs = {f"L{layers}-{count}": count for count in counts}
            for name, count in runs.items():
                start = time.perf_counter()
                synthetic_run(logdir / name, snapshots=count, layers=layers, seed=layers)
                size = sum(p.stat().st_size for p in (logdir / name).rglob("*.h5")) / 2**20
                print(f"{name}: wrote {count} snapshots, {size:.0f} MiB, in {time.perf_counter() - start:.1f} s",
                      flush=True)
            time.sleep(2.1)  # let the directories settle: a just-written run is re-listed on every request
            client, plugin = serve(logdir)
            for name in runs:
                start = time.perf_counter()
                timed(client, f"/data/plugin/attnflows/probe?run={name}")
                print(f"{name}: first request (opens and indexes the run) {(time.perf_counter() - start) * 1000:.0f} ms")
            results = measure(client, plugin, runs, requests, seed=layers)
            names = list(runs)
            print()
            print(f"{layers} layers, {HEADS} heads, {EXAMPLES} examples of 12-64 tokens; milliseconds")
            print(f"{'route':<18}" + "".join(f"{f'p50@{runs[n]}':>10}{f'p95@{runs[n]}':>10}" for n in names)
                  + f"{'p50 ratio':>11}{'p95 ratio':>11}")
            for route in results[names[0]]:
                row = [results[n][route] for n in names]
                cells = "".join(f"{percentile(t, 50):>10.2f}{percentile(t, 95):>10.2f}" for t in row)
                ratios = [percentile(row[-1], q) / percentile(row[0], q) for q in (50, 95)]
                print(f"{route:<18}{cells}{ratios[0]:>10.2f}x{ratios[1]:>10.2f}x")
            print()
            low, high = results[names[0]], results[names[-1]]
            for route in PER_PAIR:
                for q in (50, 95):
                    value, baseline = percentile(high[route], q), percentile(low[route], q)
                    fast = route in FAST_ROUTES
                    met = value <= RATIO_GOAL * baseline and (q != 95 or value <= P95_GOAL_MS) if fast else None
                    goal = (f"<= {RATIO_GOAL}x" + (f" and <= {P95_GOAL_MS:g} ms" if q == 95 else "")) if fast else ""
                    figures.append(Figure(
                        benchmark="plugin", name=f"/{route} p{q}, {runs[names[-1]]} snapshots, {layers} layers",
                        value=value, unit="ms", baseline=baseline, baseline_name=f"{runs[names[0]]} snapshots",
                        goal=goal, met=met, note="cold shard reads through TensorBoard's WSGI stack, in-process",
                    ))
            plugin.runs.clear()
            _ENCODED.clear()
            shutil.rmtree(logdir)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 and 100 snapshots, fewer requests")
    report(run(quick=parser.parse_args().quick))

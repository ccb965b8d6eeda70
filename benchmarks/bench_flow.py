"""Flow and rollout speed vs the networkx Edmonds-Karp reference, on one CPU core.

The reference is the original authors' approach (Abnar & Zuidema 2020): a networkx DiGraph with
one node per (layer, position) and ``networkx.maximum_flow_value`` with Edmonds-Karp, once per
input token. At the larger sizes networkx is timed on a few sinks only and its time for all
sinks is estimated as ``seconds per sink x tokens``; each such figure says so.

Attention is synthetic and shaped like a BERT-base example: 12 heads per layer, each a softmax of
N(0, 2^2) logits plus one of four habits (stripes on [CLS]/[SEP], previous/next token, self, or
none). ``--dense`` adds a 12x128 case with unstructured Dirichlet(1) attention.

    python benchmarks/bench_flow.py            # about 2 to 4 minutes on one core
    python benchmarks/bench_flow.py --dense
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # one core: set before numpy is imported

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _common import Figure, report  # noqa: E402

SIZES = ((6, 24), (12, 32), (12, 64), (12, 128))
REFERENCE_SINKS = {24: 24, 32: 4, 64: 1, 128: 1}
"""How many sinks networkx is timed on, per token count; fewer than all means an estimate."""
FLOW_GOALS = {(12, 32): ("speed-up", 500.0), (12, 128): ("seconds", 0.5)}


def bert_like_attention(rng: np.random.Generator, layers: int, tokens: int, heads: int = 12) -> np.ndarray:
    logits = rng.normal(scale=2.0, size=(layers, heads, tokens, tokens))
    for layer in range(layers):
        for head in range(heads):
            habit = rng.integers(4)
            if habit == 0:
                logits[layer, head, :, 0] += 6.0
                logits[layer, head, :, -1] += 5.0
            elif habit == 1:
                logits[layer, head] += 6.0 * np.eye(tokens, k=int(rng.choice([-1, 1])))
            elif habit == 2:
                logits[layer, head] += 5.0 * np.eye(tokens)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


def dense_attention(rng: np.random.Generator, layers: int, tokens: int, heads: int = 12) -> np.ndarray:
    return rng.dirichlet(np.ones(tokens), size=(layers, heads, tokens)).astype(np.float32)


def reference_sinks(tokens: int) -> np.ndarray:
    """The sinks networkx is timed on: all of them, or a few spread over the sequence (not the source)."""
    count = REFERENCE_SINKS[tokens]
    if count >= tokens:
        return np.arange(tokens)
    return np.linspace(0, tokens - 1, count + 2)[1:-1].round().astype(int)


def networkx_reference(attn: np.ndarray, source: int, sinks: np.ndarray) -> tuple[np.ndarray, float]:
    """Max-flow values at ``sinks``, and seconds per sink (graph build included)."""
    import networkx
    from networkx.algorithms.flow import edmonds_karp

    from attnflows_callback.analysis import layer_attention

    capacities = layer_attention(attn)
    layers, tokens, _ = capacities.shape
    start = time.perf_counter()
    graph = networkx.DiGraph()
    for level in range(1, layers + 1):
        for j in range(tokens):
            for k in range(tokens):
                graph.add_edge((level, j), (level - 1, k), capacity=float(capacities[level - 1, j, k]))
    values = [
        networkx.maximum_flow_value(graph, (layers, source), (0, int(t)), flow_func=edmonds_karp) for t in sinks
    ]
    return np.array(values), (time.perf_counter() - start) / len(sinks)


def best_time(function, repeats: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds over ``repeats`` calls (CPU time shows what other load hides)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall), min(cpu)


HEADER = (
    f"{'case':18} {'flow':>9} {'flow CPU':>9} {'networkx EK':>12} {'flow/networkx':>14} {'speed-up':>9}"
    f" {'rollout':>9} {'rollout/networkx':>17}  networkx reference"
)


def measure(name: str, attn: np.ndarray, repeats: int) -> tuple[list[Figure], str]:
    """The flow and rollout figures of one case, and a table row with their ratios to networkx."""
    from attnflows_callback.analysis import attention_flow, rollout

    layers, _, tokens, _ = attn.shape
    size = f"{layers}x{tokens}"
    before = best_time(lambda: attention_flow(attn, 0), repeats)
    sinks = reference_sinks(tokens)
    reference, per_sink = networkx_reference(attn, 0, sinks)
    after = best_time(lambda: attention_flow(attn, 0), repeats)  # before and after: load spikes hit both
    ours, ours_cpu = min(before[0], after[0]), min(before[1], after[1])
    rollout_time, _ = best_time(lambda: rollout(attn), 20)
    networkx_total = per_sink * tokens
    diff = float(np.abs(attention_flow(attn, 0)[sinks] - reference).max())
    how = "measured on all sinks" if len(sinks) == tokens else f"estimated from sinks {sinks.tolist()} of {tokens}"
    baseline_name = f"networkx Edmonds-Karp, {how}"
    goal, met = "", None
    kind, target = FLOW_GOALS.get((layers, tokens), (None, None)) if name == "bert-like" else (None, None)
    if kind == "speed-up":
        goal, met = f">= {target:.0f}x faster than networkx", networkx_total / ours >= target
    elif kind == "seconds":
        goal, met = f"<= {target} s on one core", ours <= target
    against_networkx = {"benchmark": "flow", "unit": "s", "baseline": networkx_total, "baseline_name": baseline_name}
    figures = [
        Figure(
            name=f"attention_flow {size} {name}, all {tokens} sinks",
            value=ours,
            goal=goal,
            met=met,
            note=f"{networkx_total / ours:.0f}x faster; CPU time {ours_cpu:.3f} s; max |diff| vs networkx {diff:.1e}",
            **against_networkx,
        ),
        Figure(
            name=f"rollout {size} {name}",
            value=rollout_time,
            note=f"{networkx_total / rollout_time:.0f}x faster than networkx flow",
            **against_networkx,
        ),
    ]
    row = (
        f"{size + ' ' + name:18} {ours:>8.4f}s {ours_cpu:>8.4f}s {networkx_total:>11.1f}s {ours / networkx_total:>14.2e}"
        f" {networkx_total / ours:>8.0f}x {rollout_time * 1e3:>7.2f}ms {rollout_time / networkx_total:>17.2e}  {how}"
    )
    return figures, row


def run(*, dense: bool = False, repeats: int = 5) -> list[Figure]:
    rng = np.random.default_rng(0)
    cases = [("bert-like", bert_like_attention(rng, layers, tokens)) for layers, tokens in SIZES]
    if dense:
        cases.append(("dense", dense_attention(rng, 12, 128)))
    figures = []
    print(HEADER, flush=True)
    for name, attn in cases:
        case_figures, row = measure(name, attn, repeats)
        figures += case_figures
        print(row, flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dense", action="store_true", help="add a 12x128 case with unstructured attention")
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats for attention_flow (best of)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    print("exact attention flow from token 0 to every input token, one CPU core", flush=True)
    report(run(dense=args.dense, repeats=args.repeats))


if __name__ == "__main__":
    main()

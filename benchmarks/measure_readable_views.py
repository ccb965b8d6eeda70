"""How much of what the flow and influence views show lands on content words, with each view option.

Reads a recorded run (the real MiniLM fine-tuned on the bundled sentiment data) and, at the first
and the last snapshot, for every probe example, computes from the [CLS] position at the top layer:

- rollout: the [CLS] row of the residual rollout (what the token-influence bars show);
- trace (mean): the trace at tau = 0.1 over the head average (the flow's default), its influence,
  and whether it reaches any content word at the input level;
- trace (any_head): the same with the per-head graph (an edge when any head's own weight passes tau).

under four view options: raw attention; special tokens dropped as targets; special tokens and
punctuation dropped; and the latter merged into words (analysis.view.word_view). It prints the
mean over examples of the share of each method's mass on content words (tokens that are neither
special nor punctuation) and on the probe's annotated sentiment words.

    python examples/plain_loop.py --logdir /tmp/runs --run-name minilm --eval-size 0   # ~2-5 min CPU
    python benchmarks/measure_readable_views.py /tmp/runs/minilm [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attnflows_callback import open_run  # noqa: E402
from attnflows_callback.analysis import rollout, trace  # noqa: E402
from attnflows_callback.analysis.metrics import word_units  # noqa: E402
from attnflows_callback.analysis.view import (  # noqa: E402
    drop_targets,
    keep_mask,
    kept_mass,
    token_roles,
    unit_labels,
    word_view,
)

OPTIONS = ("raw", "drop special", "drop special+punct", "words (drop special+punct)")
TAU = 0.1


def sentiment_positions(run, example: int, records: dict) -> np.ndarray:
    """Bool ``[T]``: pieces of the probe record's sentiment words (matched by word, lower case)."""
    record = records.get(run.texts[example])
    tokens = run.tokens(example)
    word_ids = run.word_ids(example)
    marks = np.zeros(len(tokens), dtype=bool)
    if record is None or word_ids is None:
        return marks
    wanted = {w.lower() for w in record.get("sentiment_words", [])}
    units = word_units(word_ids)
    for unit, word in zip(units, unit_labels(tokens, units)):
        if word.lower() in wanted:
            marks[unit] = True
    return marks


def view(attn: np.ndarray, tokens, word_ids, option: str):
    """(attention under ``option``, roles per position, sentiment marks mapper)."""
    roles = np.asarray(token_roles(tokens, word_ids))
    if option == "raw":
        return attn, roles, None
    keep = keep_mask(tokens, word_ids, drop_special=True, drop_punctuation=option != "drop special")
    if option.startswith("words"):
        merged, _ = word_view(attn, word_ids, keep)
        units = word_units(word_ids)
        return merged, np.asarray([roles[u[0]] for u in units]), units
    return drop_targets(attn, keep), roles, None


def measure(attn, roles, sentiment):
    content = roles == "content"
    row = rollout(attn)[-1][0]
    mean_trace = trace(attn, source=0, tau=TAU)
    head_trace = trace(attn, source=0, tau=TAU, mode="any_head")

    def share(values, marks):
        total = values.sum()
        return float(values[marks].sum() / total) if total > 0 else 0.0

    def edge_share(result):  # share of traced edge weight (all layers) that points at content words
        weight = result.edges["weight"]
        return share(weight, content[result.edges["to_pos"]]) if weight.size else 0.0

    return {
        "rollout_content": share(row, content),
        "rollout_sentiment": share(row, sentiment),
        "rollout_cls": float(row[0]),
        "trace_reaches_content": float(content[mean_trace.tokens_at(0)].any()),
        "trace_edge_content": edge_share(mean_trace),
        "trace_influence_content": share(mean_trace.influence, content),
        "trace_influence_sentiment": share(mean_trace.influence, sentiment),
        "trace_edges": float(len(mean_trace.edges)),
        "head_trace_reaches_content": float(content[head_trace.tokens_at(0)].any()),
        "head_trace_edge_content": edge_share(head_trace),
        "head_trace_influence_content": share(head_trace.influence, content),
        "head_trace_edges": float(len(head_trace.edges)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--probe", default=str(ROOT / "examples" / "data" / "probe.jsonl"),
                        help="probe records with sentiment_words annotations")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    records = {}
    for line in Path(args.probe).read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            records[record["text"]] = record
    run = open_run(args.run_dir)
    steps = [int(run.steps[0]), int(run.steps[-1])]
    results = {}
    for step in steps:
        for option in OPTIONS:
            rows = []
            for i in range(run.num_examples):
                tokens, word_ids = run.tokens(i), run.word_ids(i)
                attn, roles, units = view(run.attention(i, step).astype(np.float64), tokens, word_ids, option)
                marks = sentiment_positions(run, i, records)
                if units is not None:
                    marks = np.asarray([bool(marks[u].any()) for u in units])
                row = measure(attn, roles, marks)
                raw = run.attention(i, step).astype(np.float64)
                keep = keep_mask(tokens, word_ids, drop_special=option != "raw",
                                 drop_punctuation=option not in ("raw", "drop special"))
                # what the legend must admit to: the share of each raw row the view hides (rows of stored
                # attention sum to 1 only within quantisation, so divide by the row's own sum)
                row["hidden_mass"] = float(1.0 - (kept_mass(raw, keep) / raw.sum(axis=-1)).mean())
                rows.append(row)
            results[(step, option)] = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    if args.json:
        print(json.dumps([{"step": s, "option": o, **v} for (s, o), v in results.items()], indent=1))
        return 0
    print(f"run {run.run_dir.name}: {run.num_examples} examples, steps {steps[0]} and {steps[-1]}, tau {TAU}, "
          "means over examples; shares of each method's mass\n")
    tables = [
        ("Token influence: [CLS] rollout row at the top layer (residual)",
         [("hidden_mass", "raw attention hidden by the view"), ("rollout_cls", "on [CLS]"), ("rollout_content", "on content words"),
          ("rollout_sentiment", "on sentiment words")]),
        (f"Flow: trace from [CLS], head average, tau {TAU}",
         [("trace_reaches_content", "examples reaching a word"), ("trace_edge_content", "edge weight on words"),
          ("trace_influence_content", "influence on words"), ("trace_influence_sentiment", "on sentiment words"),
          ("trace_edges", "edges")]),
        (f"Flow: per-head graph (any head passes tau {TAU})",
         [("head_trace_reaches_content", "examples reaching a word"),
          ("head_trace_edge_content", "edge weight on words"),
          ("head_trace_influence_content", "influence on words"), ("head_trace_edges", "edges")]),
    ]
    for title, columns in tables:
        print(f"{title}, step {steps[0]} -> {steps[1]}\n")
        print("| option | " + " | ".join(name for _, name in columns) + " |")
        print("|---|" + "---|" * len(columns))
        for option in OPTIONS:
            cells = []
            for key, _ in columns:
                first, last = results[(steps[0], option)][key], results[(steps[1], option)][key]
                fmt = "{:.1f}" if key.endswith("edges") else "{:.3f}"
                cells.append(f"{fmt.format(first)} -> {fmt.format(last)}")
            print(f"| {option} | " + " | ".join(cells) + " |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

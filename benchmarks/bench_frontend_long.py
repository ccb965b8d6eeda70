"""Frontend timings at BERT-base size in headless Chromium: 12 layers x 12 heads, 64 probes, 128 and 512 tokens.

Targets (issue 16): first render <= 1.5 s; a scrubber frame (every view redrawn for the new step)
p95 <= 100 ms, scrubbing back to back and 1.5 s apart, steps the server has not seen included.

The runs are synthesised, not trained: 64 probe examples whose attention is a softmax of random
scores plus the usual patterns (heads on [CLS], on the previous token, on [SEP]), written with the
store's own writer in the default encoding (`zstd-u8` since issue 16), with the summaries and the step
products (head metrics, head means) a recorder stores.
Encoding 64 x 12 x 12 x 512 x 512 weights takes minutes, so each snapshot holds a few distinct
tensors and texts shared out over the examples (the server decodes each example on its own all the same).

Each measurement opens a fresh page on its own probe example, so its first steps are cold on the
server too. Baselines measured in the same run: TensorBoard's own shell (navigation until the
plugin's iframe exists) for the first render, and the tiny test model (2 x 4 heads, ~10 tokens)
scrubbed the same way for the scrub frames. Beside them, the same rapid scrub run twice on one page:
its second round asks the server for nothing it has not answered, so it is the browser's own frame.

    .venv/bin/python benchmarks/bench_frontend_long.py [--moves 12] [--paced 6] [--keep DIR] [--lengths 128,512]

``--keep DIR`` (or ``$ATTNFLOWS_BENCH_KEEP``, which ``python -m benchmarks`` passes on) keeps the
synthesised logdir in DIR and reuses it on the next run (writing the 512-token run takes 20 minutes
on two cores).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import Figure, median, percentile, report  # noqa: E402
from benchmarks import bench_frontend  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, TensorBoard  # noqa: E402

BENCH = "frontend_long"
LAYERS, HEADS, EXAMPLES = 12, 12, 64
STEPS = (0, 10, 20, 30, 40, 50)
DISTINCT = 2  # distinct attention tensors per snapshot, shared out over the examples
TEXTS = 8  # distinct probe texts (a multiple of DISTINCT), shared out the same way
FIRST_GOAL_S = 1.5
FRAME_GOAL_S = 0.1


def synthetic_attention(length: int, seed: int) -> np.ndarray:
    """float32 ``[L, H, T, T]`` rows that sum to 1: random scores, a third of the heads on [CLS], on the
    previous token and on [SEP] (the patterns of a trained BERT)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((LAYERS, HEADS, length, length), dtype=np.float32) * np.float32(2.5)
    i = np.arange(length)
    x[:, :4, :, 0] += 6
    x[:, 4:8, i, np.maximum(i - 1, 0)] += 6
    x[:, 8:, :, -1] += 5
    x -= x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


def probe_tokens(length: int, examples: int):
    """Word-piece tokens, word ids and texts of ``examples`` sequences of exactly ``length`` tokens."""
    from tests.helpers import PROBE_TEXTS

    words = [w.strip(".,!?").lower() or "x" for w in " ".join(PROBE_TEXTS).split()]
    out = []
    for e in range(examples):
        tokens, word_ids, text = ["[CLS]"], [-1], []
        k = 0
        while len(tokens) < length - 1:
            word = words[(e * 7 + k) % len(words)]
            pieces = [word] if k % 5 else [word[:3], "##" + word[3:]] if len(word) > 3 else [word]
            for piece in pieces[: length - 1 - len(tokens)]:
                tokens.append(piece)
                word_ids.append(k)
            text.append(word)
            if k % 9 == 8 and len(tokens) < length - 1:
                tokens.append(".")
                word_ids.append(k + 1)
                k += 1
            k += 1
        tokens.append("[SEP]")
        word_ids.append(-1)
        out.append((tokens, word_ids, " ".join(text)))
    return out


class _SharedEncoding:
    """The run's encoding, encoding each distinct tensor once: the shards hold the same bytes as if each
    example had been encoded on its own."""

    def __init__(self, encoding):
        self.inner = encoding
        self.name = encoding.name
        self.done: dict[int, np.ndarray] = {}

    def encode(self, weights):
        if id(weights) not in self.done:
            self.done[id(weights)] = self.inner.encode(weights)
        return self.done[id(weights)]

    def __getattr__(self, name):  # dataset_options, dataset_attrs, ...: the run's encoding's own
        return getattr(self.inner, name)


def write_synthetic_run(run_dir: Path, length: int, *, examples: int = EXAMPLES, steps=STEPS,
                        products: bool = True) -> None:
    """A finished run of ``examples`` x ``steps`` snapshots at ``length`` tokens, in the default encoding;
    ``products=False`` leaves out the step products (as a run written before them)."""
    from attnflows_callback.recorder import snapshot_summaries
    from attnflows_callback.step_products import snapshot_products
    from attnflows_callback.store import RunWriter

    count = examples
    texts = probe_tokens(length, min(count, TEXTS))
    examples = [texts[e % len(texts)] for e in range(count)]  # example e: texts[e % TEXTS], tensor e % DISTINCT
    writer = RunWriter(
        run_dir,
        meta={"probe_id": f"synthetic-{length}", "model": {"class": "BertForSequenceClassification",
                                                          "name_or_path": "synthetic", "identity": f"synthetic-{length}"},
              "streams": {"self": {"layers": LAYERS, "heads": HEADS}}, "classification_position": "first",
              "hparams": {"layers": LAYERS, "heads": HEADS, "tokens": length}},
        probe_arrays={"texts": [text for _, _, text in examples], "labels": np.arange(count) % 2,
                      "label_names": ["negative", "positive"], "input_ids": [[1] * length] * count,
                      "tokens": [t for tokens, _, _ in examples for t in tokens],
                      "word_ids": [ids for _, ids, _ in examples], "truncated": np.zeros(count, bool)},
    )
    writer.encoding = _SharedEncoding(writer.encoding)
    reference = None
    rng = np.random.default_rng(length)
    for k, step in enumerate(steps):
        distinct = [synthetic_attention(length, seed=1000 * k + d) for d in range(DISTINCT)]
        if reference is None:
            reference = distinct
        per_distinct = snapshot_summaries({"self": distinct}, {"self": reference})["self"]
        attention = [distinct[e % DISTINCT] for e in range(count)]
        summaries = {"self": {name: value[np.arange(count) % DISTINCT] for name, value in per_distinct.items()}}
        # What the recorder's writer derives per example, computed once per distinct (tensor, text) and shared
        # out like the tensors (the same arrays, so the shared encoding encodes each head mean once).
        combos = min(count, TEXTS)
        made = snapshot_products({"self": attention[:combos]} if products else {}, [t for t, _, _ in examples[:combos]],
                                 [i for _, i, _ in examples[:combos]], classification_last=False)
        summaries["self"].update({name: value[np.arange(count) % combos]
                                  for name, value in made.summaries.get("self", {}).items()})
        means = [replace(mean, example=e) for e in range(count) for mean in made.means if mean.example == e % combos]
        logits = rng.standard_normal((count, 2)).astype(np.float32)
        writer.write_snapshot(step, attention={"self": attention}, logits=logits, summaries=summaries, means=means)
        writer.encoding.done.clear()
    writer.set_status("finished")
    writer.close()


def stored_rows_figure(run_dir: Path, older_dir: Path, label: str, repeats: int = 5) -> Figure:
    """A step's source rows for the aggregate (every example), read cold from the step's table, against the
    same rows read from an older shard's attributes: one shard of ``run_dir`` copied and rewritten."""
    import shutil

    from attnflows_callback import open_run

    from tests.helpers import as_an_older_shard

    step = STEPS[-1]
    shard = f"step-{step:012d}.h5"
    shutil.copytree(run_dir, older_dir, ignore=lambda d, names: [n for n in names if n.startswith("step-") and n != shard])
    as_an_older_shard(older_dir / "attnflows" / "snapshots" / shard)

    def cold_read(where: Path) -> tuple[float, dict]:  # the run opened afresh: its shard opened and read cold
        run = open_run(where)
        wanted = {i: "special_punct" for i in range(run.num_examples)}
        run.tokens(0)
        start = time.perf_counter()
        rows = run.source_rows(step, "self", wanted)
        taken = time.perf_counter() - start
        run.close()
        return taken, rows

    table, older = cold_read(run_dir)[1], cold_read(older_dir)[1]
    assert table.keys() == older.keys() and len(table) == EXAMPLES and all(
        np.array_equal(table[i], older[i]) for i in table)
    before = [cold_read(older_dir)[0] for _ in range(repeats)]
    after = [cold_read(run_dir)[0] for _ in range(repeats)]
    shutil.rmtree(older_dir)
    return Figure(BENCH, f"{label}: a step's source rows for the aggregate, read cold", median(after) * 1000, "ms",
                  median(before) * 1000, "an attribute on each head mean (older shards)",
                  note="Run.source_rows on a freshly opened run: one read of the step's table; the same rows")


def measure(browser, url: str, run: str, example: int, moves: int = 0, pause_ms: int = 0, rounds: int = 1) -> dict:
    """:func:`bench_frontend.measure` on ``example``, with time for a cold 512-token first render."""
    return bench_frontend.measure(browser, url, run, moves, pause_ms, example=example, timeout_ms=300000, rounds=rounds)


def figures(label: str, first: dict, rapid: dict, paced: dict, tiny: dict, seen: dict) -> list[Figure]:
    out = [Figure(BENCH, f"{label}: first render of the tab", first["first"] * 1000, "ms", first["shell"] * 1000,
                  "TensorBoard shell until the plugin iframe exists", f"<= {FIRST_GOAL_S * 1000:.0f} ms",
                  first["first"] <= FIRST_GOAL_S, "iframe navigation start -> every view painted; a cold example")]
    for name, r, note in (("rapid", rapid, "moves back to back"), ("paced", paced, "moves 1.5 s apart")):
        p95, base = percentile(r["full"], 95), percentile(tiny[name]["full"], 95)
        out.append(Figure(BENCH, f"{label}: scrubber frame p95, all views, {name}", p95 * 1000, "ms", base * 1000,
                          "the same on the 2x4-head ~10-token run", f"<= {FRAME_GOAL_S * 1000:.0f} ms",
                          p95 <= FRAME_GOAL_S, f"median {median(r['full']) * 1000:.0f} ms, {len(r['full'])} moves; "
                          f"{note}, from a cold example"))
    p95 = percentile(seen["full"], 95)
    out.append(Figure(BENCH, f"{label}: scrubber frame p95, all views, rapid over steps already shown", p95 * 1000, "ms",
                      percentile(tiny["rapid"]["full"], 95) * 1000, "the tiny run's rapid p95, cold steps included",
                      note=f"median {median(seen['full']) * 1000:.0f} ms; the same scrub a second time on one page: no "
                           "request waits on the server, so this is the browser's own frame on this machine"))
    return out


def peak_rss(pid: int) -> tuple[int, int]:
    """(peak, current) resident bytes of a process (Linux /proc)."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return int(fields["VmHWM"][0]) * 1024, int(fields["VmRSS"][0]) * 1024


def budget_mib() -> float:
    from attnflows_callback import limits

    return (limits.ATTENTION_CACHE_BYTES + limits.DERIVED_ARRAYS_BYTES) / 2**20


def load_note() -> str:
    try:
        return "load average at the end %.2f %.2f %.2f (2 shared cores)" % os.getloadavg()
    except OSError:
        return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=12, help="back-to-back scrubber moves per run (default 12)")
    parser.add_argument("--paced", type=int, default=6, help="paced scrubber moves per run (default 6)")
    parser.add_argument("--lengths", default="128,512", help="token lengths to measure (default 128,512)")
    parser.add_argument("--keep", type=Path, default=os.environ.get("ATTNFLOWS_BENCH_KEEP") or None,
                        help="keep (and reuse) the synthesised logdir here (default: $ATTNFLOWS_BENCH_KEEP, else none)")
    args = parser.parse_args(argv)
    lengths = [int(n) for n in args.lengths.split(",")]
    if not Path(CHROMIUM).exists():
        print(f"skipped: {CHROMIUM} is missing")
        return 0
    from playwright.sync_api import sync_playwright

    from tests.helpers import write_run

    with tempfile.TemporaryDirectory() as tmp:
        logdir = (args.keep or Path(tmp)) / "logdir"
        t = time.perf_counter()
        if not (logdir / "tiny" / "attnflows").exists():
            write_run(logdir / "tiny", steps=STEPS)
        for n in lengths:
            if not (logdir / f"long{n}" / "attnflows" / "status.json").exists():
                write_synthetic_run(logdir / f"long{n}", n)
        print(f"runs ready in {time.perf_counter() - t:.1f} s")
        found = []
        for n in lengths:
            found.append(stored_rows_figure(logdir / f"long{n}", Path(tmp) / f"older{n}", f"12x12 heads, {n} tokens, "
                                            f"{EXAMPLES} probes"))
        server = TensorBoard(logdir, expect_runs=1 + len(lengths))
        started_rss = peak_rss(server.proc.pid)[1]
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                measure(browser, server.url, "tiny", 0)  # warm the browser's and TensorBoard's own caches
                tiny = {"rapid": measure(browser, server.url, "tiny", 1, args.moves),
                        "paced": measure(browser, server.url, "tiny", 2, args.paced, 1500)}
                for k, n in enumerate(lengths):
                    first = measure(browser, server.url, f"long{n}", 10 * k + 3)
                    rapid = measure(browser, server.url, f"long{n}", 10 * k + 4, args.moves)
                    paced = measure(browser, server.url, f"long{n}", 10 * k + 5, args.paced, 1500)
                    seen = measure(browser, server.url, f"long{n}", 10 * k + 6, args.moves, rounds=2)
                    found += figures(f"12x12 heads, {n} tokens, 64 probes", first, rapid, paced, tiny, seen)
                browser.close()
            peak, now = peak_rss(server.proc.pid)
            found.append(Figure(BENCH, "TensorBoard's peak memory (RSS) over the whole run", peak / 2**20, "MiB",
                                started_rss / 2**20, "its RSS once it listed the runs", "bounded (docs/plugin.md)", None,
                                f"RSS at the end {now / 2**20:.0f} MiB; its decoded-attention and per-step caches keep at most "
                                f"{budget_mib():.0f} MiB (docs/plugin.md, \"The budget\")"))
        finally:
            server.stop()
    print(load_note())
    report(found)
    return 0


if __name__ == "__main__":
    sys.exit(main())

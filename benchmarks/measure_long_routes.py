"""Where a step of a long example goes on the server, with and without the step products, in one process.

Figures at 128 and 512 tokens (12 layers x 12 heads), each against its baseline measured here on the
same tensors:
- the writer: the step products of one example (head metrics, head means; step_products.py) against
  encoding and writing its attention, the work the writer already did per example;
- the routes a scrub frame asks for (``/flow`` trace and rollout in the words view, ``/lifetimes``,
  ``/heads``, the head detail's ``/attention``, the aggregate's rollout row), on a step no cache holds
  yet: answered from the stored products (and one layer's chunk) against derived from the attention
  in the request (a run written without products, same tensors);
- the trace of a stored head mean, following only the rows it reached, against masking every row of
  each layer as before; the aggregate's sums over 64 examples with their labels numbered once, against
  numbered at each call (bench_frontend_long.py measures a step's stored rows over its 64 examples);
- the word merge of a head mean: gathering each word's pieces against the membership-matrix
  product the plugin used before.

    .venv/bin/python benchmarks/measure_long_routes.py [--repeats 5] [--lengths 128,512]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import Figure, median, report  # noqa: E402

BENCH = "long_routes"
EXAMPLES, STEPS = 4, (0, 10)


def membership_merge(attn: np.ndarray, word_ids) -> np.ndarray:
    """The word merge as the plugin computed it before: ``M^T A M / |piece set|`` with a 0/1 membership matrix."""
    from attnflows_callback.analysis import word_units

    units = word_units(list(word_ids))
    membership = np.zeros((attn.shape[-1], len(units)))
    for index, unit in enumerate(units):
        membership[unit, index] = 1.0
    return (membership.T @ attn @ membership) / membership.sum(axis=0)[:, None]


def every_row_trace(maps: np.ndarray, source: int, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """The mean-mode trace as the library followed it before: each layer's whole ``[T, T]`` map masked by the
    rows reached, not those rows alone. ``(edges [E, 3] as (layer, from, to), influence [T])``."""
    reached = np.zeros(maps.shape[-1], dtype=bool)
    reached[source] = True
    mass = np.zeros(maps.shape[-1])
    mass[source] = 1.0
    edges = []
    for layer in range(maps.shape[0] - 1, -1, -1):
        traced = reached[:, None] & (maps[layer] >= tau)
        from_pos, to_pos = np.nonzero(traced)
        edges.append(np.column_stack([np.full(from_pos.size, layer), from_pos, to_pos]))
        mass = mass @ np.where(traced, maps[layer], 0.0)
        reached = traced.any(axis=0)
    return np.concatenate(edges), mass


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def cold(fn, entry, repeats: int) -> list[float]:
    """``fn(entry, cache, example)`` timed on a fresh cache each time, cycling over the examples."""
    from attnflows_tb import derived

    examples = iter(range(10**6))
    return timed(lambda: fn(entry, derived.StepCache(warm=False), next(examples) % EXAMPLES), repeats)


def writer_figure(length: int, repeats: int) -> Figure:
    import h5py

    from attnflows_callback.encodings import get_encoding
    from attnflows_callback.step_products import snapshot_products

    from benchmarks.bench_frontend_long import probe_tokens, synthetic_attention

    attention = synthetic_attention(length, seed=1)
    tokens, word_ids, _ = probe_tokens(length, 1)[0]
    encoding = get_encoding("zstd-u8")
    with tempfile.TemporaryDirectory() as tmp:
        def write():
            with h5py.File(Path(tmp) / "shard.h5", "w") as f:
                stored = encoding.encode(attention)
                f.create_dataset("a", data=stored, **encoding.dataset_options(stored.shape))

        before = timed(write, repeats)
        after = timed(lambda: snapshot_products({"self": [attention]}, [tokens], [word_ids],
                                                classification_last=False), repeats)
    return Figure(BENCH, f"writer: step products of one example, 12x12x{length}", median(after) * 1000, "ms",
                  median(before) * 1000, "encoding and writing its attention (zstd-u8)",
                  note="head metrics and pattern classes, raw and default-view head means; on the writer thread")


def aggregate_figure(entry, length: int, repeats: int) -> Figure:
    """The aggregate's sums with each example's labels numbered once against numbered at each call, 64 examples
    (the stored rows of a step: ``bench_frontend_long.stored_rows_figure``, over its 64 examples)."""
    from attnflows_callback.aggregate import example_words
    from attnflows_callback.analysis.aggregate import influence_by_role, influence_by_word, number_labels
    from attnflows_callback.analysis.view import TOKEN_ROLES

    run, wanted = entry.run, {i: "special_punct" for i in range(EXAMPLES)}
    rows = run.source_rows(STEPS[-1], "self", wanted)
    # 64 examples, as the frontend benchmark's probe: the run's examples over again
    chosen = [i % EXAMPLES for i in range(64)]
    labels = [example_words(run, i, True, True) for i in chosen]
    token_rows = [rows[i].astype(np.float64) for i in chosen]
    word_rows = [np.add.reduceat(row, words.starts) for row, words in zip(token_rows, labels)]
    roles, words = [e.roles for e in labels], [e.words for e in labels]
    numbered_roles, numbered_words = number_labels(roles, TOKEN_ROLES), number_labels(words)
    positions = np.arange(64)
    assert influence_by_word(word_rows, words, positions) == influence_by_word(word_rows, numbered_words, positions)
    assert influence_by_role(token_rows, roles, positions) == influence_by_role(token_rows, numbered_roles, positions)
    before = timed(lambda: (influence_by_role(token_rows, roles, positions),
                            influence_by_word(word_rows, words, positions)), repeats)
    after = timed(lambda: (influence_by_role(token_rows, numbered_roles, positions),
                           influence_by_word(word_rows, numbered_words, positions)), repeats)
    return Figure(BENCH, f"the aggregate's sums by token role and by word, 64 examples, 12x12x{length}",
                  median(after) * 1000, "ms", median(before) * 1000, "each label numbered at each call",
                  note="labels numbered once per selection (the same at every step); the same results")


def chunking_figures(length: int, where: Path, repeats: int) -> list[Figure]:
    """``zstd-u8`` one chunk per layer against one chunk for the whole example: bytes, and a whole decode."""
    import h5py

    from attnflows_callback import encodings

    from benchmarks.bench_frontend_long import synthetic_attention

    encoding, weights = encodings.get_encoding("zstd-u8"), synthetic_attention(length, seed=7)
    stored, size, decode = encoding.encode(weights), {}, {}
    for per_layer in (True, False):
        path = where / f"chunks-{length}-{per_layer}.h5"
        chunks = (1, *stored.shape[1:]) if per_layer else stored.shape
        with h5py.File(path, "w") as f:
            ds = f.create_dataset("x", data=stored, **{**encoding.dataset_options(stored.shape), "chunks": chunks})
            ds.attrs.update(encoding.dataset_attrs())
        size[per_layer] = path.stat().st_size
        with h5py.File(path, "r") as f:
            decode[per_layer] = median(timed(lambda: encoding.read(f["x"], weights.shape), repeats))
            assert np.array_equal(encoding.read(f["x"], weights.shape), stored)
    stored_per_layer = tuple(encoding.dataset_options(stored.shape)["chunks"]) != stored.shape  # what the writer does
    per = "one chunk per layer (as stored)" if stored_per_layer else \
        "one chunk per layer (not stored so: under LAYER_CHUNK_VALUES)"
    return [Figure(BENCH, f"bytes of an example, {per}, 12x12x{length}", size[True] / 2**20, "MiB", size[False] / 2**20,
                   "one chunk for the whole example", note="zstd-u8, level 9, the same codes"),
            Figure(BENCH, f"whole decode of an example, {per}, 12x12x{length}", decode[True] * 1000, "ms",
                   decode[False] * 1000, "one chunk for the whole example", note="the codes, exactly the same")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lengths", default="128,512")
    args = parser.parse_args(argv)
    from attnflows_callback.aggregate import source_row
    from attnflows_callback.analysis import merge_word_pieces, trace
    from attnflows_tb import api, changes
    from attnflows_tb.display import Display
    from attnflows_tb.runs import RunCache

    from benchmarks.bench_frontend_long import write_synthetic_run

    found = []
    display = Display("special_punct", "words")
    routes = {
        "/flow trace (words view)": lambda entry, cache, i: api.flow_impl(
            "r", entry, cache, example=i, step=STEPS[-1], method="trace", view="raw", display=display, tau=0.1),
        "/flow rollout (words view)": lambda entry, cache, i: api.flow_impl(
            "r", entry, cache, example=i, step=STEPS[-1], method="trace", view="rollout", display=display, tau=0.1),
        "/lifetimes (every snapshot)": lambda entry, cache, i: changes.lifetimes_impl(
            "r", entry, cache, example=i, step=STEPS[-1]),
        "/heads of one example": lambda entry, cache, i: api.heads_impl("r", entry, cache, step=STEPS[-1], example=i),
        "aggregate row ([CLS] rollout row, targets hidden)": lambda entry, cache, i: source_row(
            entry.run, i, STEPS[-1], drop_punctuation=True),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for length in [int(n) for n in args.lengths.split(",")]:
            found.append(writer_figure(length, max(2, args.repeats // 2)))
            found += chunking_figures(length, Path(tmp), args.repeats)
            runs = {}
            for products in (True, False):
                run_dir = Path(tmp) / f"long{length}-{products}"
                write_synthetic_run(run_dir, length, examples=EXAMPLES, steps=STEPS, products=products)
                runs[products] = RunCache().get(run_dir)
            for name, route in routes.items():
                derived_here = cold(route, runs[False], args.repeats)
                stored = cold(route, runs[True], args.repeats)
                found.append(Figure(BENCH, f"{name}, a step no cache holds, 12x12x{length}", median(stored) * 1000,
                                    "ms", median(derived_here) * 1000, "derived from the attention in the request",
                                    note="answered from the step products stored with the snapshot"))
            size = {products: sum(f.stat().st_size for f in (Path(tmp) / f"long{length}-{products}").rglob("step-*.h5"))
                    for products in runs}
            found.append(Figure(BENCH, f"disk per snapshot with the step products, 12x12x{length}",
                                size[True] / len(STEPS) / 2**20, "MiB", size[False] / len(STEPS) / 2**20,
                                "the same snapshot without them", note="zstd-u8; two head means of at most 1/12 of the attention "
                                "each, and 9 head metrics per head"))
            run = runs[True].run
            if run.reads_a_layer_alone(0, STEPS[-1]):
                examples = iter(range(10**6))
                whole = timed(lambda: run.attention(next(examples) % EXAMPLES, STEPS[-1])[5], args.repeats)
                alone = timed(lambda: run.attention(next(examples) % EXAMPLES, STEPS[-1], layer=5), args.repeats)
                found.append(Figure(BENCH, f"one layer for the head detail, 12x12x{length}", median(alone) * 1000,
                                    "ms", median(whole) * 1000, "the whole example decoded, the layer cut out",
                                    note="zstd-u8 stores an example over 2^21 codes one chunk per layer"))
            mean = run.head_mean(0, STEPS[-1], "self", "none").values[:, None].astype(np.float64)
            traced = trace(mean, source=0, tau=0.1)
            edges, influence = every_row_trace(mean[:, 0], 0, 0.1)
            assert np.array_equal(np.column_stack([traced.edges[k] for k in ("layer", "from_pos", "to_pos")]), edges)
            np.testing.assert_allclose(traced.influence, influence, atol=1e-12)
            before = timed(lambda: every_row_trace(mean[:, 0], 0, 0.1), args.repeats)
            after = timed(lambda: trace(mean, source=0, tau=0.1), args.repeats)
            found.append(Figure(BENCH, f"trace of a head mean from [CLS] at tau 0.1, 12x{length}x{length}",
                                median(after) * 1000, "ms", median(before) * 1000, "every row of each layer masked",
                                note=f"the rows reached alone ({int(traced.reached.sum())} of {traced.reached.size} "
                                "layer positions), argument checks included; same edges and influence (1e-12)"))
            found.append(aggregate_figure(runs[True], length, args.repeats))
            if length == max(int(n) for n in args.lengths.split(",")):
                word_ids = [None if w < 0 else int(w) for w in runs[True].run.word_ids(0)]
                np.testing.assert_allclose(merge_word_pieces(mean, word_ids), membership_merge(mean, word_ids),
                                           atol=1e-12)
                before = timed(lambda: membership_merge(mean, word_ids), args.repeats)
                after = timed(lambda: merge_word_pieces(mean, word_ids), args.repeats)
                found.append(Figure(BENCH, f"word merge of a head mean, 12x{length}x{length}", median(after) * 1000,
                                    "ms", median(before) * 1000, "the membership-matrix product used before",
                                    note="each word's pieces gathered and added; same result (1e-12)"))
            for entry in runs.values():
                entry.run.close()
    print("load average %.2f %.2f %.2f (2 shared cores)" % os.getloadavg())
    report(found)
    return 0


if __name__ == "__main__":
    sys.exit(main())

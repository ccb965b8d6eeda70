"""Where a step of a 12 x 12 x 128-token example goes on the server, before and after issue 16, in one process.

Three figures, each against its baseline measured here on the same tensors:
- merging word pieces into words (the default display): the membership-matrix product the plugin
  used before vs ``analysis.merge_word_pieces`` now, which is the same product with its input checks
  (segment sums with ``np.add.reduceat`` were tried and measured slower on an idle machine);
- ``/flow`` (trace, the default method and display) for a step: computed in the request as before
  (decode, display transform of every head, trace) vs answered from the head mean kept per snapshot
  (:class:`attnflows_tb.derived.StepCache`);
- ``/heads`` for one example at a step: head metrics computed in the request vs kept per snapshot.

    .venv/bin/python benchmarks/measure_long_routes.py [--keep DIR] [--repeats 5]

``--keep DIR``: the logdir of ``bench_frontend_long.py --keep DIR`` (else a 128-token run is written).
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


def membership_merge(attn: np.ndarray, word_ids) -> np.ndarray:
    """The word merge as the plugin computed it before: ``M^T A M / |piece set|`` with a 0/1 membership matrix."""
    from attnflows_callback.analysis import word_units

    units = word_units(list(word_ids))
    membership = np.zeros((attn.shape[-1], len(units)))
    for index, unit in enumerate(units):
        membership[unit, index] = 1.0
    return (membership.T @ attn @ membership) / membership.sum(axis=0)[:, None]


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="the kept logdir of bench_frontend_long.py")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from attnflows_callback.analysis import merge_word_pieces
    from attnflows_tb import api, derived
    from attnflows_tb.display import Display
    from attnflows_tb.runs import AttentionCache, RunCache

    from benchmarks.bench_frontend_long import write_synthetic_run

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = (args.keep / "logdir" / "long128") if args.keep else Path(tmp) / "long128"
        if not (run_dir / "attnflows" / "status.json").exists():
            write_synthetic_run(run_dir, 128)
        entry = RunCache().get(run_dir)
        steps = [int(s) for s in entry.run.steps]
        display = Display("special_punct", "words")
        attention = entry.run.attention(0, steps[-1], "self").astype(np.float64)
        word_ids = [None if w < 0 else int(w) for w in entry.run.word_ids(0)]
        np.testing.assert_allclose(merge_word_pieces(attention, word_ids), membership_merge(attention, word_ids),
                                   atol=1e-12)
        before = timed(lambda: membership_merge(attention, word_ids), max(1, args.repeats // 2))
        after = timed(lambda: merge_word_pieces(attention, word_ids), args.repeats)
        found = [Figure(BENCH, "word merge of one example, 12x12x128", median(after) * 1000, "ms", median(before) * 1000,
                        "the membership-matrix product used before",
                        note="same product plus input checks; same result (1e-12)")]

        query = dict(method="trace", view="raw", display=display, tau=0.1)
        examples = iter(range(entry.run.num_examples))

        def in_request():  # as before: nothing kept between requests but the decoded tensor
            cache = AttentionCache()
            example = next(examples)
            return api.flow_impl("r", entry, cache, example=example, step=steps[-1], **query)

        kept = derived.StepCache(warm=False)
        api.flow_impl("r", entry, kept, example=0, step=steps[-1], **query)
        cold = timed(in_request, args.repeats)
        warm = timed(lambda: api.flow_impl("r", entry, kept, example=0, step=steps[-1], **query), args.repeats)
        found.append(Figure(BENCH, "/flow trace (words view) of a prepared step", median(warm) * 1000, "ms",
                            median(cold) * 1000, "the same computed in the request (decode, transform, trace)",
                            note="the background thread prepares an example's other steps once one is asked for"))

        def heads_in_request():
            return api.heads_impl("r", entry, AttentionCache(), step=steps[-1], example=next(examples))

        api.heads_impl("r", entry, kept, step=steps[-1], example=0)
        cold = timed(heads_in_request, args.repeats)
        warm = timed(lambda: api.heads_impl("r", entry, kept, step=steps[-1], example=0), args.repeats)
        found.append(Figure(BENCH, "/heads of one example at a prepared step", median(warm) * 1000, "ms",
                            median(cold) * 1000, "the same computed in the request"))
        entry.run.close()
    print("load average %.2f %.2f %.2f (2 shared cores)" % os.getloadavg())
    report(found)
    return 0


if __name__ == "__main__":
    sys.exit(main())

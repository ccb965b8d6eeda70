"""What feeding segment ids changes: the real MiniLM on sentence pairs, recorded vs its own forward.

Prints, over the probe pairs of tests/truth.py and every layer and head:
  - how far the attention of a pair without its token_type_ids (what attnflows format 1
    recorded) is from the model's own ``model(**tokenizer(premise, hypothesis))``;
  - how far what attnflows records now (read back through open_run) is from it.

    python benchmarks/bench_segment_ids.py
"""

from __future__ import annotations

import tempfile

import numpy as np

from _common import ROOT  # noqa: F401 - puts the repository on sys.path

from attnflows_callback import AttentionRecorder, ProbeSet, open_run
from attnflows_callback.store import ENCODINGS
from tests.helpers import minilm_classifier, tokenizer
from tests.truth import HYPOTHESES, PREMISES, eager_copy, eager_forward, max_differences


def main() -> None:
    model = minilm_classifier()
    reference = eager_copy(model)
    per_layer, logits_gap = None, 0.0
    for premise, hypothesis in zip(PREMISES, HYPOTHESES):
        truth, truth_logits = eager_forward(reference, tokenizer(), premise, hypothesis)
        segmentless, segmentless_logits = eager_forward(reference, tokenizer(), premise, hypothesis,
                                                        drop=("token_type_ids",))
        gap = np.abs(truth["self"] - segmentless["self"]).max(axis=(1, 2, 3))
        per_layer = gap if per_layer is None else np.maximum(per_layer, gap)
        logits_gap = max(logits_gap, float(np.abs(truth_logits - segmentless_logits).max()))
    print(f"real MiniLM, {len(PREMISES)} premise/hypothesis pairs (pre-trained encoder, fresh 2-class head)")
    print(f"format 1 (no token_type_ids) vs model(**tokenizer(p, h)): max |attention diff| {per_layer.max():.3f}, "
          f"max |logits diff| {logits_gap:.4f}")
    print("  per layer:", " ".join(f"L{k}={v:.3f}" for k, v in enumerate(per_layer)))
    with tempfile.TemporaryDirectory() as run_dir:
        with AttentionRecorder(model, tokenizer(), ProbeSet(PREMISES, HYPOTHESES), run_dir, tensorboard=False,
                               batch_size=4) as recorder:
            recorder.snapshot(0)
        with open_run(run_dir) as run:
            worst = max_differences(run, 0, model, tokenizer(), PREMISES, HYPOTHESES)
    print(f"format 2 (recorded, read back) vs model(**tokenizer(p, h)): max |attention diff| {worst['self']:.5f} "
          f"(encoding bound {ENCODINGS['compact'].max_abs_error:.5f}), max |logits diff| {worst['logits']:.2e}")


if __name__ == "__main__":
    main()

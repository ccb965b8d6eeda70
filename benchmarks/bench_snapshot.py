"""What a snapshot costs on the training thread, against the bare probe forward pass.

Baseline: the probe set through the real MiniLM in eager mode under no_grad, in the same
batches (what any attention capture must at least do). Measured: `AttentionRecorder.snapshot`
as the training thread sees it (eager switch, hooks, copy to numpy, enqueue). The background
writer is drained between repeats, outside the timed region, as it would be between two
snapshots in training. Paired A/B/A/B in one process; goal <= 1.10x.

Run: python benchmarks/bench_snapshot.py
"""

from __future__ import annotations

import tempfile

from _common import Figure, bundled_probe, median, padded_batch, paired, report


def run(repeats: int = 9) -> list[Figure]:
    import torch

    from attnflows_callback import AttentionRecorder
    from attnflows_callback.capture import _batches
    from tests.helpers import minilm_classifier, tokenizer

    model = minilm_classifier()
    probe = bundled_probe().tokenize(tokenizer())
    batches = [padded_batch([probe.input_ids[i] for i in batch]) for batch in _batches(probe, 16, model.config)]

    eager = minilm_classifier()
    eager.set_attn_implementation("eager")
    eager.eval()

    def bare_forward():
        with torch.no_grad():
            for batch in batches:
                eager(**batch, output_attentions=True)

    step = iter(range(10**6))
    with tempfile.TemporaryDirectory() as run_dir:
        recorder = AttentionRecorder(model, tokenizer(), probe, run_dir, tensorboard=False)

        def snapshot():
            recorder.snapshot(next(step))

        base, snap = [], []
        for _ in range(2):  # warm-up
            bare_forward(); snapshot(); recorder.flush()
        for _ in range(repeats):
            b, s = paired(bare_forward, snapshot, repeats=1, warmup=0)
            recorder.flush()
            base += b
            snap += s
        recorder.close()
    value, baseline = median(snap), median(base)
    return [
        Figure("snapshot", "snapshot on the training thread (MiniLM, 64 probes)", value * 1e3, "ms",
               baseline * 1e3, "bare eager probe forward", "<= 1.10x", value / baseline <= 1.10),
    ]


if __name__ == "__main__":
    report(run())

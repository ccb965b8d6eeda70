"""Training overhead: real MiniLM fine-tuning with the Lightning callback at its default schedule, and without.

Both arms fit the pre-trained MiniLM (fresh classification head, same seed) on the bundled
sentiment training set for the same number of optimizer steps, with the same TensorBoard
logger; the measured arm adds ``AttentionFlowsCallback`` with its defaults (log-spaced, 2 per
decade, plus checkpoints, epoch ends, step 0 and the final step) and the 64-example bundled
probe set. Arms alternate A/B/A/B in one process; the first figure is the median wall time
of ``trainer.fit``, including the writer draining at the end of training.

A run short enough for a benchmark has more snapshots per step than a real fine-tune (the
log grid is dense early), and on a shared 2-core machine the difference of two whole-fit
times is noisier than a snapshot. So the script also times the callback's hooks on the
training thread (recorder set-up, every probe pass, the final drain), divides by the
snapshots taken, and projects the ratio onto a 3-epoch fine-tune of the same data with
the default schedule: that projected figure is the one held to the goal of <= 1.03x. It
leaves out the background writer's CPU time, which the wall-time pair includes.

Run: python benchmarks/bench_training_overhead.py  (about 3 to 5 minutes on 2 cores)
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings

from _common import ROOT, Figure, bundled_probe, median, paired, report

STEPS = 30
BATCH_SIZE = 8
PROJECTED_EPOCHS = 3


def run(steps: int = STEPS, repeats: int = 2) -> list[Figure]:
    import lightning.pytorch as L
    import torch

    from attnflows_callback import open_run
    from attnflows_callback.lightning import AttentionFlowsCallback
    from attnflows_callback.schedule import SnapshotSchedule
    from tests.helpers import minilm_classifier, tokenizer

    warnings.filterwarnings("ignore")
    records = [json.loads(line) for line in open(os.path.join(ROOT, "examples", "data", "train.jsonl"))]
    encoded = tokenizer()([r["text"] for r in records], padding="longest", truncation=True, max_length=64,
                          return_tensors="pt")
    data = torch.utils.data.TensorDataset(encoded["input_ids"], encoded["attention_mask"],
                                          torch.tensor([r["label"] for r in records]))
    probe = bundled_probe()

    class FineTune(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = minilm_classifier(seed=0)
            self.tokenizer = tokenizer()

        def training_step(self, batch, batch_idx):
            ids, mask, labels = batch
            return self.model(input_ids=ids, attention_mask=mask, labels=labels).loss

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=2e-5)

    class TimedCallback(AttentionFlowsCallback):
        """The callback, with the time spent in its hooks on the training thread added up."""

        hook_seconds = 0.0

    for hook in ("setup", "on_train_start", "on_train_batch_end", "on_train_epoch_end", "on_save_checkpoint",
                 "on_train_end", "teardown"):
        setattr(TimedCallback, hook, _timed(getattr(AttentionFlowsCallback, hook)))

    workdir = tempfile.mkdtemp(prefix="bench-overhead-")
    snapshot_counts, hook_times = [], []

    def fit(with_callback: bool, max_steps: int):
        module = FineTune()  # built outside the timed region by the caller's closure below
        callbacks = [TimedCallback(probe)] if with_callback else []
        trainer = L.Trainer(default_root_dir=workdir, accelerator="cpu", devices=1, max_steps=max_steps,
                            callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                            enable_checkpointing=False, log_every_n_steps=10)
        loader = torch.utils.data.DataLoader(data, batch_size=BATCH_SIZE, shuffle=True,
                                             generator=torch.Generator().manual_seed(0))
        return module, trainer, loader

    def timed(with_callback: bool):
        module, trainer, loader = fit(with_callback, steps)

        def call():
            trainer.fit(module, loader)
            if with_callback:
                snapshot_counts.append(len(open_run(trainer.log_dir).steps))
                hook_times.append(next(c for c in trainer.callbacks if isinstance(c, TimedCallback)).hook_seconds)

        return call

    module, trainer, loader = fit(False, 3)
    trainer.fit(module, loader)  # warm-up: allocator, kernels, tokenizer caches

    plain, recorded = [], []
    for _ in range(repeats):
        # A fresh module and trainer for every run: each arm trains the same model from the same start.
        fit_plain, fit_recorded = timed(False), timed(True)
        a, b = paired(fit_plain, fit_recorded, repeats=1, warmup=0)
        plain += a
        recorded += b

    t_plain, t_recorded = median(plain), median(recorded)
    snapshots = snapshot_counts[-1]
    per_snapshot = median(hook_times) / snapshots
    per_step = t_plain / steps
    steps_per_epoch = len(data) // BATCH_SIZE
    projected_steps = PROJECTED_EPOCHS * steps_per_epoch
    schedule = SnapshotSchedule()
    projected_snapshots = len({0, projected_steps}
                              | {s for s in range(1, projected_steps + 1) if schedule.is_scheduled_step(s)}
                              | {k * steps_per_epoch for k in range(1, PROJECTED_EPOCHS + 1)})
    projected_plain = projected_steps * per_step
    projected_recorded = projected_plain + projected_snapshots * per_snapshot
    print(f"plain fits (s): {[round(t, 2) for t in plain]}; with callback (s): {[round(t, 2) for t in recorded]}")
    print(f"{steps} steps of batch {BATCH_SIZE}: {per_step:.3f} s/step; {snapshots} snapshots; callback hooks "
          f"{[round(t, 2) for t in hook_times]} s per fit = {per_snapshot:.3f} s per snapshot (64 probes); "
          f"projection: {projected_steps} steps, {projected_snapshots} snapshots")
    return [
        Figure("training_overhead", f"MiniLM fit, {steps} steps, callback at default schedule ({snapshots} snapshots)",
               t_recorded, "s", t_plain, "same fit without the callback", "<= 1.03x", t_recorded / t_plain <= 1.03,
               note="measured, paired; a short run pays for the dense early log grid"),
        Figure("training_overhead", "callback hooks on the training thread, per snapshot (MiniLM, 64 probes)",
               per_snapshot, "s", per_step, "one training step (batch 8)", ""),
        Figure("training_overhead",
               f"projected {PROJECTED_EPOCHS}-epoch MiniLM fine-tune ({projected_steps} steps, {projected_snapshots} snapshots)",
               projected_recorded, "s", projected_plain, "same fine-tune without the callback",
               note="a projection, not a measured run: measured per-step time and hook time per snapshot, scaled"),
    ]


def _timed(hook):
    import functools
    import time

    @functools.wraps(hook)
    def timed_hook(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return hook(self, *args, **kwargs)
        finally:
            self.hook_seconds += time.perf_counter() - start

    return timed_hook


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Training overhead of the callback at its default schedule.")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"optimizer steps per fit (default {STEPS})")
    parser.add_argument("--repeats", type=int, default=2, help="paired A/B rounds (default 2)")
    options = parser.parse_args()
    report(run(options.steps, options.repeats))

"""Training with attnflows against what a user would otherwise write, on time and on disk.

One short fine-tuning of the real MiniLM on CPU (bundled data, batch 16), with snapshots of the
bundled 64-example probe set at the same steps, recorded four ways, in paired rounds:

- none: no recording (the baseline);
- attnflows: `AttentionRecorder.snapshot` (eager probe pass on the training thread, background writer);
- naive torch.save: `output_attentions=True` on the probe set under an eager copy, then
  `torch.save` of the float32 tensors per snapshot, synchronously;
- TensorBoard images: the same probe pass, then one 8-bit PNG image summary per (example, layer, head)
  through a TensorBoard `SummaryWriter` (the tensor2tensor habit).

Prints the time the training thread spends in each snapshot call (the probe pass plus whatever the
method does before training may continue), training wall time against no recording, and bytes on
disk per snapshot.

Run: python benchmarks/bench_baselines.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np

from _common import ROOT, Figure, bundled_probe, median, padded_batch, report
from bench_storage import png_bytes

STEPS = 48
SNAPSHOT_STEPS = (0, 1, 2, 4, 8, 16, 32, 47)
ROUNDS = 3


def training_batches(tokenizer, count: int, batch_size: int = 16):
    import torch

    rows = [json.loads(line) for line in open(os.path.join(ROOT, "examples", "data", "train.jsonl"))]
    batches = []
    for k in range(count):
        chunk = rows[k * batch_size:(k + 1) * batch_size]
        encoded = tokenizer([r["text"] for r in chunk], padding=True, return_tensors="pt")
        batches.append((encoded, torch.tensor([r["label"] for r in chunk])))
    return batches


def naive_probe_pass(model, probe):
    """What a user writes: eager, output_attentions=True, one padded batch at a time."""
    import torch

    model.set_attn_implementation("eager")
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(probe), 16):
            rows = probe.input_ids[start:start + 16]
            attentions = model(**padded_batch(rows), output_attentions=True).attentions
            stacked = torch.stack(attentions, dim=1)  # [B, L, H, T, T]
            out += [stacked[b, :, :, : len(r), : len(r)].clone() for b, r in enumerate(rows)]
    model.set_attn_implementation("sdpa")
    model.train()
    return out


def run() -> list[Figure]:
    import torch

    from attnflows_callback import AttentionRecorder
    from tests.helpers import minilm_classifier, tokenizer

    torch.manual_seed(0)
    tok = tokenizer()
    probe = bundled_probe().tokenize(tok)
    batches = training_batches(tok, STEPS)

    def train(record) -> tuple[float, float]:
        """(training wall time, time the training thread spent inside snapshot calls)."""
        torch.manual_seed(0)
        model = minilm_classifier()
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
        hook = record(model)
        model.train()
        blocked = 0.0
        start = time.perf_counter()
        for step, (encoded, labels) in enumerate(batches):
            if step in SNAPSHOT_STEPS:
                snap = time.perf_counter()
                hook.snapshot(step)
                blocked += time.perf_counter() - snap
            loss = model(**encoded, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        elapsed = time.perf_counter() - start
        hook.close()
        return elapsed, blocked

    class NoRecording:
        def __init__(self, model):
            pass

        def snapshot(self, step):
            pass

        def close(self):
            pass

    class Attnflows:
        def __init__(self, model):
            self.dir = tempfile.mkdtemp()
            self.recorder = AttentionRecorder(model, tok, probe, self.dir, tensorboard=False)

        def snapshot(self, step):
            self.recorder.snapshot(step)

        def close(self):
            self.recorder.close()  # draining after the timed loop: the background writer's tail

    class NaiveTorchSave:
        def __init__(self, model):
            self.model, self.dir = model, tempfile.mkdtemp()

        def snapshot(self, step):
            torch.save(naive_probe_pass(self.model, probe), os.path.join(self.dir, f"step{step}.pt"))

        def close(self):
            pass

    class TensorBoardImages:
        def __init__(self, model):
            from tensorboard.compat.proto.summary_pb2 import Summary
            from torch.utils.tensorboard import SummaryWriter

            self.model, self.dir, self.Summary = model, tempfile.mkdtemp(), Summary
            self.writer = SummaryWriter(self.dir)

        def snapshot(self, step):
            for i, attention in enumerate(naive_probe_pass(self.model, probe)):
                values = []
                for layer, heads in enumerate((attention.numpy() * 255).round().astype(np.uint8)):
                    for head, image in enumerate(heads):
                        encoded = self.Summary.Image(height=image.shape[0], width=image.shape[1], colorspace=1,
                                                     encoded_image_string=png_bytes(image))
                        values.append(self.Summary.Value(tag=f"attention/ex{i}/l{layer}/h{head}", image=encoded))
                self.writer._get_file_writer().add_summary(self.Summary(value=values), step)
            self.writer.flush()

        def close(self):
            self.writer.close()

    methods = {"none": NoRecording, "attnflows": Attnflows, "naive torch.save": NaiveTorchSave,
               "TensorBoard images": TensorBoardImages}
    times = {name: [] for name in methods}
    blocked = {name: [] for name in methods}
    disk = {}
    train(NoRecording)  # warm-up
    for _ in range(ROUNDS):
        for name, method in methods.items():
            instances = []

            def record(model, method=method):
                instances.append(method(model))
                return instances[-1]

            elapsed, in_snapshots = train(record)
            times[name].append(elapsed)
            blocked[name].append(in_snapshots / len(SNAPSHOT_STEPS))
            if hasattr(instances[0], "dir"):
                disk[name] = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(instances[0].dir) for f in fs)

    base = median(times["none"])
    figures = []
    naive = median(blocked["naive torch.save"])
    for name in ("attnflows", "naive torch.save", "TensorBoard images"):
        figures.append(Figure("baselines", f"training-thread time per snapshot, {name}", median(blocked[name]) * 1e3, "ms",
                              naive * 1e3, "naive torch.save", "below both baselines" if name == "attnflows" else "",
                              median(blocked[name]) < min(naive, median(blocked["TensorBoard images"]))
                              if name == "attnflows" else None,
                              note="the probe pass and whatever the method does before training may go on"))
    for name in ("attnflows", "naive torch.save", "TensorBoard images"):
        figures.append(Figure("baselines", f"training wall time, {name} ({len(SNAPSHOT_STEPS)} snapshots in {STEPS} steps)",
                              median(times[name]), "s", base, "no recording",
                              note="short run, dense snapshots: see the notes on training overhead"))
    for name in ("attnflows", "naive torch.save", "TensorBoard images"):
        figures.append(Figure("baselines", f"disk per snapshot, {name}", disk[name] / len(SNAPSHOT_STEPS) / 2**20, "MiB",
                              disk["naive torch.save"] / len(SNAPSHOT_STEPS) / 2**20, "naive torch.save"))
    return figures


if __name__ == "__main__":
    report(run())

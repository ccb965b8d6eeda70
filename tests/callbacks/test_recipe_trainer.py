"""Recipe 1 of docs/extending.md: a new trainer's callback on top of SnapshotTimeline, in a plain loop.

`ToyLoopCallback` is the recipe's code: it turns a training loop's events into the four
SnapshotTimeline calls; the schedule, one snapshot per step, resume and status are the timeline's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnflows_callback import open_run
from attnflows_callback.options import RecorderOptions
from attnflows_callback.schedule import SnapshotSchedule
from attnflows_callback.timeline import SnapshotTimeline
from tests.helpers import PROBE_LABELS, PROBE_TEXTS, probe_set, tiny_model, tokenizer


class ToyLoopCallback:
    """Attention snapshots for a loop that calls these four methods (the recipe)."""

    def __init__(self, probe_set, run_dir, *, schedule=None, **options):
        self.run_dir = run_dir
        self.timeline = SnapshotTimeline(probe_set, schedule or SnapshotSchedule(), RecorderOptions(**options))

    def on_train_start(self, model, tokenizer, hparams):
        self.timeline.start(model, tokenizer, self.run_dir, step=0, resume=False, is_writer=True, hparams=hparams)

    def on_optimizer_step(self, step, epoch):
        self.timeline.event("step", step, epoch)

    def on_epoch_end(self, step, epoch):
        self.timeline.event("epoch_end", step, epoch)

    def on_train_end(self, step, epoch, error=None):
        if error is None:
            self.timeline.finish(step, epoch)
        else:
            self.timeline.close("interrupted" if isinstance(error, KeyboardInterrupt) else "failed")


def toy_fit(model, callback, *, epochs=2, steps_per_epoch=6, fail_at=None):
    """A plain training loop on the probe texts, with the callback's hooks where a trainer would call them."""
    tok = tokenizer()
    batch = tok(PROBE_TEXTS, padding=True, return_tensors="pt")
    labels = torch.tensor(PROBE_LABELS)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    callback.on_train_start(model, tok, {"lr": 0.5})
    step, epoch = 0, 0
    try:
        for epoch in range(epochs):
            for _ in range(steps_per_epoch):
                model.train()
                loss = torch.nn.functional.cross_entropy(model(**batch).logits, labels)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                step += 1
                if step == fail_at:
                    raise RuntimeError("the loop broke")
                callback.on_optimizer_step(step, epoch)
            callback.on_epoch_end(step, epoch)
    except BaseException as err:
        callback.on_train_end(step, epoch, err)
        raise
    callback.on_train_end(step, epoch)


def test_a_new_trainer_records_on_the_schedule_through_snapshot_timeline(tmp_path):
    model = tiny_model("bert")
    toy_fit(model, ToyLoopCallback(probe_set(), tmp_path / "run", tensorboard=False))
    run = open_run(tmp_path / "run")
    # step 0, log-spaced 1, 3, 10, the epoch ends 6 and 12 (12 is also the last step: recorded once)
    assert run.steps.tolist() == [0, 1, 3, 6, 10, 12]
    assert [run.snapshot_info(s).kind for s in run.steps] == ["step", "step", "step", "epoch_end", "step", "epoch_end"]
    assert run.status["status"] == "finished" and run.meta["hparams"] == {"lr": 0.5}
    model.eval()
    model.config._attn_implementation = "eager"
    tok = tokenizer()
    with torch.no_grad():
        eager = model(**tok(PROBE_TEXTS[2], return_tensors="pt"), output_attentions=True).attentions
    expected = torch.stack([a[0] for a in eager]).numpy()
    np.testing.assert_allclose(run.attention(2, 12), expected, atol=run.meta.get("max_abs_error", 2e-3) + 1e-6)


def test_a_failing_loop_keeps_its_snapshots_and_records_the_failure(tmp_path):
    with pytest.raises(RuntimeError, match="the loop broke"):
        toy_fit(tiny_model("bert"), ToyLoopCallback(probe_set(), tmp_path / "run", tensorboard=False), fail_at=5)
    run = open_run(tmp_path / "run")
    assert run.steps.tolist() == [0, 1, 3] and run.status["status"] == "failed"

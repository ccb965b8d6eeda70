"""Tiny LightningModules (one per Lightning package) and data, shared by the callback tests and scripts.

Classes live at module level so ``ddp_spawn`` can pickle them.
"""

from __future__ import annotations

import lightning.pytorch as L
import pytorch_lightning as PL
import torch
from transformers import TrainerCallback

from attnflows_callback import open_run
from tests.helpers import PROBE_LABELS, PROBE_TEXTS, tiny_model, tokenizer

SEQ_LEN = 16


def dataset(n: int = 16) -> torch.utils.data.TensorDataset:
    """``n`` labelled sentences (the probe texts, cycled), tokenised to a fixed length."""
    texts = [PROBE_TEXTS[k % len(PROBE_TEXTS)] for k in range(n)]
    labels = [PROBE_LABELS[k % len(PROBE_LABELS)] for k in range(n)]
    enc = tokenizer()(texts, padding="max_length", truncation=True, max_length=SEQ_LEN, return_tensors="pt")
    return torch.utils.data.TensorDataset(enc["input_ids"], enc["attention_mask"], torch.tensor(labels))


def loader(n: int = 16, batch_size: int = 2) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(dataset(n), batch_size=batch_size, shuffle=False)


class _Classifier:
    """A tiny BERT classifier with a ``tokenizer`` attribute; fails at ``fail_at_step`` when given."""

    def __init__(self, fail_at_step: int | None = None, lr: float = 0.5, attn_implementation: str = "sdpa"):
        super().__init__()
        self.save_hyperparameters()
        self.model = tiny_model("bert", layers=2, heads=2, hidden=16, seed=0, attn_implementation=attn_implementation)
        for module in self.model.modules():  # no dropout: a resumed run must retrace the uninterrupted one
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        self.model.train()
        self.tokenizer = tokenizer()

    def forward(self, input_ids, attention_mask, labels):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss

    def training_step(self, batch, batch_idx):
        if self.hparams.fail_at_step is not None and self.global_step == self.hparams.fail_at_step:
            raise RuntimeError(f"boom at step {self.global_step}")
        return self(*batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(*batch))

    def predict_step(self, batch, batch_idx):
        return self(*batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class LitClassifier(_Classifier, L.LightningModule):
    """For ``lightning.pytorch``."""


class PLClassifier(_Classifier, PL.LightningModule):
    """For ``pytorch_lightning``."""


def snapshot_events(run_dir) -> list[tuple[int, str]]:
    """What the callback recorded: ``(step, kind)`` of every published snapshot."""
    with open_run(run_dir) as run:
        return [(int(s), run.snapshot_info(int(s)).kind) for s in run.steps]


def hf_dataset(n: int = 16) -> list[dict]:
    """The same sentences as :func:`dataset`, as the dicts a transformers Trainer collates."""
    return [{"input_ids": ids, "attention_mask": mask, "labels": label} for ids, mask, label in dataset(n)]


def hf_model():
    """The tiny BERT classifier without dropout, so a resumed run retraces the uninterrupted one."""
    model = tiny_model("bert", layers=2, heads=2, hidden=16, seed=0)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def hf_args(output_dir, **overrides):
    from transformers import TrainingArguments

    options = dict(per_device_train_batch_size=2, learning_rate=0.5, lr_scheduler_type="constant", optim="sgd",
                   report_to="none", save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True,
                   log_level="error", seed=0, dataloader_num_workers=0, num_train_epochs=1)
    options.update(overrides)
    return TrainingArguments(str(output_dir), **options)


def hf_train(model, args, callbacks) -> None:
    """``Trainer.train`` on :func:`hf_dataset` with the MiniLM tokenizer, then the process group is destroyed.

    As every torchrun script should: without it, gloo's worker threads can abort the process at
    interpreter exit ("terminate called without an active exception").
    """
    from transformers import Trainer

    try:
        Trainer(model=model, args=args, train_dataset=hf_dataset(), processing_class=tokenizer(),
                callbacks=callbacks).train()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class FailAt(TrainerCallback):
    """Raises from ``on_step_end`` at optimizer step ``step``: a training error mid-run."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError(f"boom at step {self.step}")


def tensorboard_runs(logdir) -> list[str]:
    """The runs TensorBoard lists for ``logdir``, through its own data provider (as the plugin sees them)."""
    from tensorboard import context, program
    from tensorboard.backend.event_processing import data_ingester

    tb = program.TensorBoard()
    tb.configure(logdir=str(logdir), load_fast="false", reload_interval=0, reload_task="blocking")
    ingester = data_ingester.LocalDataIngester(tb.flags)
    ingester.start()
    return sorted(run.run_name for run in ingester.data_provider.list_runs(context.RequestContext(), experiment_id=""))

"""A fine-tuning script shaped like Lightning's "Finetune Transformers Models with PyTorch Lightning" tutorial.

The tutorial's layout: a GLUEDataModule that holds ``self.tokenizer`` and a GLUETransformer
LightningModule without one, ``save_hyperparameters()``, AdamW with a linear warm-up per
step, and ``L.Trainer(max_epochs=1, accelerator="auto", devices=1)`` with Lightning's default
logger. Local JSON-lines files stand in for the `datasets` download (not installed here).
``--logger csv|none`` swaps the logger, as a user might; ``--max_steps`` keeps the test short.
The attnflows lines are marked ``# attnflows``; nothing else is set up.
"""

import argparse
import json

import lightning.pytorch as L
import torch
from torch.utils.data import DataLoader
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from attnflows_callback import ProbeSet  # attnflows
from attnflows_callback.lightning import AttentionFlowsCallback  # attnflows


class GLUEDataModule(L.LightningDataModule):
    def __init__(self, model_name_or_path: str, train_file: str, validation_file: str, max_seq_length: int = 128,
                 train_batch_size: int = 32, eval_batch_size: int = 32, **kwargs):
        super().__init__()
        self.model_name_or_path = model_name_or_path
        self.files = {"train": train_file, "validation": validation_file}
        self.max_seq_length = max_seq_length
        self.train_batch_size = train_batch_size
        self.eval_batch_size = eval_batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_name_or_path, use_fast=True)

    def setup(self, stage: str):
        self.dataset = {}
        for split, path in self.files.items():
            with open(path, encoding="utf-8") as f:
                rows = [json.loads(line) for line in f if line.strip()]
            self.dataset[split] = self.convert_to_features(rows)
        self.num_labels = int(max(self.dataset["train"]["labels"]).item()) + 1

    def convert_to_features(self, rows):
        features = self.tokenizer([r["sentence"] for r in rows], max_length=self.max_seq_length,
                                  padding="max_length", truncation=True, return_tensors="pt")
        features["labels"] = torch.tensor([r["label"] for r in rows])
        return features

    def _loader(self, split, batch_size, shuffle=False):
        data = self.dataset[split]
        rows = [{k: v[i] for k, v in data.items()} for i in range(len(data["labels"]))]
        return DataLoader(rows, batch_size=batch_size, shuffle=shuffle)

    def train_dataloader(self):
        return self._loader("train", self.train_batch_size, shuffle=True)

    def val_dataloader(self):
        return self._loader("validation", self.eval_batch_size)


class GLUETransformer(L.LightningModule):
    def __init__(self, model_name_or_path: str, num_labels: int, learning_rate: float = 2e-5,
                 adam_epsilon: float = 1e-8, warmup_steps: int = 0, weight_decay: float = 0.0,
                 train_batch_size: int = 32, eval_batch_size: int = 32, **kwargs):
        super().__init__()
        self.save_hyperparameters()
        self.config = AutoConfig.from_pretrained(model_name_or_path, num_labels=num_labels)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_name_or_path, config=self.config)

    def forward(self, **inputs):
        return self.model(**inputs)

    def training_step(self, batch, batch_idx):
        outputs = self(**batch)
        return outputs[0]

    def validation_step(self, batch, batch_idx):
        outputs = self(**batch)
        self.log("val_loss", outputs[0], prog_bar=True)

    def configure_optimizers(self):
        no_decay = ["bias", "LayerNorm.weight"]
        grouped = [
            {"params": [p for n, p in self.model.named_parameters() if not any(nd in n for nd in no_decay)],
             "weight_decay": self.hparams.weight_decay},
            {"params": [p for n, p in self.model.named_parameters() if any(nd in n for nd in no_decay)],
             "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(grouped, lr=self.hparams.learning_rate, eps=self.hparams.adam_epsilon)
        scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=self.hparams.warmup_steps,
                                                    num_training_steps=self.trainer.estimated_stepping_batches)
        return [optimizer], [{"scheduler": scheduler, "interval": "step", "frequency": 1}]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_name_or_path", required=True)
    parser.add_argument("--train_file", required=True)
    parser.add_argument("--validation_file", required=True)
    parser.add_argument("--default_root_dir", default=".")
    parser.add_argument("--max_steps", type=int, default=-1)
    parser.add_argument("--logger", choices=("default", "csv", "none"), default="default")
    args = parser.parse_args()

    L.seed_everything(42)
    dm = GLUEDataModule(args.model_name_or_path, args.train_file, args.validation_file, train_batch_size=4)
    dm.setup("fit")
    model = GLUETransformer(model_name_or_path=args.model_name_or_path, num_labels=dm.num_labels)
    logger = {"default": True, "csv": L.loggers.CSVLogger(args.default_root_dir), "none": False}[args.logger]
    trainer = L.Trainer(
        max_epochs=1,
        max_steps=args.max_steps,
        accelerator="auto",
        devices=1,
        logger=logger,
        default_root_dir=args.default_root_dir,
        callbacks=[AttentionFlowsCallback(ProbeSet.from_json(args.validation_file, text_field="sentence"))],  # attnflows
    )
    trainer.fit(model, datamodule=dm)


if __name__ == "__main__":
    main()

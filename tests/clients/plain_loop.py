"""A hand-written PyTorch fine-tuning loop, with the attnflows lines marked ``# attnflows``.

The recorder is built before the first optimizer step (``snapshot(0)``: the pre-trained
model), takes a snapshot after chosen optimizer steps, and closes when the ``with`` block ends.
"""

import argparse
import json
import os

import torch
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from transformers import AutoModelForSequenceClassification, AutoTokenizer, default_data_collator

from attnflows_callback import AttentionRecorder, ProbeSet  # attnflows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_name_or_path", required=True)
    parser.add_argument("--train_file", required=True)
    parser.add_argument("--validation_file", required=True)
    parser.add_argument("--logdir", default="runs")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    model = AutoModelForSequenceClassification.from_pretrained(args.model_name_or_path)
    with open(args.train_file, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    features = tokenizer([r["sentence"] for r in rows], padding="max_length", max_length=32, truncation=True)
    data = [{**{k: v[i] for k, v in features.items()}, "labels": r["label"]} for i, r in enumerate(rows)]
    loader = DataLoader(data, batch_size=4, shuffle=True, collate_fn=default_data_collator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    run_dir = os.path.join(args.logdir, "plain_loop")
    loss_log = SummaryWriter(run_dir)

    probe = ProbeSet.from_json(args.validation_file, text_field="sentence")  # attnflows
    with AttentionRecorder(model, tokenizer, probe, run_dir, hparams={"lr": 1e-4}) as recorder:  # attnflows
        recorder.snapshot(0)  # attnflows
        model.train()
        step = 0
        for _ in range(args.epochs):
            for batch in loader:
                loss = model(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                step += 1
                loss_log.add_scalar("train/loss", loss.item(), step)
                if step % 2 == 0:  # attnflows
                    recorder.snapshot(step)  # attnflows
    loss_log.close()


if __name__ == "__main__":
    main()

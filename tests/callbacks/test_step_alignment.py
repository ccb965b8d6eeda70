"""What "snapshot at step N" means, proven against the trainers' own checkpoints, on sentence pairs.

Snapshot N holds the attention of the weights after N optimizer steps, before step N+1
(under gradient accumulation: optimizer steps, not batches). The Hugging Face Trainer's
``checkpoint-N`` and a Lightning checkpoint at ``global_step`` N hold those same weights, so
attention recomputed from either equals snapshot N, and not its neighbours. After training,
the last snapshot equals an independent eager ``model(**tokenizer(premise, hypothesis))``
of the final weights.
"""

from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from transformers import AutoModelForSequenceClassification, Trainer

from attnflows_callback import AttentionRecorder, ProbeSet, open_run
from attnflows_callback.hf import AttentionFlowsTrainerCallback
from attnflows_callback.lightning import AttentionFlowsCallback
from attnflows_callback.store import ENCODINGS
from attnflows_callback.verify import VerifyError, verify_checkpoint
from tests.callbacks._models import hf_args, hf_model
from tests.helpers import tiny_model, tokenizer
from tests.truth import HYPOTHESES, PAIR_LABELS, PREMISES, max_differences

BOUND = ENCODINGS["compact"].max_abs_error + 1e-5
PAIRS = ProbeSet(PREMISES, HYPOTHESES, labels=PAIR_LABELS, label_names=["contradiction", "entailment"])


def pair_examples(n: int = 8) -> list[dict]:
    """Premise/hypothesis pairs tokenised as BERT does (segment ids included), padded to one length."""
    k = [i % len(PREMISES) for i in range(n)]
    enc = tokenizer()([PREMISES[i] for i in k], [HYPOTHESES[i] for i in k], padding="max_length", max_length=32,
                      truncation=True, return_tensors="pt")
    return [{"input_ids": enc["input_ids"][j], "token_type_ids": enc["token_type_ids"][j],
             "attention_mask": enc["attention_mask"][j], "labels": torch.tensor(PAIR_LABELS[i])}
            for j, i in enumerate(k)]


def schedule(**kwargs) -> dict:
    return {**dict(every_n_steps=None, log_per_decade=None, at_epoch_ends=False, tensorboard=False), **kwargs}


def test_hf_checkpoint_n_recomputes_snapshot_n_under_gradient_accumulation(tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "out"
    callback = AttentionFlowsTrainerCallback(PAIRS, log_dir=str(run_dir), **schedule(every_n_steps=1))
    args = hf_args(out, max_steps=4, gradient_accumulation_steps=2, save_strategy="steps", save_steps=2)
    trainer = Trainer(model=hf_model(), args=args, train_dataset=pair_examples(), processing_class=tokenizer(),
                      callbacks=[callback])
    trainer.train()
    with open_run(run_dir) as run:
        assert run.steps.tolist() == [0, 1, 2, 3, 4]
        assert run.model_inputs(0)["token_type_ids"].max() == 1  # the pairs were fed with their segments
        for n in (2, 4):
            result = verify_checkpoint(run_dir, out / f"checkpoint-{n}")
            assert result.step == n and result.passed, result.report()
            saved = AutoModelForSequenceClassification.from_pretrained(out / f"checkpoint-{n}")
            assert max_differences(run, n, saved, tokenizer(), PREMISES, HYPOTHESES)["self"] <= BOUND
            for neighbour in (n - 1, n + 1):  # the check tells one optimizer step from the next
                if neighbour in run.steps:
                    assert max_differences(run, neighbour, saved, tokenizer(), PREMISES, HYPOTHESES)["self"] > BOUND
        final = max_differences(run, 4, trainer.model, tokenizer(), PREMISES, HYPOTHESES)
        assert final["self"] <= BOUND and final["logits"] <= 1e-4, final
    other = record_two_snapshots(tmp_path / "other", hf_model(), ProbeSet(PREMISES[:2]))
    with pytest.raises(VerifyError, match="recording another probe set"):
        verify_checkpoint(other, out / "checkpoint-2")


def record_two_snapshots(run_dir, model, probe_set) -> Path:
    """A run of ``model`` with snapshots at steps 0 and 2: something for a checkpoint-2 not to match."""
    with AttentionRecorder(model, tokenizer(), probe_set, run_dir, tensorboard=False) as recorder:
        recorder.snapshot(0)
        recorder.snapshot(2)
    return run_dir


class PairClassifier(L.LightningModule):
    """The tiny BERT classifier trained on batches of tokenised pairs (dicts, segment ids included)."""

    def __init__(self):
        super().__init__()
        self.model = hf_model()
        self.model.train()
        self.tokenizer = tokenizer()

    def training_step(self, batch, batch_idx):
        return self.model(**batch).loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def make_pair_classifier() -> PairClassifier:
    """The model factory `attnflows verify --model-factory` calls for this test's checkpoints."""
    return PairClassifier()


def test_lightning_checkpoint_at_global_step_n_recomputes_snapshot_n_under_gradient_accumulation(tmp_path):
    checkpoints = tmp_path / "ckpt"
    saver = ModelCheckpoint(dirpath=checkpoints, filename="{step}", every_n_train_steps=2, save_top_k=-1)
    trainer = L.Trainer(default_root_dir=str(tmp_path), accelerator="cpu", devices=1, max_steps=4,
                        accumulate_grad_batches=2, enable_progress_bar=False, enable_model_summary=False,
                        logger=False, num_sanity_val_steps=0,
                        callbacks=[recording := AttentionFlowsCallback(PAIRS, **schedule(every_n_steps=1)), saver])
    module = PairClassifier()
    trainer.fit(module, torch.utils.data.DataLoader(pair_examples(), batch_size=2))
    run_dir = Path(recording.run_dir)  # without a logger: a new default_root_dir/lightning_logs/version_N
    saved = sorted(checkpoints.glob("step=*.ckpt"))
    assert [p.name for p in saved] == ["step=2.ckpt", "step=4.ckpt"]
    with open_run(run_dir) as run:
        assert run.steps.tolist() == [0, 1, 2, 3, 4]
        for path, n in zip(saved, (2, 4)):
            assert torch.load(path, weights_only=False)["global_step"] == n
            for factory in (None, f"{__name__}:make_pair_classifier"):
                result = verify_checkpoint(run_dir, path, model_factory=factory)
                assert result.step == n and result.passed, result.report()
            with pytest.raises(VerifyError, match="--step 3 but the checkpoint was saved at step"):
                verify_checkpoint(run_dir, path, step=3)
        step_2 = PairClassifier()
        step_2.load_state_dict(torch.load(saved[0], weights_only=False)["state_dict"])
        assert max_differences(run, 1, step_2.model, tokenizer(), PREMISES, HYPOTHESES)["self"] > BOUND
        assert max_differences(run, 3, step_2.model, tokenizer(), PREMISES, HYPOTHESES)["self"] > BOUND
        final = max_differences(run, 4, module.model, tokenizer(), PREMISES, HYPOTHESES)
        assert final["self"] <= BOUND and final["logits"] <= 1e-4, final
    wider = record_two_snapshots(tmp_path / "wider", tiny_model("bert", layers=2, heads=2, hidden=32), PAIRS)
    with pytest.raises(VerifyError, match="another model than the run.s BertForSequenceClassification.*size mismatch"):
        verify_checkpoint(wider, saved[0])
    with pytest.raises(VerifyError, match="another model than the run"):
        verify_checkpoint(wider, saved[0], model_factory=f"{__name__}:make_pair_classifier")
    other = record_two_snapshots(tmp_path / "other", hf_model(), ProbeSet(PREMISES[:2]))
    with pytest.raises(VerifyError, match="recording another probe set"):
        verify_checkpoint(other, saved[0])


def test_verify_passes_on_a_real_minilm_pair_checkpoint_and_refuses_the_pretrained_folder(tmp_path, capsys):
    from attnflows_callback.cli import main
    from tests.helpers import minilm_classifier, minilm_path

    run_dir, out = tmp_path / "run", tmp_path / "out"
    callback = AttentionFlowsTrainerCallback(PAIRS, log_dir=str(run_dir), **schedule())
    args = hf_args(out, max_steps=2, learning_rate=1e-4, optim="adamw_torch", save_strategy="steps", save_steps=2,
                   per_device_train_batch_size=4)
    Trainer(model=minilm_classifier(), args=args, train_dataset=pair_examples(), processing_class=tokenizer(),
            callbacks=[callback]).train()
    capsys.readouterr()
    assert main(["verify", str(run_dir), "--checkpoint", str(out / "checkpoint-2")]) == 0
    report = capsys.readouterr().out
    assert "Step       2 (matched)" in report and "PASS" in report, report
    assert main(["verify", str(run_dir), "--checkpoint", minilm_path(), "--step", "0"]) == 2
    assert "class BertModel (run: BertForSequenceClassification)" in capsys.readouterr().err


@pytest.mark.parametrize("stop", ["max_steps", "early_stopping"])
def test_the_final_snapshot_holds_the_last_steps_weights_even_when_the_trainer_loads_the_best_model_back(tmp_path,
                                                                                                         stop):
    from transformers import EarlyStoppingCallback

    run_dir, out = tmp_path / "run", tmp_path / "out"
    evaluations = []

    def first_evaluation_is_best(prediction):  # the best checkpoint is then checkpoint-2, not the last one
        evaluations.append(len(evaluations))
        return {"rank": -len(evaluations)}

    callback = AttentionFlowsTrainerCallback(PAIRS, log_dir=str(run_dir), **schedule(at_checkpoints=False))
    args = hf_args(out, max_steps=4 if stop == "max_steps" else 8, save_strategy="steps", save_steps=2,
                   eval_strategy="steps", eval_steps=2, load_best_model_at_end=True, metric_for_best_model="rank",
                   greater_is_better=True)
    stopper = [EarlyStoppingCallback(early_stopping_patience=1)] if stop == "early_stopping" else []
    trainer = Trainer(model=hf_model(), args=args, train_dataset=pair_examples(), eval_dataset=pair_examples(4),
                      processing_class=tokenizer(), compute_metrics=first_evaluation_is_best,
                      callbacks=[*stopper, callback])
    trainer.train()
    assert trainer.state.global_step == 4  # early stopping: the second evaluation is worse, patience 1
    assert Path(trainer.state.best_model_checkpoint).name == "checkpoint-2"
    with open_run(run_dir) as run:
        assert [(int(s), run.snapshot_info(int(s)).kind) for s in run.steps] == [(0, "step"), (4, "final")]
    result = verify_checkpoint(run_dir, out / "checkpoint-4")
    assert result.step == 4 and result.passed, result.report()

"""The spec: what a run stores is what the model computes on the probe inputs, for pairs too.

Every family, single sentences and sentence pairs, sdpa and eager, one example per batch
and padded batches: the attention read back through ``open_run`` and the logits equal an
independent eager ``model(**tokenizer(text, pair))`` within the encoding's max error.
"""

import functools
import json

import h5py
import numpy as np
import pytest
import torch

from attnflows_callback import AttentionRecorder, ProbeSet, open_run
from attnflows_callback.probe import probe_content_id
from attnflows_callback.store import ENCODINGS, RunExistsError
from tests.helpers import PROBE_TEXTS, VOCAB, minilm_classifier, tiny_model, tokenizer
from tests.truth import HYPOTHESES, PAIR_LABELS, PREMISES, eager_forward, max_differences, word_level_tokenizer

FLOAT_SLACK = 1e-5  # float32 sums in another order (padded batch vs one example)
LOGITS_ATOL = 1e-4


@functools.cache
def bert_tokenizer(segment_ids: bool = True):
    """The real MiniLM WordPiece tokenizer; without segment ids as DistilBERT's, RoBERTa's and BART's are."""
    from transformers import AutoTokenizer

    from tests.helpers import minilm_path

    if segment_ids:
        return tokenizer()
    return AutoTokenizer.from_pretrained(minilm_path(), model_input_names=["input_ids", "attention_mask"])


def family_model(family: str, attn: str):
    import transformers as tf

    if family == "albert":
        torch.manual_seed(0)
        config = tf.AlbertConfig(vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64, num_labels=2)
        config._attn_implementation = attn
        return tf.AlbertForSequenceClassification(config).eval()
    if family == "electra":
        torch.manual_seed(0)
        config = tf.ElectraConfig(vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=64, num_labels=2)
        config._attn_implementation = attn
        return tf.ElectraForSequenceClassification(config).eval()
    return tiny_model(family, attn_implementation=attn)


# family -> the tokenizer its real checkpoints ship with, in kind: segment ids or not, and how a pair is joined.
FAMILY_TOKENIZERS = {
    "bert": lambda: bert_tokenizer(True),
    "albert": lambda: bert_tokenizer(True),
    "electra": lambda: bert_tokenizer(True),
    "roberta": lambda: bert_tokenizer(False),
    "distilbert": lambda: bert_tokenizer(False),
    "bart": lambda: bert_tokenizer(False),
    "gpt2": lambda: word_level_tokenizer(segment_ids=True),  # GPT-2's forward takes token_type_ids
    "llama": lambda: word_level_tokenizer(segment_ids=False),
    "t5": lambda: word_level_tokenizer(segment_ids=False),
}


def record(model, tok, probe_set, run_dir, **options):
    with AttentionRecorder(model, tok, probe_set, run_dir, tensorboard=False, **options) as recorder:
        recorder.snapshot(0)
    return open_run(run_dir)


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("pairs", [False, True], ids=["single", "pair"])
@pytest.mark.parametrize("family", list(FAMILY_TOKENIZERS))
def test_stored_attention_and_logits_equal_an_eager_forward_of_the_tokenizer_output(family, pairs, attn, batch_size,
                                                                                    tmp_path):
    model, tok = family_model(family, attn), FAMILY_TOKENIZERS[family]()
    texts, text_pairs = (PREMISES, HYPOTHESES) if pairs else (PROBE_TEXTS[:4], None)
    run = record(model, tok, ProbeSet(texts, text_pairs), tmp_path, batch_size=batch_size)
    worst = max_differences(run, 0, model, tok, texts, text_pairs)
    bound = ENCODINGS[run.meta["encoding"]].max_abs_error + FLOAT_SLACK
    for stream in run.streams:
        assert worst[stream] <= bound, (stream, worst)
    if family != "t5":
        assert worst["logits"] <= LOGITS_ATOL, worst
    assert model.config._attn_implementation == attn
    for i, text in enumerate(texts):  # probe.h5 holds what was fed: every tokenizer output the forward takes
        encoded = tok(text, None if text_pairs is None else text_pairs[i])
        fed = run.model_inputs(i)
        assert set(fed) == {k for k in encoded if k != "attention_mask"}
        for name, values in fed.items():
            assert values.tolist() == list(encoded[name])
    if pairs and "token_type_ids" in tok.model_input_names:
        assert run.model_inputs(0)["token_type_ids"].max() == 1


def test_real_minilm_on_pairs_equals_its_own_forward_and_would_not_without_segment_ids(tmp_path):
    model = minilm_classifier()
    run = record(model, tokenizer(), ProbeSet(PREMISES, HYPOTHESES, labels=PAIR_LABELS), tmp_path, batch_size=4)
    worst = max_differences(run, 0, model, tokenizer(), PREMISES, HYPOTHESES)
    assert worst["self"] <= ENCODINGS["compact"].max_abs_error + FLOAT_SLACK, worst
    assert worst["logits"] <= LOGITS_ATOL, worst
    # What format 1 recorded: the same pairs without their segment ids; the check above would catch it.
    segmentless = max_differences(run, 0, model, tokenizer(), PREMISES, HYPOTHESES, drop=("token_type_ids",))
    assert segmentless["self"] > 0.05, segmentless


def test_a_tokenizer_output_the_forward_does_not_take_is_neither_fed_nor_stored(tmp_path):
    model, tok = tiny_model("llama"), word_level_tokenizer(segment_ids=True)
    assert "token_type_ids" in tok("a man", "two dogs")
    run = record(model, tok, ProbeSet(PREMISES, HYPOTHESES), tmp_path, batch_size=4)
    worst = max_differences(run, 0, model, tok, PREMISES, HYPOTHESES, drop=("token_type_ids",))
    assert worst["self"] <= ENCODINGS["compact"].max_abs_error + FLOAT_SLACK
    assert set(run.model_inputs(0)) == {"input_ids"}
    assert run.meta["model_inputs"] == ["input_ids", "attention_mask"]


def test_segments_are_padded_with_the_tokenizers_pad_token_type_id(tmp_path):
    tok = bert_tokenizer(True)
    probe = ProbeSet(PREMISES, HYPOTHESES).tokenize(tok)
    assert probe.pad_values == {"token_type_ids": tok.pad_token_type_id}
    assert [row[-1] for row in probe.extra_inputs["token_type_ids"]] == [1, 1, 1, 1]


def test_probe_id_changes_when_the_fed_inputs_change():
    tok = bert_tokenizer(True)
    probe_set = ProbeSet(PREMISES, HYPOTHESES)
    fed = probe_set.tokenize(tok)
    assert fed.probe_id != probe_content_id(probe_set, fed.tokenizer_name, fed.max_length)  # what format 1 stored
    assert fed.probe_id == probe_set.tokenize(tok).probe_id


def _as_format_1(run_dir) -> None:
    """Rewrite a run as attnflows format 1 wrote it: no fed inputs beyond the ids, version 1 everywhere."""
    data = run_dir / "attnflows"
    meta = json.loads((data / "run.json").read_text())
    probe_set = ProbeSet(PREMISES, HYPOTHESES)
    meta.update(format_version=1, probe_id=probe_content_id(probe_set, meta["tokenizer"], meta["max_length"]))
    for key in ("model_inputs", "model_input_pad_values"):
        meta.pop(key)
    (data / "run.json").write_text(json.dumps(meta))
    with h5py.File(data / "probe.h5", "a") as f:
        del f["model_inputs"]
        f.attrs["probe_id"] = meta["probe_id"]
    for shard in (data / "snapshots").glob("*.h5"):
        with h5py.File(shard, "a") as f:
            f.attrs["format_version"] = 1


def test_a_format_1_pair_run_still_opens_with_a_note_and_is_not_resumed_across_the_fix(tmp_path):
    model, tok = tiny_model("bert"), bert_tokenizer(True)
    recorded = record(model, tok, ProbeSet(PREMISES, HYPOTHESES), tmp_path)
    before = recorded.attention(1, 0)
    recorded.close()
    _as_format_1(tmp_path)
    with open_run(tmp_path) as run:
        assert run.steps.tolist() == [0] and not run.problems
        np.testing.assert_array_equal(run.attention(1, 0), before)
        assert run.text_pairs == HYPOTHESES
        assert len(run.notes) == 1 and "segment-less attention" in run.notes[0]
        assert set(run.model_inputs(0)) == {"input_ids"}
    with pytest.raises(RunExistsError, match="another probe set"):
        AttentionRecorder(model, tok, ProbeSet(PREMISES, HYPOTHESES), tmp_path, resume=True, tensorboard=False)


def test_a_current_run_has_no_notes(tmp_path):
    with record(tiny_model("bert"), bert_tokenizer(True), ProbeSet(PREMISES, HYPOTHESES), tmp_path) as run:
        assert run.notes == [] and run.meta["format_version"] == 2
        assert run.meta["model_inputs"] == ["input_ids", "attention_mask", "token_type_ids"]

"""ProbeSet: construction, loading, sampling, tokenisation and its content id."""

import json

import pytest

from attnflows_callback import ProbeSet
from tests.helpers import tokenizer


def test_lists_with_pairs_labels_and_names():
    probe = ProbeSet(["a", "b"], text_pairs=["c", "d"], labels=[0, 1], label_names=["neg", "pos"])
    assert len(probe) == 2 and probe.text_pairs == ["c", "d"] and probe.labels == [0, 1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(texts=[]), "at least one"),
        (dict(texts=["ok", 3]), r"texts\[1\] must be a str"),
        (dict(texts="one string"), "sequence of strings"),
        (dict(texts=["a", "b"], labels=[1]), "labels must have one entry per text"),
        (dict(texts=["a"], labels=[-1]), "non-negative integers"),
        (dict(texts=["a"], labels=[True]), "non-negative integers"),
        (dict(texts=["a", "b"], text_pairs=["x"]), "text_pairs must have one entry per text"),
        (dict(texts=["a", "b"], labels=[0, 2], label_names=["x", "y"]), "one name per class"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_the_argument(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        ProbeSet(**kwargs)


def test_from_jsonl_and_csv(tmp_path):
    rows = [{"text": "good", "label": 1}, {"text": "bad", "label": 0}]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "p.csv").write_text("text,label\ngood,1\nbad,0\n")
    for probe in (ProbeSet.from_jsonl(tmp_path / "p.jsonl"), ProbeSet.from_csv(tmp_path / "p.csv")):
        assert probe.texts == ["good", "bad"] and probe.labels == [1, 0]


def test_from_jsonl_names_a_missing_field_and_a_bad_line(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"sentence": "x"}\n')
    with pytest.raises(ValueError, match="no field 'text'.*text_field"):
        ProbeSet.from_jsonl(tmp_path / "p.jsonl")
    (tmp_path / "q.jsonl").write_text('{"text": "x"}\n{oops\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        ProbeSet.from_jsonl(tmp_path / "q.jsonl")


def test_from_a_dataset_like_sequence_of_rows_without_labels():
    probe = ProbeSet.from_dataset([{"text": "a"}, {"text": "b"}])
    assert probe.texts == ["a", "b"] and probe.labels is None


def test_sample_is_deterministic_and_stratified():
    probe = ProbeSet([f"t{i}" for i in range(100)], labels=[int(i < 20) for i in range(100)])
    a, b = probe.sample(10, seed=3), probe.sample(10, seed=3)
    assert a.texts == b.texts
    assert sorted(a.labels) == [0] * 8 + [1] * 2
    assert probe.sample(10, seed=4).texts != a.texts
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 100\]"):
        probe.sample(0)


def test_tokenize_records_truncation_with_a_warning():
    probe = ProbeSet(["word " * 100, "short"])
    with pytest.warns(UserWarning, match="1 of 2 probe examples were truncated"):
        tokenized = probe.tokenize(tokenizer(), max_length=16)
    assert tokenized.truncated == [True, False]
    assert len(tokenized.input_ids[0]) == 16 and tokenized.tokens[1] == ["[CLS]", "short", "[SEP]"]
    assert tokenized.word_ids[1] == [-1, 0, -1]


def test_probe_id_is_stable_and_changes_with_content():
    tok = tokenizer()
    one = ProbeSet(["a b"], labels=[1]).tokenize(tok).probe_id
    assert one == ProbeSet(["a b"], labels=[1]).tokenize(tok).probe_id
    assert one != ProbeSet(["a b"], labels=[0]).tokenize(tok).probe_id
    assert one != ProbeSet(["a b c"], labels=[1]).tokenize(tok).probe_id
    assert one != ProbeSet(["a b"], labels=[1]).tokenize(tok, max_length=8).probe_id


def test_tokenize_refuses_something_that_is_not_a_tokenizer():
    with pytest.raises(TypeError, match="tokenizer must be a Hugging Face tokenizer"):
        ProbeSet(["a"]).tokenize(object())

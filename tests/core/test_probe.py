"""ProbeSet: construction, loading, sampling, tokenisation and its content id."""

import json

import pytest

from attnflows_callback import ProbeSet
from attnflows_callback.probe import MAX_LENGTH_CAP, probe_max_length
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


@pytest.mark.parametrize("layout", ["array", "lines"])
@pytest.mark.parametrize("method", ["from_json", "from_jsonl"])
def test_json_files_load_in_either_layout_whatever_the_suffix_as_hf_scripts_take_them(tmp_path, layout, method):
    rows = [{"sentence": "good", "label": 1, "idx": 0}, {"sentence": "bad", "label": 0, "idx": 1}]
    text = json.dumps(rows, indent=2) if layout == "array" else "".join(json.dumps(r) + "\n" for r in rows)
    (tmp_path / "train.json").write_text(text)
    probe = getattr(ProbeSet, method)(tmp_path / "train.json", text_field="sentence")
    assert probe.texts == ["good", "bad"] and probe.labels == [1, 0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "a"}\n{"text": "b",}\n', r"validation.json: line 2 is not valid JSON \(.*column 14\); .*fix line 2"),
        ('{\n  "text": "a"\n}\n', r"line 1 is not valid JSON .*spread over several lines: put each object on one "
                                  r"line, or wrap them in \[...\] as a JSON array"),
        ('[{"text": "a"},\n {"text": "b"\n]', r"validation.json: line 3, column 1 is not valid JSON .*read as one JSON "
                                             r"array: fix that line"),
        ('{"data": [{"text": "a"}]}\n', r"rows under a key \(\['data'\]\); pass the rows themselves: "
                                        r"ProbeSet.from_records"),
        ('{"text": "a"}\n["b"]\n', r"line 2 is a JSON array, not an object; .*\{\"text\": \"...\", \"label\": 0\}"),
        ('[{"text": "a"}, "b"]', r"element 1 of the array is a JSON string, not an object"),
        ("\n\n", r"validation.json holds no probe examples; it must hold a JSON array of objects, or one JSON "
                 r"object per line"),
    ],
    ids=["bad-line", "pretty-printed-object", "bad-array", "rows-under-a-key", "line-not-object",
         "element-not-object", "empty"],
)
def test_bad_json_probe_files_name_the_file_the_line_and_the_fix(tmp_path, content, message):
    (tmp_path / "validation.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        ProbeSet.from_json(tmp_path / "validation.json")


def test_from_a_dataset_with_a_classlabel_feature_takes_its_class_names():
    # `datasets` is not installed here: an object of a Dataset's shape (iterable rows, features[...].names)
    class ClassLabel:
        names = ["negative", "positive"]

    class Dataset(list):
        features = {"sentence": object(), "label": ClassLabel()}

    probe = ProbeSet.from_dataset(Dataset([{"sentence": "good", "label": 1}, {"sentence": "bad", "label": 0}]),
                                  text_field="sentence")
    assert probe.texts == ["good", "bad"] and probe.labels == [1, 0] and probe.label_names == ["negative", "positive"]


def test_max_length_follows_the_tokenizers_model_max_length_capped_at_128():
    tok = tokenizer()  # MiniLM: model_max_length 512
    long_text = "word " * 200
    with pytest.warns(UserWarning, match="1 of 1 probe examples were truncated to max_length=128"):
        assert ProbeSet([long_text]).tokenize(tok).max_length == 128
    assert probe_max_length(tok) == 128 and probe_max_length(tok, 300) == 300
    short = type("Short", (), {"model_max_length": 32})()
    assert probe_max_length(short) == 32
    unset = type("Unset", (), {"model_max_length": int(1e30)})()  # what a tokenizer without a limit reports
    assert probe_max_length(unset) == MAX_LENGTH_CAP == 128
    with pytest.raises(ValueError, match=r"max_length must be None \(the tokenizer's model_max_length, at most 128\) "
                                         r"or an integer >= 2, got 1"):
        ProbeSet(["a"]).tokenize(tok, max_length=1)


def test_class_names_as_labels_map_to_ids_through_label_names_or_name_the_fix(tmp_path):
    (tmp_path / "dev.json").write_text('{"text": "good", "label": "positive"}\n{"text": "bad", "label": "negative"}\n')
    probe = ProbeSet.from_json(tmp_path / "dev.json", label_names=["negative", "positive"])
    assert probe.labels == [1, 0]
    with pytest.raises(ValueError, match=r"dev.json: label must hold integer class ids, got 'positive'; pass "
                                         r"label_names=\[...\] with the class names in id order"):
        ProbeSet.from_json(tmp_path / "dev.json")

"""Sentence pairs in what a run gives back: Run.text_pairs and segment ids, `summary` and `export`."""

import json

import numpy as np
import pytest

from attnflows_callback import AttentionRecorder, ProbeSet, open_run
from attnflows_callback.cli import main
from tests.helpers import nudge, tiny_model, tokenizer
from tests.truth import HYPOTHESES, PAIR_LABELS, PREMISES


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pairs") / "nli"
    model = tiny_model("bert")
    probe = ProbeSet(PREMISES, HYPOTHESES, labels=PAIR_LABELS, label_names=["contradiction", "entailment"])
    with AttentionRecorder(model, tokenizer(), probe, run_dir, tensorboard=False) as recorder:
        for step in (0, 10, 20):
            if step:
                nudge(model, scale=0.5, seed=step)
            recorder.snapshot(step)
    return run_dir


def test_a_pair_run_gives_back_both_segments_and_where_each_token_comes_from(pair_run):
    with open_run(pair_run) as run:
        assert run.texts == PREMISES and run.text_pairs == HYPOTHESES
        for i in range(run.num_examples):
            segments, tokens = run.sequence_ids(i), run.tokens(i)
            expected = [-1 if s is None else s for s in tokenizer()(PREMISES[i], HYPOTHESES[i]).sequence_ids()]
            assert segments.tolist() == expected
            assert [t for t, s in zip(tokens, segments) if s == -1] == ["[CLS]", "[SEP]", "[SEP]"]
            # BERT's segment ids, as fed: the first [SEP] closes segment 0, the pair and its [SEP] are segment 1
            first_pair_token = int(np.argmax(segments == 1))
            assert run.model_inputs(i)["token_type_ids"].tolist() == (
                [0] * first_pair_token + [1] * (len(tokens) - first_pair_token))


def test_summary_shows_both_segments_of_a_flipped_pair(pair_run, capsys):
    assert main(["summary", str(pair_run)]) == 0
    out = capsys.readouterr().out
    assert "4 sentence pairs (text || text pair)" in out
    flipped = [line for line in out.splitlines() if line.startswith("  #")]
    assert flipped, out  # the nudges flip some predictions of this seeded run
    for line in flipped:
        i = int(line.split()[0][1:])
        assert " || " in line and PREMISES[i][:15] in line


def test_export_carries_text_pairs_segment_ids_and_fed_inputs(pair_run, tmp_path, capsys):
    target = tmp_path / "nli.npz"
    assert main(["export", str(pair_run), "--format", "npz", "--no-attention", "-o", str(target)]) == 0
    data = np.load(target)
    assert data["text_pairs"].tolist() == HYPOTHESES and data["texts"].tolist() == PREMISES
    with open_run(pair_run) as run:
        for i in range(run.num_examples):
            np.testing.assert_array_equal(data[f"sequence_ids/{i}"], run.sequence_ids(i))
            np.testing.assert_array_equal(data[f"token_type_ids/{i}"], run.model_inputs(i)["token_type_ids"])
    assert main(["export", str(pair_run), "--format", "json", "--no-attention", "-o", "-"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["text_pairs"] == HYPOTHESES and exported["meta"]["format_version"] == 2

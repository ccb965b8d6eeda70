"""Explain a flip, on a constructed run where the answer is known: one head of one example moves
from [CLS] to the word "bad" between steps 10 and 20, and that example's prediction flips there."""

import json

import numpy as np
import pytest

from attnflows_callback import open_run
from attnflows_callback.analysis.explain import explain_change
from attnflows_callback.cli import main
from attnflows_callback.explain import explain_flip, format_explanation

from .flip_run import MOVED, constructed_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return constructed_run(tmp_path_factory.mktemp("explain") / "run")


def test_explanation_finds_the_moved_head_the_gained_edge_and_the_word(run_dir):
    result = explain_flip(open_run(run_dir), 0)
    assert (result["step_before"], result["step_after"], result["flipped"]) == (10, 20, True)
    assert (result["prediction_before"], result["prediction_after"], result["label"]) == ("positive", "negative",
                                                                                       "negative")
    assert (result["heads"][0]["layer"], result["heads"][0]["head"]) == MOVED
    assert result["heads"][0]["js"] > 0.1 and all(row["js"] < 1e-3 for row in result["heads"][1:])
    gained = [(e["layer"], e["from_token"], e["to_token"]) for e in result["edges_gained"]]
    assert (1, "[CLS]", "bad") in gained and result["edges_lost"] == []
    top_word = max(result["words"], key=lambda w: w["change"])
    assert top_word["word"] == "bad" and top_word["change"] > 0.1
    json.dumps(result)  # plain values only


def test_per_head_mode_names_the_heads_of_each_gained_edge(run_dir):
    result = explain_flip(open_run(run_dir), 0, mode="any_head", drop_special=False)
    edge = next(e for e in result["edges_gained"] if e["layer"] == 1 and e["to_token"] == "bad")
    assert edge["heads"] == [MOVED[1]] and edge["weight_after"] == pytest.approx(0.8, abs=2e-3)


def test_an_unflipped_pair_can_still_be_explained_when_asked_for(run_dir):
    result = explain_flip(open_run(run_dir), 1, step=20)
    assert result["flipped"] is False and result["edges_gained"] == [] and result["edges_lost"] == []
    assert max(row["js"] for row in result["heads"]) < 1e-3


def test_cli_prints_text_and_json(run_dir, capsys):
    assert main(["explain", str(run_dir), "--example", "0"]) == 0
    out = capsys.readouterr().out
    assert "prediction positive -> negative (flipped) between steps 10 and 20" in out
    assert "layer  1 head  2" in out.splitlines()[4]  # first ranked head
    assert "gained" in out and "bad" in out
    assert main(["explain", str(run_dir), "--example", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == explain_flip(open_run(run_dir), 0)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--example", "1"], "never changed between snapshots"),
        (["--example", "0", "--step", "0"], "is the first snapshot"),
        (["--example", "0", "--step", "15"], "--step must be one of the run's snapshots"),
        (["--example", "7"], "--example must be an integer in [0, 2)"),
        (["--example", "0", "--tau", "2"], "--tau must lie in [0, 1]"),
    ],
)
def test_cli_errors_are_one_line(run_dir, capsys, args, fragment):
    assert main(["explain", str(run_dir), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("attnflows: error: ") and fragment in err[0], err


def test_text_lists_words_by_largest_change(run_dir):
    text = format_explanation(explain_flip(open_run(run_dir), 0), words=1)
    assert text.splitlines()[-1].split()[0] == "bad"


def test_pure_explanation_checks_its_inputs():
    with pytest.raises(ValueError, match="attn_before and attn_after must have the same shape"):
        explain_change(np.full((1, 1, 2, 2), 0.5), np.full((1, 1, 3, 3), 1 / 3))
    with pytest.raises(ValueError, match="word_ids must hold one id per token"):
        explain_change(np.full((1, 1, 2, 2), 0.5), np.full((1, 1, 2, 2), 0.5), word_ids=[None])


def test_a_recorded_run_explains_with_its_tokenizer_words(tmp_path):
    from tests.helpers import write_run

    run = open_run(write_run(tmp_path / "run", steps=(0, 10)))
    result = explain_flip(run, 0, step=10, mode="any_head", drop_punctuation=True)
    assert [w["word"] for w in result["words"]] == run.tokens(0)  # one piece per word in this sentence
    assert len(result["heads"]) == run.num_layers * run.num_heads
    assert all(set(edge["heads"]) <= set(range(run.num_heads)) and edge["heads"] for edge in result["edges_gained"])
    shown = [w["word"] for w in result["words"] if w["shown"]]
    assert "[CLS]" not in shown and "[SEP]" not in shown

"""Aggregates over the probe set: selections, per-head means, influence by token role and by word."""

import numpy as np
import pytest

from attnflows_callback import open_run
from attnflows_callback.aggregate import aggregate_run
from attnflows_callback.analysis import head_js_divergence
from attnflows_callback.analysis.aggregate import (
    influence_by_role,
    influence_by_word,
    mean_over_examples,
    number_labels,
    select_examples,
)
from attnflows_callback.analysis.view import TOKEN_ROLES

from .flip_run import MOVED, constructed_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return constructed_run(tmp_path_factory.mktemp("aggregate") / "run")


def test_selections_pick_all_one_class_or_the_flipped_examples():
    assert select_examples("all", num_examples=3).tolist() == [0, 1, 2]
    assert select_examples("class:0", num_examples=3, labels=[0, 1, 0]).tolist() == [0, 2]
    assert select_examples("class:5", num_examples=3, labels=[0, 1, 0]).tolist() == []
    assert select_examples("flipped", num_examples=3, predictions_before=[1, 1, 0],
                           predictions_after=[1, 0, 1]).tolist() == [1, 2]


@pytest.mark.parametrize(
    "selection, kwargs, message",
    [
        ("some", {}, r"selection must be one of \['all', 'class:<k>', 'flipped'\]"),
        ("class:x", {"labels": [0]}, "needs an integer class"),
        ("class:1", {}, "needs the probe's labels"),
        ("flipped", {}, "needs predictions at both snapshots"),
        ("flipped", {"predictions_before": [0, 1], "predictions_after": [0]}, "one label per example"),
    ],
)
def test_bad_selections_say_what_is_allowed(selection, kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_examples(selection, num_examples=1 if "labels" in kwargs else 2, **kwargs)


def test_mean_over_examples_ignores_unselected_and_missing_values():
    values = np.array([[[0.1, np.nan]], [[0.3, 0.4]], [[9.0, 9.0]]])
    result = mean_over_examples(values, [0, 1])
    np.testing.assert_allclose(result["mean"], [[0.2, 0.4]])
    np.testing.assert_allclose(result["std"], [[0.1, 0.0]])
    assert result["count"] == 2
    with pytest.raises(ValueError, match="holds no examples"):
        mean_over_examples(values, [])


def test_influence_aggregates_are_over_roles_and_words_never_positions():
    # two examples of different lengths: positions do not line up, roles and words do
    influence = [np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.1, 0.4, 0.1])]
    roles = [["special", "content", "special"], ["special", "content", "content", "punctuation"]]
    by_role = influence_by_role(influence, roles, [0, 1])
    assert by_role["special"] == pytest.approx((0.7 + 0.4) / 2)
    assert by_role["content"] == pytest.approx((0.3 + 0.5) / 2)
    assert by_role["punctuation"] == pytest.approx(0.05) and by_role["count"] == 2
    by_word = influence_by_word(influence, [["[cls]", "not", "[sep]"], ["[cls]", "not", "bad", "."]], [0, 1])
    assert by_word["not"] == {"mean": pytest.approx(0.2), "count": 2}
    assert by_word["bad"] == {"mean": pytest.approx(0.4), "count": 1}
    with pytest.raises(ValueError, match="one entry per example"):
        influence_by_role(influence, roles[:1], [0])


@pytest.mark.parametrize("selected", [[0, 1, 2], [2, 0], [1]])
def test_labels_numbered_once_give_the_same_sums_as_labels_given_at_each_call(selected):
    rng = np.random.default_rng(len(selected))
    words = [["[cls]", "not", "bad", "[sep]"], ["[cls]", "fine", "."], ["[cls]", "bad", "not", "bad", "!"]]
    roles = [["special" if w.startswith("[") else "punctuation" if w in ".!" else "content" for w in ws] for ws in words]
    influence = [rng.random(len(ws)) for ws in words]
    assert influence_by_role(influence, number_labels(roles, TOKEN_ROLES), selected) == \
        influence_by_role(influence, roles, selected)
    numbered = influence_by_word(influence, number_labels(words), selected)
    assert numbered == influence_by_word(influence, words, selected)
    assert set(numbered) == {w for i in selected for w in words[i]}  # words only in unselected examples are left out


def test_numbering_refuses_a_role_outside_the_allowed_ones():
    with pytest.raises(ValueError, match=r"roles must be among \['special', 'punctuation', 'content'\], got 'verb'"):
        number_labels([["special", "verb"]], TOKEN_ROLES, "roles")


def test_run_aggregate_over_flipped_examples_finds_the_moved_head(run_dir):
    run = open_run(run_dir)
    result = aggregate_run(run, 20, reference_step=10, selection="flipped", min_count=1)
    assert result["examples"] == [0] and result["heads"]["source"] == "from the attention"
    js = np.array(result["heads"]["js"]["mean"])
    assert np.unravel_index(js.argmax(), js.shape) == MOVED
    np.testing.assert_allclose(js, head_js_divergence(run.attention(0, 10), run.attention(0, 20)), atol=1e-6)
    top = result["words"][0]
    assert top["word"] == "bad" and top["change"] > 0.1
    assert result["influence_by_role"]["after"]["content"] > result["influence_by_role"]["before"]["content"] - 1e-9


def test_run_aggregate_from_step_zero_reads_stored_summaries_when_there(tmp_path):
    from tests.helpers import write_run

    run = open_run(write_run(tmp_path / "run", steps=(0, 10)))
    result = aggregate_run(run, 10, selection="class:1")
    assert result["heads"]["source"] == "from stored summaries" and result["count"] == 5
    _, stored = run.summary_timeline("js_from_start")
    np.testing.assert_allclose(result["heads"]["js"]["mean"], np.nanmean(stored[1][result["examples"]], axis=0),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="step must be one of the run's snapshots"):
        aggregate_run(run, 5)


def test_encoder_decoder_runs_aggregate_over_the_encoder_and_refuse_cross_attention(tmp_path):
    from tests.helpers import write_run

    run = open_run(write_run(tmp_path / "t5", steps=(0, 10), family="t5", labels=None))
    result = aggregate_run(run, 10)
    assert result["count"] == run.num_examples and len(result["heads"]["js"]["mean"]) == 2
    with pytest.raises(ValueError, match=r"stream must be one of \['encoder'\]"):
        aggregate_run(run, 10, stream="cross")
    with pytest.raises(ValueError, match="needs predictions at both snapshots"):
        aggregate_run(run, 10, selection="flipped")

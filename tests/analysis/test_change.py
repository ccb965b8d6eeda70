import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnflows_callback.analysis import (
    head_change,
    head_cosine_similarity,
    head_js_divergence,
    most_changed_heads,
    prediction_flips,
    summary_timeline_change,
)

from .conftest import attention_arrays, random_attention


def reference_js(p, q):
    def kl(x, y):
        return sum(a * math.log(a / b) for a, b in zip(x, y) if a > 0)

    m = [(a + b) / 2 for a, b in zip(p, q)]
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def test_js_divergence_matches_plain_loop_reference():
    rng = np.random.default_rng(0)
    a, b = random_attention(rng, 2, 3, 4, keys=5), random_attention(rng, 2, 3, 4, keys=5)
    b[1, 2, 0] = [0, 0, 1, 0, 0]
    expected = np.array(
        [[np.mean([reference_js(p, q) for p, q in zip(a[l, h], b[l, h])]) for h in range(3)] for l in range(2)]
    )
    np.testing.assert_allclose(head_js_divergence(a, b), expected)


def test_cosine_similarity_matches_plain_loop_reference():
    rng = np.random.default_rng(1)
    a, b = random_attention(rng, 2, 2, 3), random_attention(rng, 2, 2, 3)
    for l in range(2):
        for h in range(2):
            x, y = a[l, h].ravel().tolist(), b[l, h].ravel().tolist()
            expected = sum(i * j for i, j in zip(x, y)) / math.sqrt(sum(i * i for i in x) * sum(j * j for j in y))
            assert head_cosine_similarity(a, b)[l, h] == pytest.approx(expected)


@settings(max_examples=40, deadline=None)
@given(attention_arrays(square=False), st.floats(0.0, 1.0))
def test_js_is_symmetric_bounded_and_zero_on_equal_inputs(a, mix):
    b = mix * np.roll(a, 1, axis=-1) + (1 - mix) * a[::-1]  # another attention array of the same shape
    np.testing.assert_allclose(head_js_divergence(a, a), 0.0, atol=1e-12)
    np.testing.assert_allclose(head_cosine_similarity(a, a), 1.0)
    np.testing.assert_allclose(head_js_divergence(a, b), head_js_divergence(b, a), atol=1e-12)
    assert np.all(head_js_divergence(a, b) >= 0) and np.all(head_js_divergence(a, b) <= math.log(2) + 1e-12)


def test_head_change_averages_examples_and_aggregates_layers():
    rng = np.random.default_rng(2)
    before = [random_attention(rng, 2, 3, n) for n in (4, 6)]
    after = [random_attention(rng, 2, 3, n) for n in (4, 6)]
    change = head_change(before, after)
    expected_js = (head_js_divergence(before[0], after[0]) + head_js_divergence(before[1], after[1])) / 2
    np.testing.assert_allclose(change["js"], expected_js)
    np.testing.assert_allclose(change["layer_js"], expected_js.mean(axis=1))
    np.testing.assert_allclose(change["layer_js_max"], expected_js.max(axis=1))
    np.testing.assert_allclose(change["layer_cosine_min"], change["cosine"].min(axis=1))


def test_most_changed_heads_ranks_by_js_or_by_cosine():
    change = {"js": np.array([[0.1, 0.5], [0.3, 0.2]]), "cosine": np.array([[0.9, 0.2], [0.95, 0.5]])}
    assert [(l, h) for l, h, _ in most_changed_heads(change, 3)] == [(0, 1), (1, 0), (1, 1)]
    ranked = most_changed_heads(change, 10, by="cosine")
    assert [(l, h) for l, h, _ in ranked] == [(0, 1), (1, 1), (0, 0), (1, 0)]
    assert ranked[0][2] == pytest.approx(0.8)


@pytest.mark.parametrize(
    "k, by, message", [(0, "js", "k must be a positive integer, got 0"), (2, "kl", r"by must be one of \['js', 'cosine'\], got 'kl'")]
)
def test_most_changed_heads_rejects_bad_arguments(k, by, message):
    with pytest.raises(ValueError, match=message):
        most_changed_heads({"js": np.zeros((2, 2))}, k, by=by)


def test_change_measures_reject_different_shapes():
    with pytest.raises(ValueError, match=r"a and b must have the same shape, got \(1, 1, 2, 2\) and \(1, 1, 3, 3\)"):
        head_js_divergence(np.full((1, 1, 2, 2), 0.5), np.full((1, 1, 3, 3), 1 / 3))
    with pytest.raises(ValueError, match="b must be finite"):
        head_cosine_similarity(np.full((1, 1, 2, 2), 0.5), np.full((1, 1, 2, 2), np.nan))


def test_prediction_flips_match_plain_loop_reference():
    rng = np.random.default_rng(3)
    steps = [0, 5, 10, 50, 100]
    labels = rng.integers(0, 3, size=(5, 7))
    expected = [[steps[s] for s in range(1, 5) if labels[s, n] != labels[s - 1, n]] for n in range(7)]
    assert prediction_flips(steps, labels) == expected
    logits = np.eye(3)[labels] + 0.01
    assert prediction_flips(steps, logits) == expected


@pytest.mark.parametrize(
    "steps, predictions, message",
    [
        ([0, 0], [[1], [1]], "strictly increasing"),
        ([0, 1], [[1], [1], [1]], r"predictions must be \[steps \(2\), examples\]"),
        ([0, 1], [[[np.nan, 1.0]], [[1.0, 0.0]]], "predictions must be finite"),
    ],
)
def test_prediction_flips_rejects_bad_input(steps, predictions, message):
    with pytest.raises(ValueError, match=message):
        prediction_flips(steps, predictions)


def test_summary_timeline_change_ignores_missing_values():
    values = np.array([[[[0.2, 0.4]], [[np.nan, 0.0]]], [[[np.nan, np.nan]], [[np.nan, np.nan]]]])
    result = summary_timeline_change(values)
    np.testing.assert_allclose(result["head"][0], [[0.2, 0.2]])
    np.testing.assert_allclose(result["overall"], [0.2, np.nan])
    with pytest.raises(ValueError, match="values must be"):
        summary_timeline_change(np.zeros((2, 2)))

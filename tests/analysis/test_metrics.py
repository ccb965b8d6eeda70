import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnflows_callback.analysis import (
    METRIC_NAMES,
    PATTERN_CLASSES,
    head_entropy,
    head_metrics,
    merge_word_pieces,
    pattern_class,
    uniform_entropy,
    word_units,
)

from .conftest import attention_arrays, random_attention

TOKENS = ["[CLS]", "the", "cat", "##s", ",", "sat", "Ġ.", "[SEP]"]


def test_head_entropy_matches_plain_loop_reference():
    attn = random_attention(np.random.default_rng(0), 2, 3, 4, keys=6)
    attn[0, 0, 0] = [1, 0, 0, 0, 0, 0]  # 0 log 0 = 0
    expected = np.zeros((2, 3))
    for l in range(2):
        for h in range(3):
            rows = [-sum(p * math.log(p) for p in row if p > 0) for row in attn[l, h]]
            expected[l, h] = sum(rows) / len(rows)
    np.testing.assert_allclose(head_entropy(attn), expected)


@settings(max_examples=40, deadline=None)
@given(attention_arrays(square=False))
def test_head_entropy_lies_between_zero_and_uniform_baseline(attn):
    values = head_entropy(attn)
    assert np.all(values >= -1e-12) and np.all(values <= uniform_entropy(attn.shape[-1]) + 1e-9)


def test_uniform_attention_reaches_the_uniform_baseline():
    np.testing.assert_allclose(head_entropy(np.full((1, 2, 3, 5), 0.2)), math.log(5))
    with pytest.raises(ValueError, match="n_keys must be a positive integer, got 0"):
        uniform_entropy(0)


def reference_metrics(matrix, tokens):
    n = len(tokens)
    seps = [j for j, t in enumerate(tokens) if t in ("[SEP]",)]
    puncts = [j for j, t in enumerate(tokens) if t.replace("##", "").replace("Ġ", "") in (",", ".")]
    rows = range(n)
    return {
        "entropy": sum(-sum(p * math.log(p) for p in matrix[i] if p > 0) for i in rows) / n,
        "cls": sum(matrix[i][0] for i in rows) / n,
        "sep": sum(sum(matrix[i][j] for j in seps) for i in rows) / n,
        "punctuation": sum(sum(matrix[i][j] for j in puncts) for i in rows) / n,
        "self": sum(matrix[i][i] for i in rows) / n,
        "previous": sum(matrix[i][i - 1] for i in range(1, n)) / (n - 1),
        "next": sum(matrix[i][i + 1] for i in range(n - 1)) / (n - 1),
        "distance": sum(sum(matrix[i][j] * abs(i - j) for j in rows) for i in rows) / n,
        "confidence": sum(max(matrix[i]) for i in rows) / n,
    }


def test_head_metrics_match_plain_loop_reference():
    attn = random_attention(np.random.default_rng(1), 2, 2, len(TOKENS))
    metrics = head_metrics(attn, TOKENS)
    assert list(metrics) == list(METRIC_NAMES)
    for l in range(2):
        for h in range(2):
            expected = reference_metrics(attn[l, h].tolist(), TOKENS)
            for name, value in expected.items():
                assert metrics[name][l, h] == pytest.approx(value), name


def test_head_metrics_of_a_single_token():
    metrics = head_metrics(np.ones((1, 1, 1, 1)), ["[CLS]"])
    assert metrics["previous"][0, 0] == 0 and metrics["self"][0, 0] == 1


def test_head_metrics_rejects_wrong_token_count():
    with pytest.raises(ValueError, match=r"tokens must hold one string per position \(8\), got 3"):
        head_metrics(random_attention(np.random.default_rng(0), 1, 1, 8), ["a", "b", "c"])


def _head(kind, n=12, rng=np.random.default_rng(0)):
    if kind == "vertical":
        matrix = np.zeros((n, n))
        matrix[:, 0] = 0.6
        matrix[:, -1] = 0.4
    elif kind == "diagonal":
        matrix = np.eye(n, k=-1) * 0.9 + np.eye(n) * 0.1
        matrix[0, 0] = 1.0
    elif kind == "vertical+diagonal":
        matrix = 0.5 * np.eye(n)
        matrix[:, 0] += 0.5
    elif kind == "block":
        matrix = np.zeros((n, n))
        half = n // 2
        matrix[:half, :half] = 1 / half
        matrix[half:, half:] = 1 / (n - half)
    else:
        matrix = rng.dirichlet(np.full(n, 5.0), size=n)
    return matrix


def test_pattern_class_recognises_each_kovaleva_pattern():
    attn = np.stack([_head(kind) for kind in PATTERN_CLASSES])[None]
    assert [PATTERN_CLASSES[c] for c in pattern_class(attn)[0]] == list(PATTERN_CLASSES)


def reference_merge(matrix, word_ids):
    units = []
    for position, word in enumerate(word_ids):
        if word is None or word < 0 or not units or units[-1][1] != word or word_ids[position - 1] is None:
            units.append(([position], word if word is not None and word >= 0 else None))
        else:
            units[-1][0].append(position)
    groups = [positions for positions, _ in units]
    merged = np.zeros((len(groups), len(groups)))
    for u, rows in enumerate(groups):
        for v, cols in enumerate(groups):
            merged[u, v] = sum(sum(matrix[i][j] for j in cols) for i in rows) / len(rows)
    return merged


def test_merge_word_pieces_matches_plain_loop_reference():
    word_ids = [None, 0, 1, 1, 2, 3, 3, None, 0, 0, -1]
    attn = random_attention(np.random.default_rng(2), 2, 2, len(word_ids))
    merged = merge_word_pieces(attn, word_ids)
    assert merged.shape == (2, 2, 8, 8)
    for l in range(2):
        for h in range(2):
            np.testing.assert_allclose(merged[l, h], reference_merge(attn[l, h].tolist(), word_ids))


@settings(max_examples=40, deadline=None)
@given(attention_arrays(max_tokens=7), st.data())
def test_merged_rows_still_sum_to_one(attn, data):
    word_ids = data.draw(st.lists(st.one_of(st.none(), st.integers(0, 2)), min_size=attn.shape[-1], max_size=attn.shape[-1]))
    merged = merge_word_pieces(attn, word_ids)
    assert merged.shape[-1] == len(word_units(word_ids))
    np.testing.assert_allclose(merged.sum(axis=-1), 1.0, atol=1e-9)


def test_word_units_keep_special_tokens_alone_and_split_repeated_ids():
    assert [u.tolist() for u in word_units([None, 0, 0, None, None, 0, 1, 1])] == [[0], [1, 2], [3], [4], [5], [6, 7]]


def test_merge_word_pieces_rejects_wrong_word_id_count():
    with pytest.raises(ValueError, match=r"word_ids must hold one id per token \(3\), got 2"):
        merge_word_pieces(np.full((3, 3), 1 / 3), [0, 1])

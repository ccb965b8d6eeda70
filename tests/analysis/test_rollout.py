import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnflows_callback.analysis import layer_attention, rollout, rollout_paths

from .conftest import attention_arrays, random_attention


def reference_rollout(attn, residual, heads):
    layers, n_heads, tokens, _ = attn.shape
    heads = range(n_heads) if heads is None else heads
    result = []
    product = np.eye(tokens)
    for layer in range(layers):
        averaged = np.zeros((tokens, tokens))
        for head in heads:
            averaged += attn[layer, head]
        averaged /= len(heads)
        if residual:
            averaged = 0.5 * averaged + 0.5 * np.eye(tokens)
            for row in range(tokens):
                averaged[row] /= averaged[row].sum()
        new = np.zeros((tokens, tokens))
        for i in range(tokens):
            for j in range(tokens):
                new[i, j] = sum(averaged[i, k] * product[k, j] for k in range(tokens))
        product = new
        result.append(product)
    return np.array(result)


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("heads", [None, [1], [0, 2]])
def test_rollout_matches_plain_loop_reference(residual, heads):
    rng = np.random.default_rng(7)
    attn = random_attention(rng, 4, 3, 5)
    np.testing.assert_allclose(rollout(attn, residual=residual, heads=heads), reference_rollout(attn, residual, heads))


@pytest.mark.parametrize("tau", [0.0, 0.02, 0.2, 1.0])
@pytest.mark.parametrize("heads", [None, [1]])
def test_rollout_paths_carry_the_mass_of_every_edge_passing_tau_down_to_the_rollout_row(tau, heads):
    rng = np.random.default_rng(11)
    attn = random_attention(rng, 4, 3, 6) ** 4  # peaked rows, so that some edges pass tau and some do not
    attn /= attn.sum(axis=-1, keepdims=True)
    source, layer = 2, 2
    maps = [0.5 * attn[l][heads or slice(None)].mean(axis=0) + 0.5 * np.eye(6) for l in range(4)]
    maps = [m / m.sum(axis=1, keepdims=True) for m in maps]
    mass, expected = np.eye(6)[source], []
    for level in range(layer, -1, -1):  # plain loop: every (level, i, j) carrying mass[i] * map[i, j] >= tau
        expected += [(level, i, j, mass[i] * maps[level][i, j]) for i in range(6) for j in range(6)
                     if mass[i] * maps[level][i, j] >= tau and mass[i] * maps[level][i, j] > 0]
        mass = np.array([sum(mass[i] * maps[level][i, j] for i in range(6)) for j in range(6)])
    edges, row = rollout_paths(attn, source, layer, tau, heads=heads)
    np.testing.assert_allclose(edges, np.array(expected).reshape(-1, 4), rtol=1e-12)
    np.testing.assert_allclose(row, reference_rollout(attn, True, heads)[layer][source], rtol=1e-12)


def test_rollout_accepts_float32_attention():
    attn = random_attention(np.random.default_rng(1), 2, 2, 4).astype(np.float32)
    assert rollout(attn).dtype == np.float64


@settings(max_examples=40, deadline=None)
@given(attention_arrays(), st.booleans())
def test_rollout_rows_sum_to_one(attn, residual):
    np.testing.assert_allclose(rollout(attn, residual=residual).sum(axis=-1), 1.0, atol=1e-9)
    np.testing.assert_allclose(layer_attention(attn, residual=residual).sum(axis=-1), 1.0, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 7), st.booleans())
def test_rollout_of_identity_attention_is_identity(layers, heads, tokens, residual):
    attn = np.broadcast_to(np.eye(tokens), (layers, heads, tokens, tokens))
    np.testing.assert_allclose(rollout(attn, residual=residual), np.broadcast_to(np.eye(tokens), (layers, tokens, tokens)))


def test_layer_attention_is_half_attention_half_identity():
    attn = random_attention(np.random.default_rng(3), 2, 4, 3)
    np.testing.assert_allclose(layer_attention(attn), 0.5 * attn.mean(axis=1) + 0.5 * np.eye(3))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.full((2, 2, 3), 1 / 3), r"attn must be a 4-d array \[layers, heads, query tokens, key tokens\], got shape \(2, 2, 3\)"),
        (np.full((1, 1, 2, 3), 1 / 3), r"as many query as key tokens.*got shape \(1, 1, 2, 3\)"),
        (np.array([[[[np.nan, 1.0], [0.5, 0.5]]]]), r"attn must be finite, got NaN or inf at index \[0, 0, 0, 0\]"),
        (np.array([[[[2.0, 1.0], [0.5, 0.5]]]]), r"attn rows must sum to at most 1.*got 3 for row \[0, 0, 0\]"),
        (np.array([[[[-0.5, 1.5], [0.5, 0.5]]]]), r"attn must be non-negative"),
    ],
)
def test_bad_attention_raises_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        rollout(bad)


@pytest.mark.parametrize("heads, message", [([3], r"heads must lie in \[0, 1\], got \[3\]"), ([], "at least one head"), (0, "iterable")])
def test_bad_heads_raise_clear_error(heads, message):
    with pytest.raises(ValueError, match=message):
        rollout(np.full((1, 2, 2, 2), 0.5), heads=heads)

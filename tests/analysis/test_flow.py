import networkx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from networkx.algorithms.flow import edmonds_karp

from attnflows_callback.analysis import attention_flow, attention_flow_bounds, layer_attention, rollout
from attnflows_callback.analysis import flow as flow_module

from .conftest import attention_arrays, random_attention


def networkx_flow(attn, source, residual=True, heads=None):
    """The original authors' construction: every (layer, position) node, Edmonds-Karp per sink."""
    capacities = layer_attention(attn, residual=residual, heads=heads)
    layers, tokens, _ = capacities.shape
    graph = networkx.DiGraph()
    for level in range(1, layers + 1):
        for j in range(tokens):
            for k in range(tokens):
                graph.add_edge((level, j), (level - 1, k), capacity=float(capacities[level - 1, j, k]))
    return np.array(
        [networkx.maximum_flow_value(graph, (layers, source), (0, t), flow_func=edmonds_karp) for t in range(tokens)]
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("layers, tokens", [(1, 3), (2, 4), (3, 5), (4, 6)])
def test_flow_matches_networkx_on_small_random_graphs(seed, layers, tokens):
    rng = np.random.default_rng(seed)
    attn = random_attention(rng, layers, 2, tokens)
    source = int(rng.integers(tokens))
    residual = bool(seed % 2)
    np.testing.assert_allclose(
        attention_flow(attn, source, residual=residual), networkx_flow(attn, source, residual), atol=1e-6
    )


def test_flow_with_head_subset_matches_networkx():
    attn = random_attention(np.random.default_rng(11), 3, 4, 5)
    np.testing.assert_allclose(
        attention_flow(attn, 2, heads=[0, 3]), networkx_flow(attn, 2, heads=[0, 3]), atol=1e-6
    )


def test_bounds_bracket_networkx_value_within_atol():
    attn = random_attention(np.random.default_rng(5), 5, 2, 8)
    lower, upper = attention_flow_bounds(attn, 0)
    reference = networkx_flow(attn, 0)
    assert np.all(lower <= reference + 1e-9)
    assert np.all(reference <= upper + 1e-9)
    assert np.all(upper - lower <= 1e-6)


def test_full_network_pass_solves_sinks_the_sparse_pass_cannot_certify(monkeypatch):
    # keep one edge per node in the first pass: most sinks need the full network
    monkeypatch.setattr(flow_module, "EDGES_PER_NODE", (1, None))
    attn = random_attention(np.random.default_rng(2), 4, 2, 6)
    np.testing.assert_allclose(attention_flow(attn, 1), networkx_flow(attn, 1), atol=1e-6)


def test_integer_scaling_error_is_within_documented_bound(monkeypatch):
    # with a coarse scale the integer flow is visibly below the real one; the bound still holds
    monkeypatch.setattr(flow_module, "SCALE", 2**10)
    attn = random_attention(np.random.default_rng(9), 4, 2, 6)
    capacities = layer_attention(attn)
    edges = (capacities.shape[0] - 2) * 6 * 6 + 2 * 6
    lower, upper = flow_module.layered_max_flow(capacities, 0, atol=1e-12)
    reference = networkx_flow(attn, 0)
    assert np.all(lower <= reference + 1e-12) and np.all(reference <= upper + 1e-12)
    assert np.all(upper - lower <= edges / 2**10)


@settings(max_examples=40, deadline=None)
@given(attention_arrays(max_layers=4, max_tokens=6), st.booleans(), st.data())
def test_flow_values_lie_in_unit_interval_and_dominate_rollout(attn, residual, data):
    source = data.draw(st.integers(0, attn.shape[-1] - 1))
    values = attention_flow(attn, source, residual=residual)
    assert values.shape == (attn.shape[-1],)
    assert np.all((values >= 0) & (values <= 1))
    # the random-walk flow behind rollout is a feasible flow, so max-flow is at least rollout
    assert np.all(values >= rollout(attn, residual=residual)[-1, source] - 1e-6)


def test_identity_attention_flows_only_to_the_source_itself():
    attn = np.broadcast_to(np.eye(4), (3, 2, 4, 4))
    np.testing.assert_allclose(attention_flow(attn, 2), [0, 0, 1, 0], atol=1e-9)


@pytest.mark.parametrize(
    "source, message", [(4, r"source must be an integer in \[0, 3\], got 4"), (-1, "source"), (1.5, "source")]
)
def test_bad_source_raises_clear_error(source, message):
    with pytest.raises(ValueError, match=message):
        attention_flow(np.full((2, 1, 4, 4), 0.25), source)


def test_nan_attention_raises_clear_error():
    attn = np.full((2, 1, 3, 3), 1 / 3)
    attn[1, 0, 2, 1] = np.nan
    with pytest.raises(ValueError, match=r"attn must be finite.*\[1, 0, 2, 1\]"):
        attention_flow(attn, 0)


def test_bad_atol_raises_clear_error():
    with pytest.raises(ValueError, match="atol must be > 0, got 0"):
        attention_flow_bounds(np.full((1, 1, 2, 2), 0.5), 0, atol=0)

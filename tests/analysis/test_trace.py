import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnflows_callback.analysis import EDGE_LABELS, compare_trace, trace

from .conftest import attention_arrays, random_attention


def reference_trace(attn, source, layer, tau, heads):
    layers, n_heads, tokens, _ = attn.shape
    heads = list(range(n_heads)) if heads is None else heads
    layer = layers - 1 if layer is None else layer
    reached = {layer + 1: {source}}
    edges = []
    mass = {source: 1.0}
    for current in range(layer, -1, -1):
        reached[current] = set()
        new_mass = {}
        for j in sorted(reached[current + 1]):
            for k in range(tokens):
                weight = sum(attn[current, h, j, k] for h in heads) / len(heads)
                if weight >= tau:
                    edges.append((current, j, k, weight))
                    reached[current].add(k)
                    new_mass[k] = new_mass.get(k, 0.0) + mass.get(j, 0.0) * weight
        mass = new_mass
    influence = [mass.get(k, 0.0) for k in range(tokens)]
    return reached, edges, influence


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("layer, tau, heads", [(None, 0.1, None), (1, 0.05, [0, 2]), (0, 0.3, [1]), (2, 0.0, None)])
def test_trace_matches_plain_loop_reference(seed, layer, tau, heads):
    rng = np.random.default_rng(seed)
    attn = random_attention(rng, 3, 3, 6)
    source = int(rng.integers(6))
    result = trace(attn, source=source, layer=layer, tau=tau, heads=heads)
    reached, edges, influence = reference_trace(attn, source, layer, tau, heads)
    for level, positions in reached.items():
        assert result.tokens_at(level).tolist() == sorted(positions)
    assert [tuple(edge)[:3] for edge in result.edges.tolist()] == [edge[:3] for edge in edges]
    np.testing.assert_allclose(result.edges["weight"], [edge[3] for edge in edges])
    np.testing.assert_allclose(result.influence, influence, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(attention_arrays(max_layers=4, max_tokens=7), st.data())
def test_trace_with_tau_zero_reaches_every_token(attn, data):
    source = data.draw(st.integers(0, attn.shape[-1] - 1))
    result = trace(attn, source=source, tau=0.0)
    assert result.reached[:-1].all()
    # with every edge followed, the influence is the plain (no residual) rollout row of the source
    product = np.eye(attn.shape[-1])
    for layer_map in attn.mean(axis=1):
        product = layer_map @ product
    np.testing.assert_allclose(result.influence, product[source], atol=1e-9)
    np.testing.assert_allclose(result.influence.sum(), 1.0, atol=1e-9)


def test_trace_starts_at_the_chosen_layer_and_token():
    attn = random_attention(np.random.default_rng(0), 4, 2, 5)
    result = trace(attn, source=3, layer=1, tau=0.2)
    assert result.reached.shape == (3, 5)
    assert result.tokens_at(2).tolist() == [3]
    assert set(result.edges["layer"].tolist()) <= {0, 1}


@pytest.mark.parametrize("seed", range(4))
def test_compare_trace_labels_match_set_reference(seed):
    rng = np.random.default_rng(seed)
    first, second = random_attention(rng, 3, 2, 5), random_attention(rng, 3, 2, 5)
    result = compare_trace(first, second, source=0, tau=0.15)
    edges_a = {tuple(e)[:3] for e in trace(first, source=0, tau=0.15).edges.tolist()}
    edges_b = {tuple(e)[:3] for e in trace(second, source=0, tau=0.15).edges.tolist()}
    got = {tuple(e)[:3]: label for e, label in zip(result.edges.tolist(), result.labels.tolist())}
    expected = {e: "shared" for e in edges_a & edges_b}
    expected |= {e: "first" for e in edges_a - edges_b}
    expected |= {e: "second" for e in edges_b - edges_a}
    assert got == expected
    assert sum(result.count(label) for label in EDGE_LABELS) == len(expected)
    layers = result.edges["layer"]
    assert np.all(np.diff(layers) <= 0), "top layer first, as in Trace.edges"
    np.testing.assert_allclose(result.edges["weight_first"], first.mean(axis=1)[layers, result.edges["from_pos"], result.edges["to_pos"]])


def test_compare_trace_of_equal_snapshots_is_all_shared():
    attn = random_attention(np.random.default_rng(4), 2, 2, 4)
    result = compare_trace(attn, attn.copy(), source=1, tau=0.1)
    assert set(result.labels.tolist()) == {"shared"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"source": 5}, r"source must be an integer in \[0, 3\], got 5"),
        ({"source": 0, "layer": 2}, r"layer must be an integer in \[0, 1\], got 2"),
        ({"source": 0, "tau": 1.5}, r"tau must lie in \[0, 1\], got 1.5"),
        ({"source": 0, "heads": [7]}, r"heads must lie in \[0, 0\]"),
    ],
)
def test_bad_trace_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        trace(np.full((2, 1, 4, 4), 0.25), **kwargs)


def test_compare_trace_rejects_different_shapes():
    with pytest.raises(ValueError, match=r"attn_a and attn_b must have the same shape, got \(2, 1, 4, 4\) and \(2, 1, 3, 3\)"):
        compare_trace(np.full((2, 1, 4, 4), 0.25), np.full((2, 1, 3, 3), 1 / 3), source=0)


def test_compare_trace_names_the_bad_argument():
    bad = np.full((2, 1, 4, 4), 0.25)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="attn_b must be finite"):
        compare_trace(np.full((2, 1, 4, 4), 0.25), bad, source=0)


def reference_head_trace(attn, source, layer, tau, heads):
    """Plain loops: an edge when any selected head passes tau; mass only through passing heads."""
    layers, n_heads, tokens, _ = attn.shape
    heads = list(range(n_heads)) if heads is None else heads
    layer = layers - 1 if layer is None else layer
    reached, edges, mass, best = {source}, [], {source: 1.0}, {source: 1.0}
    for current in range(layer, -1, -1):
        next_reached, new_mass, new_best = set(), {}, {}
        for j in sorted(reached):
            for k in range(tokens):
                passing = [h for h in heads if attn[current, h, j, k] >= tau]
                if not passing:
                    continue
                weight = max(attn[current, h, j, k] for h in heads)
                edges.append((current, j, k, weight, tuple(passing)))
                next_reached.add(k)
                carried = sum(attn[current, h, j, k] for h in passing) / len(heads)
                new_mass[k] = new_mass.get(k, 0.0) + mass.get(j, 0.0) * carried
                new_best[k] = max(new_best.get(k, 0.0), best.get(j, 0.0) * weight)
        reached, mass, best = next_reached, new_mass, new_best
    return edges, [mass.get(k, 0.0) for k in range(tokens)], [best.get(k, 0.0) for k in range(tokens)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("layer, tau, heads", [(None, 0.3, None), (1, 0.2, [0, 2]), (0, 0.5, [1])])
def test_per_head_trace_matches_plain_loop_reference(seed, layer, tau, heads):
    rng = np.random.default_rng(seed)
    attn = random_attention(rng, 3, 3, 6)
    source = int(rng.integers(6))
    result = trace(attn, source=source, layer=layer, tau=tau, heads=heads, mode="any_head")
    edges, influence, strongest = reference_head_trace(attn, source, layer, tau, heads)
    selected = list(range(3)) if heads is None else heads
    assert result.mode == "any_head" and result.heads.tolist() == selected
    assert [tuple(edge)[:3] for edge in result.edges.tolist()] == [edge[:3] for edge in edges]
    np.testing.assert_allclose(result.edges["weight"], [edge[3] for edge in edges])
    passing = [tuple(np.asarray(selected)[row].tolist()) for row in result.edge_heads]
    assert passing == [edge[4] for edge in edges]
    np.testing.assert_allclose(result.influence, influence, atol=1e-12)
    np.testing.assert_allclose(result.strongest_path, strongest, atol=1e-12)
    assert result.influence.sum() <= 1 + 1e-12


def test_per_head_trace_contains_the_mean_trace_and_equals_it_for_one_head():
    rng = np.random.default_rng(7)
    attn = random_attention(rng, 3, 4, 7)
    mean = trace(attn, source=0, tau=0.15)
    per_head = trace(attn, source=0, tau=0.15, mode="any_head")
    keys = lambda result: set(map(tuple, np.stack([result.edges["layer"], result.edges["from_pos"],  # noqa: E731
                                                   result.edges["to_pos"]], 1).tolist()))
    assert keys(mean) <= keys(per_head)  # a mean above tau needs some head above tau
    one_mean, one_head = trace(attn, source=0, tau=0.15, heads=[2]), trace(attn, source=0, tau=0.15, heads=[2],
                                                                            mode="any_head")
    assert keys(one_mean) == keys(one_head)
    np.testing.assert_allclose(one_mean.influence, one_head.influence)
    np.testing.assert_allclose(one_head.influence_share.sum(), 1.0)


def test_comparison_works_in_per_head_mode_and_says_which_heads_pass_in_each_snapshot():
    before = np.zeros((1, 2, 3, 3))
    before[0, 0, :, 0] = 1.0  # head 0 parks on [CLS]
    before[0, 1, :, 1] = 1.0  # head 1 looks at token 1
    after = before.copy()
    after[0, 1] = 0.0
    after[0, 1, :, 2] = 1.0  # fine-tuning moves head 1 to token 2
    result = compare_trace(before, after, source=0, tau=0.6, mode="any_head")
    assert result.edges["to_pos"].tolist() == [0, 1, 2]
    assert result.labels.tolist() == ["shared", "first", "second"]
    assert result.heads_first.tolist() == [[True, False], [False, True], [False, False]]
    assert result.heads_second.tolist() == [[True, False], [False, False], [False, True]]
    assert result.count("shared") == 1
    # the head average (0.5 each) passes nowhere at this tau: only the per-head graph sees the change
    assert len(compare_trace(before, after, source=0, tau=0.6).edges) == 0


def test_unknown_trace_mode_lists_the_modes():
    with pytest.raises(ValueError, match=r"mode must be one of \['mean', 'any_head'\]"):
        trace(np.full((1, 1, 2, 2), 0.5), source=0, mode="heads")

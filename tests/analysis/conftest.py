"""Shared random attention for the analysis tests."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def random_attention(rng: np.random.Generator, layers: int, heads: int, tokens: int, keys: int | None = None):
    """Softmax-like attention: Dirichlet rows, some of them peaky."""
    keys = tokens if keys is None else keys
    concentration = rng.choice([0.1, 1.0, 5.0])
    return rng.dirichlet(np.full(keys, concentration), size=(layers, heads, tokens))


@st.composite
def attention_arrays(draw, max_layers=3, max_heads=3, max_tokens=6, square=True):
    """Hypothesis attention ``[L, H, T, T]``: random non-negative weights, rows normalised."""
    layers = draw(st.integers(1, max_layers))
    heads = draw(st.integers(1, max_heads))
    tokens = draw(st.integers(1, max_tokens))
    keys = tokens if square else draw(st.integers(1, max_tokens))
    weights = draw(
        hnp.arrays(np.float64, (layers, heads, tokens, keys), elements=st.floats(0.0, 1.0, allow_subnormal=False))
    )
    weights = weights + 1e-3  # no all-zero rows
    return weights / weights.sum(axis=-1, keepdims=True)

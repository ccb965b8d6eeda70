"""Reductions for large models: selected layers and heads, classification rows, top-k sparse rows."""

import numpy as np
import pytest

from attnflows_callback import AttentionRecorder, capture_probe, open_run
from attnflows_callback.capture import Reduction
from tests.helpers import probe_set, tiny_model, tokenizer


@pytest.fixture(scope="module")
def full_and_probe():
    model = tiny_model("bert", layers=3, heads=4)
    probe = probe_set().tokenize(tokenizer())
    return model, probe, capture_probe(model, probe)


def test_selected_layers_and_heads_are_exact_slices(full_and_probe):
    model, probe, full = full_and_probe
    kept = capture_probe(model, probe, reduction=Reduction(layers=[2, 0], heads=[1, 3]))
    for a, b in zip(full.attention["self"], kept.attention["self"]):
        np.testing.assert_array_equal(b, a[[0, 2]][:, [1, 3]])


def test_classification_rows_are_the_first_row_for_encoders_and_last_real_token_for_decoders(full_and_probe):
    model, probe, full = full_and_probe
    kept = capture_probe(model, probe, reduction=Reduction(rows="cls"))
    for a, b in zip(full.attention["self"], kept.attention["self"]):
        np.testing.assert_array_equal(b, a[:, :, :1, :])
    gpt2 = tiny_model("gpt2")
    full_gpt2 = capture_probe(gpt2, probe)
    last = capture_probe(gpt2, probe, reduction=Reduction(rows="cls"), classification_last=True, batch_size=3)
    for i, (a, b) in enumerate(zip(full_gpt2.attention["self"], last.attention["self"])):
        np.testing.assert_allclose(b[:, :, 0, :], a[:, :, len(probe.input_ids[i]) - 1, :], atol=1e-6)


def test_top_k_keeps_every_edge_at_or_above_one_over_k(full_and_probe):
    model, probe, full = full_and_probe
    k = 3
    kept = capture_probe(model, probe, reduction=Reduction(top_k=k))
    for a, b in zip(full.attention["self"], kept.attention["self"]):
        assert ((b > 0).sum(-1) <= k).all()
        strong = a >= 1.0 / k
        np.testing.assert_array_equal(b[strong], a[strong])  # the trace at tau >= 1/k is exact


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rows="diagonal"), r"rows must be one of \('all', 'cls'\)"),
        (dict(top_k=0), "top_k must be an integer >= 1"),
        (dict(layers=[]), "layers must be a non-empty list"),
        (dict(heads=[1, 1]), "heads must not repeat"),
    ],
)
def test_bad_reductions_are_refused_with_the_allowed_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Reduction(**kwargs)


def test_out_of_range_layers_are_refused_when_the_recorder_is_built(tmp_path):
    with pytest.raises(ValueError, match="layers index 7 is out of range: stream 'self' has 3 layers"):
        AttentionRecorder(tiny_model("bert", layers=3), tokenizer(), probe_set(), tmp_path, layers=[0, 7])
    assert not (tmp_path / "attnflows").exists()


def test_a_reduced_run_records_its_reduction_and_reads_back(tmp_path):
    with AttentionRecorder(tiny_model("bert", layers=3), tokenizer(), probe_set(), tmp_path,
                           layers=[1, 2], heads=[0], rows="cls") as recorder:
        recorder.snapshot(0)
    run = open_run(tmp_path)
    assert run.stream_shape() == (2, 1)
    assert run.meta["streams"]["self"]["layer_ids"] == [1, 2] and run.meta["streams"]["self"]["rows"] == "cls"
    assert run.attention(0, 0).shape == (2, 1, 1, len(run.tokens(0)))

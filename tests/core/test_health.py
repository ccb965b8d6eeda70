"""Attention health: special-token mass per layer and heads whose entropy collapsed or spread out since
step 0, as TensorBoard scalars and opt-in warnings, computed on the recorder's writer thread."""

import logging

import numpy as np
import pytest
import torch

from attnflows_callback import AttentionRecorder
from attnflows_callback.health import (
    AttentionHealth,
    crossed,
    normalised_entropy,
    special_mass,
    special_masks,
)
from tests.helpers import probe_set, tiny_model, tokenizer

HEALTH_LOGGER = "attnflows_callback.health"


def test_normalised_entropy_is_zero_for_one_hot_and_one_for_uniform_rows():
    from attnflows_callback.analysis import head_entropy

    one_hot = np.zeros((1, 1, 3, 3)); one_hot[..., 0] = 1.0  # noqa: E702
    uniform = np.full((1, 1, 5, 5), 0.2)
    entropy = np.stack([head_entropy(one_hot), head_entropy(uniform)])
    np.testing.assert_allclose(normalised_entropy(entropy[:1], [3]), [[0.0]])
    np.testing.assert_allclose(normalised_entropy(entropy[1:], [5]), [[1.0]])
    # a one-token example has no entropy ceiling: it is left out of the mean
    np.testing.assert_allclose(normalised_entropy(np.array([[[0.0]], [[np.log(5)]]]), [1, 5]), [[1.0]])


def test_special_masks_come_from_word_ids_or_token_strings():
    masks = special_masks([["[CLS]", "hi", "[SEP]"], ["<s>", "x", "</s>"]], None)
    assert [m.tolist() for m in masks] == [[True, False, True], [True, False, True]]
    assert special_masks([["[CLS]", "[SEP]"]], [[-1, 0]])[0].tolist() == [True, False]


def test_special_mass_averages_heads_queries_and_examples_per_layer():
    first = np.zeros((2, 2, 3, 3)); first[0, ..., 0] = 1.0; first[1, ..., 1] = 1.0  # noqa: E702
    second = np.full((2, 2, 2, 2), 0.5)
    masks = [np.array([True, False, False]), np.array([False, True])]
    np.testing.assert_allclose(special_mass([first, second], masks), [(1.0 + 0.5) / 2, (0.0 + 0.5) / 2])
    with pytest.raises(ValueError, match="one flag per key token"):
        special_mass([first], [np.array([True])])


def test_a_head_counts_as_crossed_only_when_it_crossed_since_step_zero():
    flags = crossed([[0.05, 0.05, 0.95, 0.95]], [[0.5, 0.1, 0.5, 0.95]])
    assert flags["collapsed"].tolist() == [[True, False, False, False]]  # the second was already one-hot
    assert flags["spread"].tolist() == [[False, False, True, False]]  # the fourth was already uniform
    with pytest.raises(ValueError, match="now and start must be"):
        crossed([[0.1]], [[0.1, 0.2]])


def test_warnings_fire_once_per_head_and_only_when_asked(caplog):
    start = {"self": [np.full((1, 2, 4, 4), 0.25)]}
    sharp = np.full((1, 2, 4, 4), 0.25)
    sharp[0, 1] = 0.0
    sharp[0, 1, :, 0] = 1.0  # head 1 collapses onto [CLS]
    entropy = {"self": {"entropy": np.array([[[np.log(4), 0.0]]])}}
    masks = [np.array([True, False, False, True])]
    caplog.set_level(logging.WARNING, logger=HEALTH_LOGGER)
    quiet = AttentionHealth(masks)
    scalars = quiet.observe(5, {"self": [sharp]}, entropy, start)
    assert caplog.records == []
    assert scalars["health/collapsed_heads/layer_00"] == 1.0 and scalars["health/spread_heads/layer_00"] == 0.0
    assert scalars["health/special_mass/layer_00"] == pytest.approx((0.5 + 1.0) / 2)
    loud = AttentionHealth(masks, warn=True)
    loud.observe(5, {"self": [sharp]}, entropy, start)
    loud.observe(6, {"self": [sharp]}, entropy, start)
    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if "layer 0 head 1 collapsed" in m]) == 1, messages
    assert any("on special tokens, up from 0.50" in m for m in messages), messages
    with pytest.raises(ValueError, match="thresholds may set"):
        AttentionHealth(masks, thresholds={"colapsed": 0.1})


def test_recorder_logs_health_scalars_and_warns_when_a_head_collapses(tmp_path, caplog):
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.util import tensor_util

    model = tiny_model("bert", layers=2, heads=4)
    caplog.set_level(logging.WARNING, logger=HEALTH_LOGGER)
    with AttentionRecorder(model, tokenizer(), probe_set(), tmp_path, health_warnings=True) as recorder:
        recorder.snapshot(0)
        recorder.flush()
        assert caplog.records == []
        with torch.no_grad():  # sharpen layer 1's queries and keys: its softmax rows become nearly one-hot
            attention = model.bert.encoder.layer[1].attention.self
            for projection in (attention.query, attention.key):
                projection.weight.mul_(300.0)
                projection.bias.mul_(300.0)
        recorder.snapshot(10)
    messages = [record.getMessage() for record in caplog.records]
    assert any("layer 1 head" in m and "collapsed" in m for m in messages), messages
    assert not any("layer 0 head" in m for m in messages), messages

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    (run,) = multiplexer.Runs()
    tags = set(multiplexer.Runs()[run]["tensors"])
    assert {"attnflows/health/special_mass/layer_00", "attnflows/health/special_mass/layer_01",
            "attnflows/health/collapsed_heads/layer_01", "attnflows/health/spread_heads/layer_00"} <= tags
    collapsed = {event.step: float(tensor_util.make_ndarray(event.tensor_proto))
                 for event in multiplexer.Tensors(run, "attnflows/health/collapsed_heads/layer_01")}
    assert collapsed[0] == 0.0 and collapsed[10] >= 1.0


def test_a_failing_health_check_is_logged_and_never_raises(caplog):
    caplog.set_level(logging.WARNING, logger=HEALTH_LOGGER)
    health = AttentionHealth([np.array([True, False])])
    broken = {"self": {"entropy": np.zeros((2, 1, 1))}}  # two examples of entropy, one of attention
    assert health.observe(3, {"self": [np.full((1, 1, 2, 2), 0.5)]}, broken, None) == {}
    assert "no health scalars at step 3" in caplog.text
    with pytest.raises(TypeError, match="health_warnings must be True or False"):
        AttentionHealth([], warn="yes")

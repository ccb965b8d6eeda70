"""/registries and the flow view's server-side graph: what the browser's menus and drawings come from."""

from __future__ import annotations

import numpy as np
import pytest

from attnflows_callback import analysis, open_run
from attnflows_tb import registry
from attnflows_tb.api import unframe

from .conftest import get


def graph(client, view, **params):
    query = dict(run="sweep/lr_1", example=2, step=10, method="trace", view=view, **params)
    response = get(client, "flow", **query)
    assert response.status_code == 200, response.json
    return response.json


def test_registries_serve_the_menus_in_order_with_what_each_entry_needs(client):
    body = get(client, "registries").json
    assert [(m["name"], m["label"]) for m in body["flow_methods"]] == [
        ("raw", "raw attention"), ("rollout", "rollout"), ("flow", "max-flow"),
        ("per_head", "per-head graph (any head ≥ τ)")]
    assert {m["name"]: m["token_influence"] for m in body["flow_methods"]} == {
        "raw": "rollout", "rollout": "rollout", "flow": "flow", "per_head": "per_head"}
    assert {m["name"]: m["trace_mode"] for m in body["flow_methods"]} == {
        "raw": "mean", "rollout": "mean", "flow": "mean", "per_head": "any_head"}
    assert body["colour_by"] == ["change", "entropy", "pattern", "importance"]
    by_name = {m["name"]: m for m in body["head_metrics"]}
    assert by_name["importance"]["needs_classification_head"] and by_name["pattern"]["categorical"]
    assert all(m["per_example"] for m in body["flow_methods"] + body["head_metrics"])


def test_every_head_metric_served_by_heads_is_in_the_registry(client):
    metrics = get(client, "heads", run="sweep/lr_1", step=10, example=0).json["metrics"]
    assert set(metrics) == set(registry.HEAD_METRICS)


def test_rollout_view_draws_the_rollout_row_and_edges_that_carry_it(client, logdir):
    attention = open_run(logdir / "sweep" / "lr_1").attention(2, 10)
    body = graph(client, "rollout", tau="0", source=1)
    expected = analysis.rollout(attention)[body["layer"], 1]
    np.testing.assert_allclose(body["influence"], expected, atol=1e-5)
    _, rolled = unframe(get(client, "flow", run="sweep/lr_1", example=2, step=10, method="rollout").data)
    np.testing.assert_allclose(body["influence"], rolled[body["layer"], 1], atol=1e-5)
    reaching_inputs = np.zeros(len(body["tokens"]))
    for layer, _i, j, weight in body["edges"]:
        if layer == 0:
            reaching_inputs[j] += weight
    np.testing.assert_allclose(reaching_inputs, expected, atol=1e-4)  # the input row receives the rollout row


def test_rollout_edges_below_tau_are_left_out(client):
    body = graph(client, "rollout", tau="0.2")
    assert body["edges"] and all(w >= 0.2 for *_, w in body["edges"])
    assert body["source"] == 0 and body["layer"] == 1  # the classification position, the deepest layer


def test_flow_and_raw_views_draw_the_trace_with_their_own_values(client):
    trace = get(client, "flow", run="sweep/lr_1", example=2, step=10, method="trace", tau="0.1").json
    flow = get(client, "flow", run="sweep/lr_1", example=2, step=10, method="flow").json
    raw_view, flow_view = graph(client, "raw", tau="0.1"), graph(client, "flow", tau="0.1")
    assert raw_view["edges"] == flow_view["edges"] == trace["edges"]
    assert raw_view["influence"] == trace["influence"] and flow_view["influence"] == flow["values"]


def test_an_unknown_view_or_a_view_without_trace_is_a_400_that_lists_the_methods(client):
    for query in ({"method": "trace", "view": "nope"}, {"method": "rollout", "view": "rollout"}):
        response = get(client, "flow", run="sweep/lr_1", example=0, step=10, **query)
        assert response.status_code == 400 and "raw" in response.json["error"] and "nope" not in response.json["error"]


@pytest.fixture
def toy_method():
    """Recipe 2 of docs/extending.md: one function and one registration."""

    def uniform(graph: registry.Graph):
        length = graph.attention.shape[-1]
        return np.array([[graph.layer, graph.source, j, 1.0 / length] for j in range(length)]), np.full(length, 1 / length)

    method = registry.register_flow_method(registry.FlowMethod("uniform", "uniform (toy)", uniform, "an equal share"))
    yield method
    del registry.FLOW_METHODS["uniform"]


def test_a_registered_method_is_served_in_the_menu_and_drawn_by_the_server(client, toy_method):
    names = [m["name"] for m in get(client, "registries").json["flow_methods"]]
    assert names == ["raw", "rollout", "flow", "per_head", "uniform"]
    body = graph(client, "uniform")
    length = len(body["tokens"])
    assert body["influence"] == pytest.approx([1 / length] * length)
    assert [e[2] for e in body["edges"]] == list(range(length))


def test_registering_a_method_checks_its_name():
    with pytest.raises(ValueError, match="new identifier"):
        registry.register_flow_method(registry.FlowMethod("rollout", "again", lambda g: None, ""))
    with pytest.raises(TypeError, match="FlowMethod"):
        registry.register_flow_method("rollout")

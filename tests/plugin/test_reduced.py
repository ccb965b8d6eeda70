"""Reduced runs in the plugin: answers that need every row refuse a rows="cls" run; top_k answers say if exact;
heads that share a key/value head (grouped-query attention) are named in /runs and /heads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnflows_callback import open_run
from attnflows_tb.api import unframe
from attnflows_tb.reduced import stream_kv_heads
from tests.helpers import write_run

from .conftest import get, make_app

TOP_K = 3


@pytest.fixture(scope="module")
def reduced_logdir(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("reduced")
    write_run(logdir / "llama_full", family="llama", steps=(0, 5))  # 4 query heads sharing 2 key/value heads
    write_run(logdir / "llama_cls", family="llama", steps=(0, 5), rows="cls")
    write_run(logdir / "llama_topk", family="llama", steps=(0, 5), top_k=TOP_K)
    write_run(logdir / "bert", steps=(0, 5))
    return logdir


@pytest.fixture(scope="module")
def client(reduced_logdir):
    from werkzeug.test import Client

    return Client(make_app(reduced_logdir, multiplexer=False))


def runs(client) -> dict:
    return {r["run"]: r for r in get(client, "runs").json["runs"]}


# ------------------------------------------------------------- grouped-query attention
def test_run_json_names_the_key_value_head_of_every_stored_head(reduced_logdir):
    meta = open_run(reduced_logdir / "llama_full").meta
    assert meta["model"]["config"]["num_key_value_heads"] == 2
    assert meta["streams"]["self"]["kv_heads"] == [0, 0, 1, 1]
    assert open_run(reduced_logdir / "bert").meta["streams"]["self"]["kv_heads"] is None


def test_runs_and_heads_group_query_heads_by_key_value_head(client):
    listed = runs(client)
    assert listed["llama_full"]["streams"]["self"]["kv_heads"] == [0, 0, 1, 1]
    assert listed["bert"]["streams"]["self"]["kv_heads"] is None
    assert get(client, "heads", run="llama_full", step=5).json["kv_heads"] == [0, 0, 1, 1]
    assert get(client, "heads", run="bert", step=5).json["kv_heads"] is None


def test_an_older_run_json_without_kv_heads_falls_back_to_its_config_then_to_no_grouping(reduced_logdir):
    meta = json.loads(json.dumps(open_run(reduced_logdir / "llama_full").meta))
    del meta["streams"]["self"]["kv_heads"]
    assert stream_kv_heads(meta, "self") == [0, 0, 1, 1]
    meta["streams"]["self"]["head_ids"] = [1, 2, 3]  # recorded with heads=[1, 2, 3]
    meta["streams"]["self"]["heads"] = 3
    assert stream_kv_heads(meta, "self") == [0, 1, 1]
    del meta["model"]["config"]["num_key_value_heads"]
    assert stream_kv_heads(meta, "self") is None


# ------------------------------------------------------------- rows="cls"
def test_runs_says_which_runs_are_reduced(client):
    listed = runs(client)
    assert listed["llama_cls"]["streams"]["self"] | {"kv_heads": None} == {
        "layers": 2, "heads": 4, "rows": "cls", "top_k": None, "kv_heads": None}
    assert listed["llama_topk"]["streams"]["self"]["top_k"] == TOP_K
    assert listed["llama_full"]["streams"]["self"]["rows"] == "all"


FULL_ROW_QUERIES = [
    ("flow", {"method": "trace", "view": "raw"}),
    ("flow", {"method": "trace", "view": "rollout"}),
    ("flow", {"method": "trace", "view": "per_head"}),
    ("flow", {"method": "trace"}),
    ("flow", {"method": "rollout"}),
    ("flow", {"method": "flow"}),
    ("lifetimes", {"view": "raw"}),
    ("compare", {"other_run": "llama_cls", "other_step": 0}),
    ("aggregate", {}),
    ("explain", {}),
]


@pytest.mark.parametrize("route,params", FULL_ROW_QUERIES, ids=[f"{r}-{p.get('view', p.get('method', ''))}"
                                                                 for r, p in FULL_ROW_QUERIES])
def test_answers_over_every_row_refuse_a_cls_only_run_with_409_and_say_so(client, route, params):
    response = get(client, route, run="llama_cls", example=1, step=5, **params)
    assert response.status_code == 409, response.data
    body = response.json
    assert body["needs_full_rows"] is True
    assert "rows='cls'" in body["error"] and "rows='all'" in body["error"]


def test_a_full_run_answers_the_same_queries(client):
    for route, params in FULL_ROW_QUERIES:
        if route == "compare":
            params = {**params, "other_run": "llama_full"}
        response = get(client, route, run="llama_full", example=1, step=5, **params)
        assert response.status_code == 200, (route, params, response.data)


def test_a_cls_only_run_serves_what_one_row_gives(client, reduced_logdir):
    run = open_run(reduced_logdir / "llama_cls")
    tokens = run.tokens(1)
    header, values = unframe(get(client, "attention", run="llama_cls", example=1, step=5).data)
    assert values.shape == (2, 4, 1, len(tokens))
    assert header["query_tokens"] == [tokens[-1]] and header["key_tokens"] == tokens  # a decoder: the last token
    _, raw = unframe(get(client, "flow", run="llama_cls", example=1, step=5, method="raw").data)
    np.testing.assert_allclose(raw, values.mean(axis=1), atol=1e-6)
    assert get(client, "summary", run="llama_cls").status_code == 200
    assert get(client, "compare", run="llama_cls", step=0, other_run="llama_cls", other_step=5).status_code == 200
    heads = get(client, "heads", run="llama_cls", step=5).json
    assert np.array(heads["metrics"]["change"], dtype=float).shape == (2, 4)
    assert heads["needs_full_rows"] == ["pattern", "to_cls", "to_self", "to_sep"]
    assert all(heads["metrics"][name] is None for name in heads["needs_full_rows"])
    assert get(client, "heads", run="llama_full", step=5).json["needs_full_rows"] == []


# ------------------------------------------------------------- top_k
def test_top_k_answers_say_whether_they_are_exact(client):
    common = dict(run="llama_topk", example=1, step=5)
    per_head = get(client, "flow", method="trace", view="per_head", tau=0.34, **common).json
    assert per_head["reduction"]["exact"] is True and per_head["reduction"]["top_k"] == TOP_K
    low = get(client, "flow", method="trace", view="per_head", tau=0.05, **common).json
    assert low["reduction"]["exact"] is False
    mean = get(client, "flow", method="trace", view="raw", tau=0.5, **common).json
    assert mean["reduction"]["exact"] is False and "approximation" in mean["reduction"]["note"]
    header, _ = unframe(get(client, "flow", method="rollout", **common).data)
    assert header["reduction"]["exact"] is False
    assert get(client, "flow", run="llama_full", example=1, step=5, method="trace", view="raw").json["reduction"] is None

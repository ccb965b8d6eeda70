"""/aggregate, /explain and /lifetimes on a constructed run where the answer is known (tests/analysis/flip_run.py).

Example 0's head (1, 2) moves from [CLS] to "bad" between steps 10 and 20, and its prediction flips
there; nothing else changes.
"""

from __future__ import annotations

import numpy as np
import pytest

from attnflows_callback import open_run
from attnflows_callback.explain import explain_flip
from attnflows_callback.store import write_marker_events_file
from attnflows_tb import changes, metadata
from attnflows_tb.runs import AttentionCache, RunCache

from tests.analysis.flip_run import BAD, MOVED, constructed_run

from .conftest import get, make_app


@pytest.fixture(scope="module")
def flip_logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("changes")
    constructed_run(root / "flip")
    write_marker_events_file(root / "flip")
    return root


@pytest.fixture(scope="module")
def flip_client(flip_logdir):
    from werkzeug.test import Client

    return Client(make_app(flip_logdir, multiplexer=False))


def ok(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def error(response, code):
    assert response.status_code == code, response.get_data(as_text=True)
    body = response.json
    assert set(body) == {"error"} and "/tmp" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


# ------------------------------------------------------------------ /aggregate
def test_aggregate_over_flipped_examples_finds_the_head_that_moved(flip_client):
    body = ok(get(flip_client, "aggregate", run="flip", step=20, selection="flipped"))
    assert body["examples"] == [0] and body["count"] == 1 and body["reference_step"] == 0
    js = body["heads"]["js"]["mean"]
    ranked = sorted(((v, l, h) for l, row in enumerate(js) for h, v in enumerate(row)), reverse=True)
    assert (ranked[0][1], ranked[0][2]) == MOVED and ranked[0][0] > 0.1
    assert all(v == 0 for v, l, h in ranked[1:])


def test_aggregate_over_all_halves_the_change_and_over_a_class_keeps_only_its_examples(flip_client):
    everyone = ok(get(flip_client, "aggregate", run="flip", step=20, selection="all"))
    flipped = ok(get(flip_client, "aggregate", run="flip", step=20, selection="flipped"))
    layer, head = MOVED
    assert everyone["count"] == 2
    assert everyone["heads"]["js"]["mean"][layer][head] == pytest.approx(flipped["heads"]["js"]["mean"][layer][head] / 2,
                                                                          rel=1e-4)
    positive = ok(get(flip_client, "aggregate", run="flip", step=20, selection="class:1"))
    assert positive["examples"] == [1] and positive["heads"]["js"]["mean"][layer][head] == 0


def test_aggregate_route_equals_aggregate_run(flip_client, flip_logdir):
    from attnflows_callback.aggregate import aggregate_run

    body = ok(get(flip_client, "aggregate", run="flip", step=20, selection="all"))
    direct = aggregate_run(open_run(flip_logdir / "flip"), 20, selection="all", top_words=metadata.MAX_AGGREGATE_WORDS)
    assert [w["word"] for w in body["words"]] == [w["word"] for w in direct["words"]]
    np.testing.assert_allclose(body["heads"]["js"]["mean"], direct["heads"]["js"]["mean"], atol=1e-6)


def test_aggregate_over_an_empty_selection_says_so_without_an_error(flip_client):
    body = ok(get(flip_client, "aggregate", run="flip", step=10, selection="flipped"))
    assert (body["count"], body["examples"], body["heads"], body["words"]) == (0, [], None, [])


@pytest.mark.parametrize(("query", "code", "says"), [
    ({"selection": "flipped; rm"}, 400, "'all', 'flipped' or 'class:K'"),
    ({"selection": "class:7"}, 400, "probe labels [0, 1]"),
    ({"step": "11"}, 404, "unknown step"),
    ({"stream": "nope"}, 404, "unknown stream"),
])
def test_aggregate_errors_name_the_fix(flip_client, query, code, says):
    assert says in error(get(flip_client, "aggregate", **{"run": "flip", "step": "20", **query}), code)


# --------------------------------------------------------------------- /explain
def test_explain_ranks_the_moved_head_first_and_gains_the_edge_to_bad(flip_client):
    body = ok(get(flip_client, "explain", run="flip", example=0))
    assert body["run"] == "flip" and body["flipped"] and (body["step_before"], body["step_after"]) == (10, 20)
    assert (body["prediction_before"], body["prediction_after"]) == ("positive", "negative")
    assert (body["heads"][0]["layer"], body["heads"][0]["head"]) == MOVED
    assert any(e["to"] == BAD and e["to_token"] == "bad" for e in body["edges_gained"])
    bad = next(w for w in body["words"] if w["word"] == "bad")
    assert bad["change"] > 0 and bad["change"] == max(w["change"] for w in body["words"])


def test_explain_route_is_attnflows_explain(flip_client, flip_logdir):
    body = ok(get(flip_client, "explain", run="flip", example=0, step=20, tau="0.2", mode="any_head"))
    direct = explain_flip(open_run(flip_logdir / "flip"), 0, 20, tau=0.2, mode="any_head")
    assert body == {**direct, "run": "flip"}


def test_explain_and_aggregate_take_the_view_options_of_attnflows_explain(flip_client, flip_logdir):
    body = ok(get(flip_client, "explain", run="flip", example=0, drop_special="0"))
    direct = explain_flip(open_run(flip_logdir / "flip"), 0, drop_special=False)
    assert body == {**direct, "run": "flip"} and body["view"]["drop_special"] is False
    assert any(w["word"] == "[CLS]" and w["shown"] for w in body["words"])
    raw = ok(get(flip_client, "aggregate", run="flip", step=20, drop_special="0", drop_punctuation="1"))
    assert raw["view"] == {"drop_special": False, "drop_punctuation": True}
    # The tab sends the display option of the other routes: targets=none is raw, special_punct drops both.
    assert ok(get(flip_client, "aggregate", run="flip", step=20, targets="none"))["view"] == \
        {"drop_special": False, "drop_punctuation": False}
    assert ok(get(flip_client, "explain", run="flip", example=0, targets="special_punct"))["view"]["drop_punctuation"]
    assert "'targets' must be one of ['none', 'special', 'special_punct']" in error(
        get(flip_client, "aggregate", run="flip", step=20, targets="magic"), 400)
    assert "'drop_special' must be 0 or 1" in error(get(flip_client, "explain", run="flip", example=0,
                                                        drop_special="maybe"), 400)


@pytest.mark.parametrize(("query", "code", "says"), [
    ({"example": "1"}, 400, "never changed"),
    ({"example": "0", "step": "0"}, 400, "first snapshot"),
    ({"example": "9"}, 404, "unknown example"),
    ({"example": "0", "mode": "both"}, 400, "'mean', 'any_head'"),
    ({"example": "0", "tau": "2"}, 400, "'tau'"),
])
def test_explain_errors_name_the_fix(flip_client, query, code, says):
    assert says in error(get(flip_client, "explain", run="flip", **query), code)


def test_explain_with_a_step_compares_an_example_that_did_not_flip(flip_client):
    body = ok(get(flip_client, "explain", run="flip", example=1, step=20))
    assert not body["flipped"] and body["flip_steps"] == [] and body["edges_gained"] == body["edges_lost"] == []
    assert all(h["js"] == 0 for h in body["heads"])


# ------------------------------------------------------------------- /lifetimes
def test_lifetimes_show_the_edge_to_bad_appearing_at_the_flip(flip_client):
    # Mean over heads at layer 1 from [CLS]: 0.7 to itself and 0.3 to [SEP] at steps 0 and 10;
    # at step 20 the moved head sends 0.8 to "bad", so the mean is 0.533 [CLS], 0.267 "bad", 0.2 [SEP].
    body = ok(get(flip_client, "lifetimes", run="flip", example=0, step=20, tau="0.25", layer=1))
    assert body["steps"] == [0, 10, 20]
    rows = {tuple(e[:3]): (p, a) for e, p, a in zip(body["edges"], body["present"], body["appeared"])}
    assert rows[(1, 0, BAD)] == ([0, 0, 1], 20)
    assert rows[(1, 0, 0)] == ([1, 1, 1], 0)
    assert (1, 0, 5) not in rows  # 0.2 < tau at step 20: not in the graph drawn there
    assert body["capped"] == {"edges": False, "steps": False, "total_edges": len(body["edges"]), "total_steps": 3}
    at_ten = ok(get(flip_client, "lifetimes", run="flip", example=0, step=10, tau="0.25", layer=1))
    rows = {tuple(e[:3]): p for e, p in zip(at_ten["edges"], at_ten["present"])}
    assert rows[(1, 0, 5)] == [1, 1, 0]


def test_lifetimes_presence_equals_the_flow_route_at_every_step(flip_client):
    query = dict(run="flip", example=0, tau="0.05", heads="2", view="rollout")
    body = ok(get(flip_client, "lifetimes", step=20, **query))
    for k, step in enumerate(body["steps"]):
        flow = ok(get(flip_client, "flow", step=step, method="trace", **query))
        drawn = {tuple(e[:3]) for e in flow["edges"]}
        assert [p[k] for p in body["present"]] == [int(tuple(e[:3]) in drawn) for e in body["edges"]]


def test_lifetimes_are_capped_and_say_so(flip_logdir):
    entry = RunCache().get(flip_logdir / "flip")
    body = changes.lifetimes_impl("flip", entry, AttentionCache(), example=0, step=20, tau=0.0, max_edges=2,
                                  max_steps=2)
    assert len(body["edges"]) == 2 and body["steps"] == [0, 20]
    assert body["capped"]["edges"] and body["capped"]["steps"] and body["capped"]["total_steps"] == 3
    assert body["capped"]["total_edges"] > 2 and body["limits"] == {"edges": 2, "steps": 2}
    weights = [e[3] for e in body["edges"]]
    assert weights == sorted(weights, reverse=True)  # the strongest kept


def test_traced_steps_keep_first_last_and_current():
    steps = list(range(0, 1000, 10))
    picked = changes.traced_steps(steps, 370, 8)
    assert len(picked) == 8 and picked[0] == 0 and picked[-1] == 990 and 370 in picked


@pytest.mark.parametrize(("query", "code", "says"), [
    ({"view": "magic"}, 400, "'view' must be one of"),
    ({"source": "40"}, 400, "source is out of range: it must be in [0, 6)"),
    ({"heads": "9:0"}, 400, "a layer in 'heads' is out of range: this stream has 2 layers"),
    ({"step": "15"}, 404, "unknown step"),
])
def test_lifetimes_errors_name_the_fix(flip_client, query, code, says):
    assert says in error(get(flip_client, "lifetimes", **{"run": "flip", "example": "0", "step": "20", **query}), code)


@pytest.mark.parametrize("route", ["aggregate", "explain", "lifetimes"])
@pytest.mark.parametrize("run", ["extlink", "virtual", "corrupt"])
def test_a_damaged_or_linked_shard_is_a_safe_error_and_nothing_outside_is_read(client, logdir, outside, route, run):
    response = get(client, route, run=run, step=10, example=0)
    assert response.status_code in (200, 400, 404), response.get_data(as_text=True)
    if response.status_code != 200:
        message = error(response, response.status_code)
        assert str(logdir) not in message
    assert outside.reads() == []

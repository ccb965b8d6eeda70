"""The display options (tb_plugin/display.py): hidden targets and word units, computed on the server, on every route."""

from __future__ import annotations

import numpy as np
import pytest

from attnflows_callback import analysis, open_run
from attnflows_callback.analysis import view as analysis_view
from attnflows_tb import display
from attnflows_tb.api import unframe

from .conftest import get

READABLE = {"targets": "special_punct", "units": "words"}


def stored(logdir, example=2, step=10):
    run = open_run(logdir / "sweep" / "lr_1")
    word_ids = [None if w is None or int(w) < 0 else int(w) for w in run.word_ids(example)]
    return run.attention(example, step), run.tokens(example), word_ids


def readable_view(attention, tokens, word_ids):
    return analysis_view.apply_view(attention, tokens, word_ids, drop_special=True, drop_punctuation=True, words=True)


def test_word_units_merge_pieces_and_hidden_targets_get_no_attention():
    attention = np.random.default_rng(0).dirichlet(np.ones(5), size=(2, 3, 5))  # [L, H, T, T]
    tokens, word_ids = ["[CLS]", "soggy", "##ish", ",", "[SEP]"], [None, 0, 0, 1, None]
    shown = display.transform(attention, tokens, word_ids, display.Display("special_punct", "words"))
    assert shown.labels == ["[CLS]", "soggyish", ",", "[SEP]"] and shown.unit_of(2) == 1
    assert shown.info["keep"] == [False, True, False, False]
    np.testing.assert_allclose(shown.attention[..., 1], 1.0)  # the one shown word takes every row
    raw = display.transform(attention, tokens, word_ids, display.Display())
    assert raw.info is None and raw.attention is attention


def test_registries_list_the_display_choices_and_runs_say_their_default(client):
    display = get(client, "registries").json["display"]
    assert [name for name, _ in display["targets"]] == ["none", "special", "special_punct"]
    assert [name for name, _ in display["units"]] == ["tokens", "words"]
    assert [name for name, _ in display["edge_colours"]] == ["head", "layer"]
    runs = {r["run"]: r for r in get(client, "runs").json["runs"]}
    # a BERT probe holds [CLS]/[SEP]: the measured defaults (analysis.view.VIEW_DEFAULTS) apply
    assert runs["sweep/lr_1"]["view_default"] == {"targets": "special_punct", "units": "words"}


def test_flow_with_the_readable_view_is_the_rollout_of_the_view_and_hides_what_it_says(client, logdir):
    attention, tokens, word_ids = stored(logdir)
    before = attention.copy()
    body = get(client, "flow", run="sweep/lr_1", example=2, step=10, method="trace", view="rollout", tau="0",
               **READABLE).json
    view = readable_view(attention, tokens, word_ids)
    assert body["tokens"] == view.labels
    np.testing.assert_allclose(body["influence"], analysis.rollout(view.attention)[body["layer"], body["source"]],
                               atol=1e-5)
    assert body["display"]["keep"] == view.keep.tolist() and body["display"]["roles"] == view.roles
    assert body["display"]["hidden_mass"] == pytest.approx(float(view.hidden_mass.mean()), abs=1e-5)
    assert body["tokens"][body["source"]] == "[CLS]"
    hidden = {i for i, kept in enumerate(view.keep) if not kept}
    traced = get(client, "flow", run="sweep/lr_1", example=2, step=10, method="trace", view="raw", tau="0.01",
                 **READABLE).json
    assert traced["edges"] and not any(j in hidden for _l, _i, j, _w in traced["edges"])  # none ends on a hidden target
    np.testing.assert_array_equal(open_run(logdir / "sweep" / "lr_1").attention(2, 10), before)  # stored data untouched


def test_without_display_parameters_the_routes_answer_raw_attention(client, logdir):
    attention, tokens, _ = stored(logdir)
    body = get(client, "flow", run="sweep/lr_1", example=2, step=10, method="trace", view="raw").json
    assert body["display"] is None and body["tokens"] == tokens
    header, values = unframe(get(client, "attention", run="sweep/lr_1", example=2, step=10).data)
    assert header["view"] is None
    np.testing.assert_allclose(values, attention, atol=1e-6)


def test_attention_heat_maps_follow_the_display(client, logdir):
    attention, tokens, word_ids = stored(logdir)
    header, values = unframe(get(client, "attention", run="sweep/lr_1", example=2, step=10, layer=1, head=0,
                                 **READABLE).data)
    view = readable_view(attention[1:2, 0:1], tokens, word_ids)
    assert header["key_tokens"] == header["query_tokens"] == view.labels
    assert header["view"]["targets"] == "special_punct" and header["view"]["units"] == "words"
    np.testing.assert_allclose(values, view.attention, atol=1e-6)
    rows = values[0, 0].sum(axis=-1)
    assert np.all((np.abs(rows - 1) < 1e-5) | (rows == 0))  # renormalised over what is shown, or empty


def test_per_head_graph_is_the_any_head_trace_with_the_heads_that_pass_tau(client, logdir):
    attention, tokens, word_ids = stored(logdir)
    view = readable_view(attention, tokens, word_ids)
    body = get(client, "flow", run="sweep/lr_1", example=2, step=10, method="trace", view="per_head", tau="0.12",
               **READABLE).json
    expected = analysis.trace(view.attention, source=body["source"], tau=0.12, mode="any_head")
    assert body["trace_mode"] == "any_head"
    assert [e[:3] for e in body["edges"]] == [[int(e["layer"]), int(e["from_pos"]), int(e["to_pos"])]
                                              for e in expected.edges]
    np.testing.assert_allclose(body["influence"], expected.influence, atol=1e-5)
    assert len(body["edge_heads"]) == len(body["edges"])
    for (layer, i, j, weight), heads in zip(body["edges"], body["edge_heads"]):
        weights = view.attention[layer, heads, i, j]
        assert heads and np.all(weights >= 0.12 - 1e-9) and list(weights) == sorted(weights, reverse=True)
        assert weight == pytest.approx(weights[0], abs=1e-5)  # an edge's weight is its strongest head's
    mean = get(client, "flow", run="sweep/lr_1", example=2, step=10, method="trace", view="raw", tau="0.12",
               **READABLE).json
    assert len(body["edges"]) > len(mean["edges"])  # any head passing finds more edges than the head average


def test_comparison_overlay_traces_in_the_flow_mode_and_display_asked_for(client, logdir):
    first, tokens, word_ids = stored(logdir, step=10)
    second, *_ = stored(logdir, step=0)
    body = get(client, "compare", run="sweep/lr_1", step=10, other_run="sweep/lr_1", other_step=0, example=2,
               tau="0.1", mode="any_head", **READABLE).json["trace"]
    expected = analysis.compare_trace(readable_view(first, tokens, word_ids).attention,
                                      readable_view(second, tokens, word_ids).attention,
                                      source=0, tau=0.1, mode="any_head")
    assert body["mode"] == "any_head" and body["display"]["units"] == "words"
    assert [(e[0], e[1], e[2], e[5]) for e in body["edges"]] == [
        (int(e["layer"]), int(e["from_pos"]), int(e["to_pos"]), str(label))
        for e, label in zip(expected.edges, expected.labels)]
    assert body["edges"]


@pytest.mark.parametrize(("route", "params", "names"), [
    ("flow", {"method": "trace", "view": "raw", "targets": "everything"}, "['none', 'special', 'special_punct']"),
    ("flow", {"method": "trace", "view": "raw", "units": "letters"}, "['tokens', 'words']"),
    ("attention", {"targets": "special,punct"}, "special_punct"),
])
def test_unknown_display_values_are_a_400_that_lists_the_choices(client, route, params, names):
    response = get(client, route, run="sweep/lr_1", example=2, step=10, **params)
    assert response.status_code == 400 and names in response.json["error"]


def test_unknown_comparison_mode_is_a_400_that_lists_the_modes(client):
    response = get(client, "compare", run="sweep/lr_1", step=10, other_run="sweep/lr_1", other_step=0, example=2,
                   mode="sometimes")
    assert response.status_code == 400 and "['mean', 'any_head']" in response.json["error"]


def test_a_source_beyond_the_views_units_is_a_400(client, logdir):
    units = readable_view(*stored(logdir)).labels
    response = get(client, "flow", run="sweep/lr_1", example=2, step=10, method="trace", view="raw",
                   source=len(units), **READABLE)
    assert response.status_code == 400 and "source" in response.json["error"]

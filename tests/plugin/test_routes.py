"""Every route of docs/http_api.md through TensorBoard's own WSGI app, and every error case."""

from __future__ import annotations

import importlib.metadata
import json

import numpy as np
import pytest

from attnflows_callback import analysis, open_run
from attnflows_tb import metadata
from attnflows_tb.api import unframe
from attnflows_tb.plugin import AttentionFlowsLoader

from .conftest import PREFIX, get

LISTED = {"sweep/lr_1", "sweep/lr_2", "gpt", "t5", "other_probe", "corrupt", "extlink", "virtual", "extsummary",
          "snaplink"}


def runs_by_name(client):
    response = get(client, "runs")
    assert response.status_code == 200
    return {r["run"]: r for r in response.json["runs"]}, response.json["skipped"]


def assert_safe_error(response, code, logdir):
    assert response.status_code == code, response.data
    assert response.mimetype == "application/json"
    body = response.get_data(as_text=True)
    assert set(json.loads(body)) == {"error"}
    assert str(logdir) not in body and "Traceback" not in body and "/tmp" not in body
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --------------------------------------------------------------- registration
@pytest.mark.parametrize("which", ["client", "legacy_client"])
def test_plugin_is_listed_and_enabled_with_its_tab(which, request):
    listing = request.getfixturevalue(which).get("/data/plugins_listing").json
    entry = listing[metadata.PLUGIN_NAME]
    assert entry["enabled"] is True
    assert entry["tab_name"] == "Attention Flows"
    assert entry["loading_mechanism"] == {"type": "IFRAME", "module_path": f"{PREFIX}/index.js"}


def test_entry_point_names_the_loader():
    points = {e.name: e for e in importlib.metadata.entry_points(group="tensorboard_plugins")}
    assert points["attnflows"].load() is AttentionFlowsLoader


def test_frontend_module_and_entry_page_are_served(client):
    module = get(client, "index.js")
    assert module.status_code == 200 and module.mimetype == "text/javascript"
    assert b"render" in module.data
    page = client.get("/data/plugin_entry.html", query_string={"name": "attnflows"})
    assert page.status_code == 200 and b'import("./index.js")' in page.data


def test_the_entry_module_preloads_every_module_of_the_tab():
    import re

    from attnflows_tb.plugin import STATIC_DIR

    listed = re.search(r"MODULES = \[(.*?)\];", (STATIC_DIR / "index.js").read_text(), re.S).group(1)
    modules = sorted(re.findall(r'"([\w.]+\.js)"', listed))
    assert modules == sorted(p.name for p in STATIC_DIR.glob("*.js") if p.name != "index.js")


def test_a_plugin_that_cannot_start_leaves_tensorboard_running():
    assert AttentionFlowsLoader().load(object()) is None


def test_is_active_is_false_without_runs_and_when_listing_fails(tmp_path):
    from tensorboard.plugins.base_plugin import TBContext

    from attnflows_tb.plugin import AttentionFlowsPlugin

    class Failing:
        def list_runs(self, ctx=None, *, experiment_id):
            raise RuntimeError("data server went away")

    assert AttentionFlowsPlugin(TBContext(logdir=str(tmp_path))).is_active() is False
    assert AttentionFlowsPlugin(TBContext(logdir=None)).is_active() is False
    assert AttentionFlowsPlugin(TBContext(logdir="gs://bucket/logs")).is_active() is False
    assert AttentionFlowsPlugin(TBContext(logdir=str(tmp_path), data_provider=Failing())).is_active() is False


# ---------------------------------------------------------------------- /runs
@pytest.mark.parametrize("which", ["client", "legacy_client"])
def test_runs_lists_every_run_with_snapshots_and_nothing_outside_the_logdir(which, request):
    runs, skipped = runs_by_name(request.getfixturevalue(which))
    assert set(runs) == LISTED
    assert [s["run"] for s in skipped] == ["probelink"]
    assert "symbolic link" in skipped[0]["reason"]


def test_runs_entry_has_the_documented_fields(client, logdir):
    runs, _ = runs_by_name(client)
    run = runs["sweep/lr_1"]
    assert run["steps"] == [0, 10, 20] and run["kinds"] == ["step", "step", "step"]
    assert run["model"]["class"] == "BertForSequenceClassification" and run["model"]["identity"]
    assert run["streams"] == {"self": {"layers": 2, "heads": 4, "rows": "all", "top_k": None, "kv_heads": None}}
    assert run["probe_id"] == open_run(logdir / "sweep" / "lr_1").probe_id
    assert run["num_examples"] == 6 and run["label_names"] == ["negative", "positive"]
    assert run["classification_position"] == "first" and runs["gpt"]["classification_position"] == "last"
    assert run["hparams"] == {"learning_rate": 1e-3, "seed": 0}
    assert run["status"] == "finished" and run["problems"] == []
    assert list(runs["t5"]["streams"]) == ["encoder", "decoder", "cross"]


def test_runs_shows_skipped_shards_as_problems_without_paths(client, logdir):
    runs, _ = runs_by_name(client)
    assert runs["corrupt"]["steps"] == [0, 20]
    assert [p["file"] for p in runs["corrupt"]["problems"]] == ["step-000000000010.h5"]
    assert runs["extsummary"]["steps"] == [0, 20] and "ExternalLink" in runs["extsummary"]["problems"][0]["reason"]
    assert runs["snaplink"]["steps"] == [0, 10] and "symbolic link" in runs["snaplink"]["problems"][0]["reason"]
    text = json.dumps(runs)
    assert str(logdir) not in text and "/tmp" not in text


# --------------------------------------------------------------------- /probe
def test_probe_has_texts_tokens_labels_and_predictions_per_step(client, logdir):
    body = get(client, "probe", run="sweep/lr_1").json
    run = open_run(logdir / "sweep" / "lr_1")
    assert body["steps"] == [0, 10, 20] and body["label_names"] == ["negative", "positive"]
    assert [e["text"] for e in body["examples"]] == run.texts
    assert body["examples"][0]["tokens"] == run.tokens(0) and body["examples"][0]["label"] == 0
    assert body["examples"][0]["word_ids"][0] == -1 and body["examples"][0]["truncated"] is False
    assert body["predictions"] == [run.predictions(s).tolist() for s in (0, 10, 20)]
    confidence = np.array(body["confidence"])
    assert confidence.shape == (3, 6) and ((confidence >= 0.5) & (confidence <= 1)).all()
    labels = np.array(run.labels)
    assert body["accuracy"] == pytest.approx([float((run.predictions(s) == labels).mean()) for s in (0, 10, 20)], rel=1e-5)
    for flip in body["flips"]:
        assert set(flip) == {"example", "steps"} and set(flip["steps"]) <= {10, 20}


# ----------------------------------------------------------------- /attention
def test_attention_is_framed_float32_equal_to_the_reader(client, logdir):
    response = get(client, "attention", run="sweep/lr_1", example=2, step=10)
    assert response.status_code == 200 and response.mimetype == "application/octet-stream"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    n = int.from_bytes(response.data[:4], "little")
    assert (4 + n) % 4 == 0
    header, values = unframe(response.data)
    expected = open_run(logdir / "sweep" / "lr_1").attention(2, 10)
    np.testing.assert_array_equal(values, expected)
    assert header["shape"] == list(expected.shape) and header["layers"] == [0, 1] and header["heads"] == [0, 1, 2, 3]
    assert header["query_tokens"] == header["key_tokens"] == open_run(logdir / "sweep" / "lr_1").tokens(2)
    assert (header["run"], header["example"], header["step"], header["stream"]) == ("sweep/lr_1", 2, 10, "self")


def test_attention_of_one_layer_and_one_head(client, logdir):
    expected = open_run(logdir / "sweep" / "lr_1").attention(1, 20)
    header, values = unframe(get(client, "attention", run="sweep/lr_1", example=1, step=20, layer=1).data)
    assert header["shape"][:2] == [1, 4] and header["layers"] == [1]
    np.testing.assert_array_equal(values[0], expected[1])
    header, values = unframe(get(client, "attention", run="sweep/lr_1", example=1, step=20, layer=1, head=3).data)
    assert header["shape"][:2] == [1, 1] and header["heads"] == [3]
    np.testing.assert_array_equal(values[0, 0], expected[1, 3])


def test_attention_of_each_stream_of_an_encoder_decoder(client, logdir):
    run = open_run(logdir / "t5")
    default, _ = unframe(get(client, "attention", run="t5", example=0, step=5).data)
    assert default["stream"] == "encoder"
    header, values = unframe(get(client, "attention", run="t5", example=0, step=5, stream="cross").data)
    assert header["query_tokens"][0] == "<start>" and header["key_tokens"] == run.tokens(0)
    np.testing.assert_array_equal(values, run.attention(0, 5, "cross"))


# ------------------------------------------------------------------- /summary
def test_summary_has_change_from_step_zero_per_layer_and_head(client, logdir):
    body = get(client, "summary", run="sweep/lr_1").json
    run = open_run(logdir / "sweep" / "lr_1")
    _, js = run.summary_timeline("js_from_start")
    assert body["steps"] == [0, 10, 20] and body["kinds"] == ["step"] * 3 and len(body["wall_times"]) == 3
    np.testing.assert_allclose(body["layer_change"], js.mean(axis=(1, 3)), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(body["head_change"], js.mean(axis=1), rtol=1e-5, atol=1e-9)
    assert np.array(body["head_change"])[0].max() == 0.0 and np.array(body["head_change"])[2].max() > 0
    assert np.array(body["head_cosine"]).shape == np.array(body["head_entropy"]).shape == (3, 2, 4)
    assert body["accuracy"] == get(client, "probe", run="sweep/lr_1").json["accuracy"]


# --------------------------------------------------------------------- /heads
@pytest.mark.parametrize("example", [None, 3])
def test_heads_grid_metrics(client, example):
    params = {"run": "sweep/lr_1", "step": 20} | ({} if example is None else {"example": example})
    body = get(client, "heads", **params).json
    assert body["example"] == example and body["pattern_classes"] == list(analysis.PATTERN_CLASSES)
    for name in ("change", "entropy", "cosine", "pattern", "to_cls", "to_sep", "to_self"):
        assert np.array(body["metrics"][name], dtype=float).shape == (2, 4), name
    assert set(np.ravel(body["metrics"]["pattern"])) <= set(range(len(analysis.PATTERN_CLASSES)))
    assert "importance" in body["metrics"] and body["entropy_baseline"] > 0


# ---------------------------------------------------------------------- /flow
def test_flow_raw_is_the_head_mean_per_layer(client, logdir):
    attention = open_run(logdir / "gpt").attention(1, 5)
    header, values = unframe(get(client, "flow", run="gpt", example=1, step=5, method="raw").data)
    np.testing.assert_allclose(values, attention.mean(axis=1), atol=1e-6)
    assert header["method"] == "raw" and header["heads"] is None
    _, values = unframe(get(client, "flow", run="gpt", example=1, step=5, method="raw", heads="0:1,1:2").data)
    np.testing.assert_allclose(values, attention[[0, 1], [1, 2]], atol=1e-6)


def test_flow_rollout_comes_from_the_analysis_library(client, logdir):
    attention = open_run(logdir / "gpt").attention(1, 5)
    header, values = unframe(get(client, "flow", run="gpt", example=1, step=5, method="rollout").data)
    np.testing.assert_allclose(values, analysis.rollout(attention), atol=1e-5)
    assert header["shape"] == list(attention.shape[:1] + attention.shape[2:]) and header["residual"] is True
    _, values = unframe(get(client, "flow", run="gpt", example=1, step=5, method="rollout", residual=0, heads="1,3").data)
    np.testing.assert_allclose(values, analysis.rollout(attention, residual=False, heads=[1, 3]), atol=1e-5)


def test_flow_values_and_trace_are_json(client, logdir):
    run = open_run(logdir / "sweep" / "lr_1")
    body = get(client, "flow", run="sweep/lr_1", example=0, step=10, method="flow").json
    assert body["method"] == "flow" and body["source"] == 0 and len(body["values"]) == len(run.tokens(0))
    trace = get(client, "flow", run="sweep/lr_1", example=0, step=10, method="trace", tau="0.05", source=2).json
    assert trace["source"] == 2 and trace["layer"] == 1 and trace["tau"] == 0.05 and trace["tokens"] == run.tokens(0)
    assert len(trace["influence"]) == len(run.tokens(0)) and isinstance(trace["reached"], list)
    for layer, i, j, weight in trace["edges"]:
        assert 0 <= layer <= 1 and 0 <= i < len(run.tokens(0)) and 0 <= j < len(run.tokens(0)) and weight >= 0.05 - 1e-6
    assert get(client, "flow", run="gpt", example=0, step=5, method="flow").json["source"] == len(run.tokens(0)) - 1


# ------------------------------------------------------------------- /compare
def test_compare_step_vs_step_with_trace(client):
    body = get(client, "compare", run="sweep/lr_1", step=0, other_run="sweep/lr_1", other_step=20, example=2).json
    assert np.array(body["head_js"]).shape == np.array(body["head_cosine"]).shape == (2, 4)
    assert len(body["layer_js"]) == len(body["layer_cosine"]) == 2
    assert body["most_changed"] and set(body["most_changed"][0]) >= {"layer", "head", "js", "cosine"}
    assert body["hparams"]["run"] == body["hparams"]["other_run"]
    assert {e[5] for e in body["trace"]["edges"]} <= {"shared", "first", "second"}
    assert all(len(e) == 6 for e in body["trace"]["edges"]) and body["trace"]["tokens"]


def test_compare_run_vs_run_averages_over_examples(client):
    body = get(client, "compare", run="sweep/lr_1", step=20, other_run="sweep/lr_2", other_step=20).json
    assert "trace" not in body
    assert np.allclose(body["head_js"], 0.0, atol=1e-6) and np.allclose(body["head_cosine"], 1.0, atol=1e-5)


def test_compare_needs_the_same_probe_set(client, logdir):
    response = get(client, "compare", run="sweep/lr_1", step=0, other_run="other_probe", other_step=0)
    assert_safe_error(response, 400, logdir)


# ----------------------------------------------------------------- error cases
ATT = {"run": "sweep/lr_1", "example": "0", "step": "0"}
ERRORS = [
    # missing parameters: 400
    ("probe", {}, 400), ("summary", {}, 400), ("heads", {"run": "sweep/lr_1"}, 400),
    ("attention", {"run": "sweep/lr_1", "step": "0"}, 400), ("attention", {"run": "sweep/lr_1", "example": "0"}, 400),
    ("attention", {"example": "0", "step": "0"}, 400), ("attention", ATT | {"run": ""}, 400),
    ("flow", ATT, 400), ("compare", {"run": "sweep/lr_1", "step": "0", "other_step": "0"}, 400),
    ("compare", {"run": "sweep/lr_1", "step": "0", "other_run": "sweep/lr_1"}, 400),
    # malformed or out-of-bounds numbers: 400
    ("attention", ATT | {"example": "abc"}, 400), ("attention", ATT | {"example": "-1"}, 400),
    ("attention", ATT | {"example": "1e3"}, 400), ("attention", ATT | {"example": " 1"}, 400),
    ("attention", ATT | {"step": "99999999999999999999"}, 400), ("attention", ATT | {"step": "0x10"}, 400),
    ("attention", ATT | {"layer": "2"}, 400), ("attention", ATT | {"layer": "0", "head": "4"}, 400),
    ("attention", ATT | {"head": "1"}, 400),
    ("flow", ATT | {"method": "trace", "tau": "2"}, 400), ("flow", ATT | {"method": "trace", "tau": "nan"}, 400),
    ("flow", ATT | {"method": "trace", "tau": "inf"}, 400), ("flow", ATT | {"method": "trace", "tau": "-0.1"}, 400),
    ("flow", ATT | {"method": "trace", "source": "9"}, 400), ("flow", ATT | {"method": "trace", "layer": "2"}, 400),
    ("flow", ATT | {"method": "rollout", "heads": "0:4"}, 400), ("flow", ATT | {"method": "rollout", "heads": "2:0"}, 400),
    ("flow", ATT | {"method": "rollout", "heads": "x"}, 400),
    ("flow", ATT | {"method": "rollout", "heads": ",".join(["0:1"] * 4097)}, 400),
    ("flow", ATT | {"method": "rollout", "heads": "0:1"}, 400),  # no head selected in layer 1
    ("flow", ATT | {"method": "rollout", "residual": "maybe"}, 400),
    ("flow", {"run": "t5", "example": "0", "step": "0", "stream": "cross", "method": "rollout"}, 400),
    ("compare", {"run": "sweep/lr_1", "step": "0", "other_run": "sweep/lr_1", "other_step": "0", "k": "0"}, 400),
    ("attention", ATT | {"stream": "x" * 70000}, 400),
    # unknown run, step, example, stream: 404
    ("probe", {"run": "nope"}, 404), ("attention", ATT | {"run": "nope"}, 404),
    ("attention", ATT | {"step": "5"}, 404), ("attention", ATT | {"example": "6"}, 404),
    ("attention", ATT | {"stream": "cross"}, 404), ("summary", {"run": "sweep/lr_1", "stream": "decoder"}, 404),
    ("heads", {"run": "sweep/lr_1", "step": "7"}, 404), ("heads", {"run": "sweep/lr_1", "step": "0", "example": "6"}, 404),
    ("flow", ATT | {"method": "raw", "step": "3"}, 404),
    ("compare", {"run": "sweep/lr_1", "step": "0", "other_run": "nope", "other_step": "0"}, 404),
    ("compare", {"run": "sweep/lr_1", "step": "0", "other_run": "gpt", "other_step": "7"}, 404),
    ("attention", {"run": "corrupt", "example": "0", "step": "10"}, 404),
    # unknown method: 405
    ("flow", ATT | {"method": "gradient"}, 405), ("flow", ATT | {"method": "RAW"}, 405),
]


@pytest.mark.parametrize(("route", "params", "code"), ERRORS, ids=[f"{r}-{c}-{i}" for i, (r, _, c) in enumerate(ERRORS)])
def test_errors_have_the_documented_status_and_a_safe_body(client, logdir, route, params, code):
    assert_safe_error(get(client, route, **params), code, logdir)


def test_other_http_methods_are_refused(client, logdir):
    response = client.post(f"{PREFIX}/attention", query_string=ATT)
    assert_safe_error(response, 405, logdir)
    assert "GET" in response.headers["Allow"]


HOSTILE_NAMES = ["../sweep/lr_1", "sweep/../sweep/lr_1", "..", "../outside/secret_run", "/etc/passwd", "sweep\\lr_1",
                 "..\\outside", "sweep/./lr_1", "sweep//lr_1", "./sweep/lr_1", "escape", "escape_data", "probelink",
                 "%2e%2e/outside", "%252e%252e/outside", "sweep/lr_1\x00", "C:\\Windows"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_run_names_are_not_found_and_read_nothing(client, logdir, outside, name):
    for route, params in (("attention", ATT), ("probe", {}), ("summary", {}), ("heads", {"step": "0"})):
        response = get(client, route, **(params | {"run": name}))
        assert response.status_code in (400, 404)
        assert_safe_error(response, response.status_code, logdir)
    assert outside.reads() == []


def test_an_absolute_path_to_a_real_run_is_not_a_run_name(client, logdir, outside):
    assert_safe_error(get(client, "probe", run=str(logdir / "sweep" / "lr_1")), 404, logdir)
    assert_safe_error(get(client, "probe", run=str(outside.root / "secret_run")), 404, logdir)
    assert outside.reads() == []


@pytest.mark.parametrize("raw", ["run=%2e%2e%2foutside%2fsecret_run", "run=%2E%2E/outside", "run=..%5coutside",
                                 "run=%2fetc%2fpasswd", "run=sweep%2flr_1%2f..%2f..%2f..%2foutside"])
def test_encoded_traversal_in_the_query_is_not_found(client, logdir, outside, raw):
    response = client.get(f"{PREFIX}/attention?{raw}&example=0&step=0")
    assert_safe_error(response, 404, logdir)
    assert outside.reads() == []


@pytest.mark.parametrize(("run", "example"), [("extlink", 0), ("virtual", 1)])
def test_hdf5_links_out_of_the_run_are_refused_and_reported(client, logdir, outside, run, example):
    response = get(client, "attention", run=run, example=example, step=10)
    assert_safe_error(response, 404, logdir)
    for method in ("raw", "rollout"):
        assert_safe_error(get(client, "flow", run=run, example=example, step=10, method=method), 404, logdir)
    assert outside.reads() == []
    assert get(client, "attention", run=run, example=example, step=20).status_code == 200
    problems = runs_by_name(client)[0][run]["problems"]
    assert [p["file"] for p in problems] == ["step-000000000010.h5"]
    assert "/tmp" not in problems[0]["reason"]


def test_snapshot_symlinks_and_links_in_summaries_read_nothing(client, logdir, outside):
    assert_safe_error(get(client, "attention", run="snaplink", example=0, step=20), 404, logdir)
    assert_safe_error(get(client, "attention", run="extsummary", example=0, step=10), 404, logdir)
    assert get(client, "runs").status_code == 200
    assert outside.reads() == []


STATIC_ERRORS = ["static/../plugin.py", "static/%2e%2e/plugin.py", "static/..%2fplugin.py", "static/", "static",
                 "static/missing.js", "static//etc/passwd", "static/%2fetc%2fpasswd", "static/..\\plugin.py",
                 "static/index.js/..", "plugin.py", "static/__init__.py"]


@pytest.mark.parametrize("path", STATIC_ERRORS)
def test_static_files_come_only_from_the_allow_list(client, logdir, path):
    response = client.get(f"{PREFIX}/{path}")
    assert response.status_code == 404
    assert b"import" not in response.data and str(logdir).encode() not in response.data


def test_static_allow_list_serves_the_frontend_modules(client):
    from attnflows_tb.plugin import STATIC_DIR, static_files

    names = static_files()
    assert "index.js" in names and all(not n.startswith(".") for n in names)
    for name in names:
        response = get(client, f"static/{name}")
        assert response.status_code == 200 and response.data == (STATIC_DIR / name).read_bytes()
        assert response.headers["X-Content-Type-Options"] == "nosniff"

"""Hypothesis fuzz of every route's query: never a 5xx, never a path or traceback, never a read outside the logdir."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import GOOD_RUNS, HOSTILE_RUNS, PREFIX

ROUTES = ("runs", "probe", "attention", "summary", "heads", "flow", "compare", "aggregate", "explain", "lifetimes",
          "index.js", "static/api.js",
          "static/../plugin.py", "static/%2e%2e/runs.py")
NAMES = list(GOOD_RUNS) + list(HOSTILE_RUNS) + [
    "", ".", "..", "../", "%2e%2e", "%2e%2e/outside", "..%2foutside", "/etc/passwd", "C:\\x", "sweep\\lr_1",
    "sweep/../gpt", "../outside/secret_run", "sweep/lr_1/../../../outside", "~", "\u202e", "sweep/lr_1\n",
]
NUMBERS = st.one_of(
    st.integers(-3, 40).map(str), st.sampled_from(["", "1e3", "0x1", "1.5", "-0", "99999999999999999999", "nan",
                                                   "inf", " 2", "2 ", "０", "NaN", "1,2"]),
    st.text(max_size=8),
)
TEXT = st.one_of(st.sampled_from(NAMES), st.text(max_size=24))
RAW_SAFE = "%/.:\\~"  # left unescaped in the raw variant
QUERY = st.fixed_dictionaries({}, optional={
    "run": TEXT, "other_run": TEXT,
    "example": NUMBERS, "step": NUMBERS, "other_step": NUMBERS, "layer": NUMBERS, "head": NUMBERS,
    "source": NUMBERS, "k": NUMBERS,
    "tau": st.one_of(NUMBERS, st.floats(allow_nan=True, allow_infinity=True).map(repr)),
    "stream": st.one_of(st.sampled_from(["self", "encoder", "decoder", "cross", "../self", ""]), st.text(max_size=8)),
    "method": st.one_of(st.sampled_from(["raw", "rollout", "flow", "trace", "RAW", "", "../raw"]), st.text(max_size=8)),
    "heads": st.one_of(st.sampled_from(["0:1,1:2", "1", "0:99", "x", ",", "0:", ":1", "1:1:1"]),
                       st.lists(st.integers(0, 5).map(str), max_size=6).map(",".join), st.text(max_size=12)),
    "residual": st.sampled_from(["0", "1", "true", "maybe", ""]),
    "selection": st.one_of(st.sampled_from(["all", "flipped", "class:0", "class:9", "class:", "class:-1", ""]),
                           st.text(max_size=10)),
    "mode": st.one_of(st.sampled_from(["mean", "any_head", ""]), st.text(max_size=8)),
    "view": st.one_of(st.sampled_from(["raw", "rollout", "flow", "trace", ""]), st.text(max_size=8)),
})


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(route=st.sampled_from(ROUTES), query=QUERY, encode=st.booleans())
def test_fuzzed_queries_never_fail_the_server_or_read_outside(client, logdir, outside, route, query, encode):
    if encode:
        query_string = urlencode(query)
    else:  # unencoded, as a hostile client may send it (percent sequences stay for the server to decode)
        query_string = "&".join(f"{key}={quote(value, safe=RAW_SAFE)}" for key, value in query.items())
    response = client.get(f"{PREFIX}/{route}?{query_string}")
    assert response.status_code < 500, (route, query, response.data[:300])
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if response.status_code >= 400 and response.mimetype == "application/json":
        body = response.get_data(as_text=True)
        assert set(json.loads(body)) == {"error"}
        assert "Traceback" not in body and str(logdir) not in body and str(outside.root) not in body
        assert "/tmp" not in body and "/work" not in body
    assert outside.reads() == []

"""What each route returns, as pure ``*_impl`` functions over open runs (docs/http_api.md).

Routes in :mod:`.plugin` parse the query (:mod:`.params`), look the run up and call these;
unit tests call them directly. Values that depend on the run (example, step, stream,
layer, head, source) are checked against it by :mod:`.run_access`: an unknown example, step or
stream is a :class:`~.errors.NotFound`, a value out of the run's bounds a
:class:`~.errors.BadRequest`. Tensors are framed by :mod:`.wire_format`. All the attention maths
comes from :mod:`attnflows_callback.analysis`.
"""

from __future__ import annotations

import numpy as np

from attnflows_callback import analysis

from . import derived
from . import display as display_options
from . import reduced, registry
from .display import Display
from .errors import BadRequest, MethodNotAllowed, error_body, safe_text  # noqa: F401  (error_body re-exported)
from .params import resolve_heads
from .run_access import (CROSS_STREAMS, check_example, check_index, check_step, check_stream, classification_source,
                         head_selection, read_attention, shown_attention)
from .run_caches import AttentionCache, OpenRun
from .wire_format import BINARY, frame, numbers, unframe  # noqa: F401  (re-exported)

STATUSES = ("running", "finished", "failed", "interrupted", "unknown")
FLOW_METHODS = ("raw", "rollout", "flow", "trace")  # the /flow answers; the tab's menu is registry.FLOW_METHODS
HEAD_POSITION_METRICS = {"to_cls": "cls", "to_sep": "sep", "to_self": "self"}  # contract name -> head_metrics key
SUMMARY_METRICS = {"head_change": "js_from_start", "head_cosine": "cosine_from_start", "head_entropy": "entropy"}
DEFAULT_TAU = 0.1
# What each /flow answer is called when a run with only the classification row cannot give it.
FULL_ROWS_WHAT = {"rollout": "rollout", "flow": "max-flow", "trace": "the attention flow trace",
                  "raw": "the attention flow trace", "per_head": "the per-head graph"}
_VIEW_MEASURE = {"rollout": "rollout", "flow": "flow"}  # a view's bars: rollout or max-flow; else the trace
DEFAULT_MOST_CHANGED = 10


# --------------------------------------------------------------------- /runs
def run_listing_impl(name: str, entry: OpenRun) -> dict:
    """One run's entry in /runs."""
    run = entry.run
    steps = run.steps.tolist()
    model = run.meta.get("model", {})
    status = run.status
    reason = status.get("reason")
    status = status.get("status", "unknown")
    return {
        "run": name,
        "steps": steps,
        "kinds": [run.snapshot_info(s).kind for s in steps],
        "model": {k: model.get(k) for k in ("class", "name_or_path", "identity")},
        "streams": {s: {**dict(zip(("layers", "heads"), run.stream_shape(s))), **reduced.listing(run.meta, s)}
                    for s in entry.run.streams},
        "probe_id": run.probe_id,
        "num_examples": run.num_examples,
        "label_names": run.label_names,
        "classification_position": run.meta.get("classification_position", "first"),
        "hparams": run.meta.get("hparams", {}),
        "status": status if status in STATUSES else "unknown",
        "status_reason": safe_text(reason) if isinstance(reason, str) and reason else None,
        "problems": entry.problems(),
        "notes": [safe_text(note) for note in run.notes],
        "view_default": _view_default(run),
    }


def _view_default(run) -> dict:
    """The display the tab opens this run with (:func:`.display.run_default`, from its first example)."""
    if not run.num_examples:
        return display_options.run_default([], None)
    word_ids = run.word_ids(0)
    return display_options.run_default(run.tokens(0), None if word_ids is None else list(word_ids))


def runs_impl(listings: list[dict], skipped: list[dict] | None = None) -> dict:
    """/runs: every run that holds attention snapshots; ``skipped``: runs that could not be opened.

    Example:
        >>> runs_impl([{"run": "lr_b"}, {"run": "lr_a"}])
        {'runs': [{'run': 'lr_a'}, {'run': 'lr_b'}], 'skipped': []}
    """
    return {"runs": sorted(listings, key=lambda r: r["run"]), "skipped": skipped or []}


# -------------------------------------------------------------------- /probe
def probe_impl(name: str, entry: OpenRun) -> dict:
    """/probe: texts, tokens, labels, and predictions with their confidence at every step."""
    run = entry.run
    steps = run.steps.tolist()
    examples = []
    for i in range(run.num_examples):
        word_ids, sequence_ids = run.word_ids(i), run.sequence_ids(i)
        examples.append({
            "index": i,
            "text": run.texts[i],
            "text_pair": None if run.text_pairs is None else run.text_pairs[i],
            "label": None if run.labels is None else run.labels[i],
            "tokens": run.tokens(i),
            "word_ids": None if word_ids is None else [int(w) for w in word_ids],
            "sequence_ids": None if sequence_ids is None else [int(w) for w in sequence_ids],
            "truncated": run.truncated[i],
        })
    predictions = confidence = accuracy = None
    flips = []
    probabilities = [run.probabilities(s) for s in steps]
    if steps and all(p is not None for p in probabilities):
        stacked = np.stack(probabilities)  # [S, E, C]
        chosen = stacked.argmax(axis=2)
        predictions = chosen.tolist()
        confidence = numbers(np.take_along_axis(stacked, chosen[..., None], axis=2)[..., 0])
        accuracy = _accuracy(chosen, run.labels, stacked.shape[2])
        flips = _flips(steps, chosen)
    return {
        "run": name,
        "label_names": run.label_names,
        "examples": examples,
        "steps": steps,
        "predictions": predictions,
        "confidence": confidence,
        "accuracy": accuracy,
        "flips": flips,
    }


def _accuracy(predictions: np.ndarray, labels, classes: int) -> list[float] | None:
    """Probe accuracy per step ([S]); None without labels, or labels the classifier cannot output."""
    if labels is None or not len(labels) or max(labels) >= classes:
        return None
    return numbers((predictions == np.asarray(labels)[None, :]).mean(axis=1))


def _flips(steps: list[int], predictions: np.ndarray) -> list[dict]:
    per_example = analysis.prediction_flips(steps, predictions)
    return [{"example": i, "steps": [int(s) for s in at]} for i, at in enumerate(per_example) if at]


# ---------------------------------------------------------------- /attention
def attention_impl(name: str, entry: OpenRun, cache: AttentionCache, *, example: int, step: int,
                   stream: str | None = None, layer: int | None = None, head: int | None = None,
                   display: Display = Display()) -> bytes:
    """/attention: ``[L, H, Tq, Tk]`` (or one layer, or one head) as framed float32.

    With a ``display`` other than raw, the attention as the view shows it (:mod:`.display`) over its
    units, and the header's ``view`` says what was hidden; the stored data is not changed.
    """
    stream = check_stream(entry, stream)
    check_example(entry, example)
    check_step(entry, step)
    layers, heads = entry.run.stream_shape(stream)
    if head is not None and layer is None:
        raise BadRequest("parameter 'head' requires 'layer'")
    layer_list, head_list = list(range(layers)), list(range(heads))
    if layer is not None:
        check_index(layer, layers, "layer")
        attention, layer_list = read_attention(entry, cache, example, step, stream, layer), [layer]  # that layer alone
        if head is not None:
            check_index(head, heads, "head")
            attention, head_list = attention[:, head : head + 1], [head]
    else:
        attention = read_attention(entry, cache, example, step, stream)
    query_tokens, key_tokens = entry.run.stream_tokens(example, stream)
    if attention.shape[-2] == 1 and len(query_tokens) > 1:  # rows="cls": the classification position's row only
        query_tokens = [query_tokens[classification_source(entry, len(query_tokens))]]
    shown = shown_attention(entry, example, stream, attention, display)
    if shown.info is not None:
        attention, query_tokens, key_tokens = shown.attention, shown.labels, shown.labels
    header = {"run": name, "example": example, "step": step, "stream": stream, "layers": layer_list,
              "heads": head_list, "query_tokens": query_tokens, "key_tokens": key_tokens, "view": shown.info}
    return frame(header, attention)


# ------------------------------------------------------------------ /summary
def summary_impl(name: str, entry: OpenRun, *, stream: str | None = None) -> dict:
    """/summary: per-step layer and head change from step 0, entropy, and accuracy (no full tensors)."""
    stream = check_stream(entry, stream)
    run = entry.run
    steps = run.steps.tolist()
    out = {"run": name, "stream": stream, "steps": steps,
           "kinds": [run.snapshot_info(s).kind for s in steps],
           "wall_times": [run.snapshot_info(s).wall_time for s in steps]}
    for key, metric in SUMMARY_METRICS.items():
        _, values = run.summary_timeline(metric, stream)  # [S, E, L, H], NaN where not stored
        change = analysis.summary_timeline_change(values)
        out[key] = numbers(change["head"])
        if key == "head_change":
            out["layer_change"] = numbers(change["layer"])
    probabilities = [run.probabilities(s) for s in steps]
    out["accuracy"] = None
    if steps and all(p is not None for p in probabilities):
        stacked = np.stack(probabilities)
        out["accuracy"] = _accuracy(stacked.argmax(axis=2), run.labels, stacked.shape[2])
    return out


# -------------------------------------------------------------------- /heads
def heads_impl(name: str, entry: OpenRun, cache: AttentionCache, *, step: int, example: int | None = None,
               stream: str | None = None) -> dict:
    """/heads: head-grid metrics ``[L][H]`` at one step, for one example or averaged over the probe set."""
    stream = check_stream(entry, stream)
    check_step(entry, step)
    if example is not None:
        check_example(entry, example)
    run = entry.run
    layers, heads = run.stream_shape(stream)
    examples = list(range(run.num_examples)) if example is None else [example]
    summary = run.summary(step, stream)  # {metric: [E, L, H]} stored with the snapshot
    missing = np.full((1, layers, heads), np.nan)

    def from_summary(metric: str) -> np.ndarray:
        values = summary.get(metric)
        return analysis.summary_timeline_change((missing if values is None else values[examples])[None])["head"][0]

    metrics = {"change": from_summary("js_from_start"), "entropy": from_summary("entropy"),
               "cosine": from_summary("cosine_from_start")}
    out: dict = {}
    patterns = baseline = None
    cls_row_only = reduced.stream_reduction(run.meta, stream)["rows"] == "cls"
    if stream not in CROSS_STREAMS and not cls_row_only:  # where heads look, and their pattern: over every row
        per_example: dict[str, list] = {}
        patterns, baseline = [], []
        for i in examples:
            found = derived.example_heads(entry, cache, i, step, stream, warm=example is not None)
            for metric, value in found.metrics.items():
                per_example.setdefault(metric, []).append(value)
            patterns.append(found.pattern)
            baseline.append(found.baseline)
        averaged = {metric: np.mean(values, axis=0) for metric, values in per_example.items()}
        if np.isnan(metrics["entropy"]).all():
            metrics["entropy"] = averaged["entropy"]
        for contract_name, metric in HEAD_POSITION_METRICS.items():
            metrics[contract_name] = averaged.pop(metric)
        metrics.update((metric, value) for metric, value in averaged.items() if metric != "entropy")
    out = {key: numbers(value) for key, value in metrics.items()}
    out["pattern"] = None if patterns is None else _mode(np.stack(patterns)).tolist()
    out["importance"] = numbers(from_summary("importance")) if "importance" in summary else None
    for contract_name in HEAD_POSITION_METRICS:
        out.setdefault(contract_name, None)
    needs_full_rows = sorted([*HEAD_POSITION_METRICS, "pattern"]) if cls_row_only and stream not in CROSS_STREAMS else []
    return {"run": name, "step": step, "stream": stream, "example": example, "metrics": out,
            "needs_full_rows": needs_full_rows, "kv_heads": reduced.stream_kv_heads(run.meta, stream),
            "pattern_classes": list(analysis.PATTERN_CLASSES),
            "entropy_baseline": None if baseline is None else round(float(np.mean(baseline)), 6)}


def _mode(classes: np.ndarray) -> np.ndarray:
    """The most frequent class per head over examples ``[E, L, H] -> [L, H]`` (ties: the lower class)."""
    counts = np.stack([(classes == c).sum(axis=0) for c in range(len(analysis.PATTERN_CLASSES))])
    return counts.argmax(axis=0)


# --------------------------------------------------------------------- /flow
def flow_impl(name: str, entry: OpenRun, cache: AttentionCache, *, example: int, step: int, method: str,
              stream: str | None = None, source: int | None = None, layer: int | None = None,
              tau: float = DEFAULT_TAU, heads: list | None = None, residual: bool = True,
              view: str | None = None, display: Display = Display()) -> bytes | dict:
    """/flow: raw or rolled-out attention (framed float32), max-flow values or a trace (JSON).

    A trace with ``view`` (a name in :data:`.registry.FLOW_METHODS`) holds what the flow view draws
    for that method: its ``edges`` and its per-input-token ``influence``, computed here; a method
    whose ``trace_mode`` is ``"any_head"`` adds ``edge_heads``, the heads that pass ``tau`` on each
    edge, strongest first. With a ``display`` other than raw, every answer is computed on the
    attention as the view shows it (:mod:`.display`): positions (``source``, ``tokens``, edges)
    are then the view's units, and ``display`` in the answer says what was hidden.
    """
    if method not in FLOW_METHODS:
        raise MethodNotAllowed(f"method must be one of {list(FLOW_METHODS)}")
    if view is not None and (method != "trace" or view not in registry.FLOW_METHODS):
        raise BadRequest(f"parameter 'view' goes with method 'trace' and must be one of {list(registry.FLOW_METHODS)}")
    stream = check_stream(entry, stream)
    check_example(entry, example)
    check_step(entry, step)
    if method != "raw":
        reduced.require_full_rows(entry.run.meta, stream, FULL_ROWS_WHAT.get(view or method, "the attention flow"))
    reduction = reduced.stream_reduction(entry.run.meta, stream)
    layers, heads_per_layer = entry.run.stream_shape(stream)
    pairs = resolve_heads(heads, layers, heads_per_layer)
    tokens, key_tokens = entry.run.stream_tokens(example, stream)
    shown = None
    if pairs is None and (method in derived.MEAN_METHODS or (method == "trace" and (view or "raw") in derived.MEAN_METHODS)):
        shown = derived.mean_shown(entry, cache, example, step, stream, display)  # the head mean, once per snapshot
        attention, token_length = shown.attention, len(key_tokens)
    else:
        attention = read_attention(entry, cache, example, step, stream)
        token_length = attention.shape[-1]
    if method != "raw" and (stream in CROSS_STREAMS or attention.shape[-1] != attention.shape[-2]):
        raise BadRequest("this method needs self-attention; the stream is cross-attention")
    if shown is None:
        shown = shown_attention(entry, example, stream, attention, display)
    if shown.info is not None:
        attention, tokens, key_tokens = shown.attention, shown.labels, shown.labels
    length = attention.shape[-1]
    source = shown.unit_of(classification_source(entry, token_length)) if source is None \
        else check_index(source, length, "source")
    layer = layers - 1 if layer is None else check_index(layer, layers, "layer")
    common = {"run": name, "example": example, "step": step, "stream": stream, "method": method,
              "heads": None if pairs is None else [list(p) for p in pairs], "display": shown.info}
    if method == "raw":
        return frame({**common, "query_tokens": tokens, "key_tokens": key_tokens},
                     _mean_over_heads(attention, pairs))
    selected, head_indices = head_selection(attention, pairs)
    if method == "rollout":
        rolled = analysis.rollout(selected, residual=residual, heads=head_indices)
        return frame({**common, "residual": residual, "tokens": tokens,
                      "reduction": reduced.top_k_note(reduction, "rollout")}, rolled)
    if method == "flow":
        values = analysis.attention_flow(selected, source, residual=residual, heads=head_indices)
        return {**common, "source": source, "residual": residual, "values": numbers(values), "tokens": tokens,
                "reduction": reduced.top_k_note(reduction, "flow")}
    if view is not None:
        chosen = registry.FLOW_METHODS[view]
        common["reduction"] = reduced.top_k_note(reduction, _VIEW_MEASURE.get(view, "trace"), tau,
                                                 per_head=chosen.trace_mode == "any_head")
        graph = registry.Graph(selected, head_indices, source, layer, tau, residual, mode=chosen.trace_mode)
        edges, influence = chosen.draw(graph)
        out = {**common, "view": view, "trace_mode": chosen.trace_mode, "source": source, "layer": layer,
               "tau": tau, "tokens": tokens,
               "edges": [[int(l), int(i), int(j), round(float(w), 6)] for l, i, j, w in np.asarray(edges)],
               "influence": numbers(influence)}
        if chosen.trace_mode == "any_head":
            out["edge_heads"] = edge_heads(selected, graph.trace, head_indices is None and pairs is not None)
        return out
    traced = analysis.trace(selected, source=source, layer=layer, tau=tau, heads=head_indices)
    common["reduction"] = reduced.top_k_note(reduction, "trace", tau)
    return {**common, "source": traced.source, "layer": traced.layer, "tau": traced.tau, "tokens": tokens,
            "reached": [traced.tokens_at(level).tolist() for level in range(traced.reached.shape[0])],
            "edges": [[int(e["layer"]), int(e["from_pos"]), int(e["to_pos"]), round(float(e["weight"]), 6)]
                      for e in traced.edges],
            "influence": numbers(traced.influence)}


def edge_heads(selected: np.ndarray, traced: analysis.Trace, averaged: bool) -> list[list[int]] | None:
    """Per edge of a per-head trace, the selected heads whose own weight passes tau, strongest first.

    None when the selection differs between layers (``averaged``): each layer's selected heads were
    averaged into one, so there are no single heads to name.
    """
    if averaged or traced.edge_heads is None:
        return None
    heads = np.asarray(traced.heads)
    out = []
    for edge, passing in zip(traced.edges, traced.edge_heads):
        weights = selected[int(edge["layer"]), heads, int(edge["from_pos"]), int(edge["to_pos"])]
        order = np.argsort(-weights, kind="stable")
        out.append([int(heads[k]) for k in order if passing[k]])
    return out


def _mean_over_heads(attention: np.ndarray, pairs: list[tuple[int, int]] | None) -> np.ndarray:
    """Per layer, the mean over the selected heads (zeros for a layer with none selected)."""
    if pairs is None:
        return attention.mean(axis=1)
    out = np.zeros((attention.shape[0],) + attention.shape[2:], dtype=np.float32)
    for layer in {p[0] for p in pairs}:
        out[layer] = attention[layer, [h for l, h in pairs if l == layer]].mean(axis=0)
    return out


# ------------------------------------------------------------------ /compare
def compare_impl(name: str, entry: OpenRun, other_name: str, other: OpenRun, cache: AttentionCache, *,
                 step: int, other_step: int, example: int | None = None, stream: str | None = None,
                 tau: float = DEFAULT_TAU, source: int | None = None, heads: list | None = None,
                 k: int = DEFAULT_MOST_CHANGED, mode: str = "mean", display: Display = Display()) -> dict:
    """/compare: head change measures between two snapshots, and the comparison trace of one example.

    The comparison trace follows ``mode`` (:data:`~attnflows_callback.analysis.TRACE_MODES`: the
    per-head graph with ``"any_head"``) on the attention as ``display`` shows it, in both snapshots.
    """
    if mode not in analysis.TRACE_MODES:
        raise BadRequest(f"parameter 'mode' must be one of {list(analysis.TRACE_MODES)}")
    if entry.run.probe_id != other.run.probe_id:
        raise BadRequest("the two runs were recorded on different probe sets; only runs with the same probe id compare")
    stream = check_stream(entry, stream)
    check_stream(other, stream)
    if entry.run.stream_shape(stream) != other.run.stream_shape(stream):
        raise BadRequest("the stream has a different number of layers or heads in the two runs")
    check_step(entry, step)
    check_step(other, other_step, "other_step")
    if example is not None:
        check_example(entry, example)
    layers, heads_per_layer = entry.run.stream_shape(stream)
    pairs = resolve_heads(heads, layers, heads_per_layer)
    if k < 1:
        raise BadRequest("parameter 'k' must be at least 1")
    k = min(k, layers * heads_per_layer)
    key = ("compare", step, str(other.run_dir), other.version, other_step, example, stream)
    change = entry.cached(key, lambda: _compare_measures(entry, other, cache, step, other_step, example, stream))
    js, cosine = change["js"], change["cosine"]
    out = {
        "run": name, "step": step, "other_run": other_name, "other_step": other_step, "stream": stream,
        "example": example,
        "head_js": numbers(js), "head_cosine": numbers(cosine),
        "layer_js": numbers(change["layer_js"]), "layer_cosine": numbers(change["layer_cosine"]),
        "most_changed": [
            {"layer": l, "head": h, "js": numbers(js[l, h]), "cosine": numbers(cosine[l, h])}
            for l, h, _ in analysis.most_changed_heads(change, k)
        ],
        "hparams": {"run": entry.run.meta.get("hparams", {}), "other_run": other.run.meta.get("hparams", {})},
    }
    if example is not None:
        for run_entry in (entry, other):
            reduced.require_full_rows(run_entry.run.meta, stream, "the comparison trace")
        a = read_attention(entry, cache, example, step, stream)
        b = read_attention(other, cache, example, other_step, stream)
        if stream in CROSS_STREAMS or a.shape[-1] != a.shape[-2]:
            raise BadRequest("the comparison trace needs self-attention; the stream is cross-attention")
        length = a.shape[-1]
        shown_a = shown_attention(entry, example, stream, a, display)
        shown_b = shown_attention(entry, example, stream, b, display)
        a, b, tokens = shown_a.attention, shown_b.attention, shown_a.labels
        source = shown_a.unit_of(classification_source(entry, length)) if source is None \
            else check_index(source, len(tokens), "source")
        a, head_indices = head_selection(a, pairs)
        b, _ = head_selection(b, pairs)
        traced = analysis.compare_trace(a, b, source=source, tau=tau, heads=head_indices, mode=mode)
        out["trace"] = {"source": source, "tau": tau, "tokens": tokens, "mode": mode,
                        "display": shown_a.info,
                        "edges": [[int(e["layer"]), int(e["from_pos"]), int(e["to_pos"]),
                                   round(float(e["weight_first"]), 6), round(float(e["weight_second"]), 6), str(label)]
                                  for e, label in zip(traced.edges, traced.labels)]}
    return out


def _compare_measures(entry, other, cache, step, other_step, example, stream) -> dict:
    examples = range(entry.run.num_examples) if example is None else [example]
    first = [read_attention(entry, cache, i, step, stream) for i in examples]
    second = [read_attention(other, cache, i, other_step, stream) for i in examples]
    return analysis.head_change(first, second)

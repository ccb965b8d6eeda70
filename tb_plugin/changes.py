"""What changed, beyond one example at one step: the routes /aggregate, /explain and /lifetimes.

- :func:`aggregate_impl`: head change and word influence averaged over a selection of probe
  examples (all, one class, or those whose prediction flipped), through
  :func:`attnflows_callback.aggregate.aggregate_run`.
- :func:`explain_impl`: why one example's prediction flipped, through
  :func:`attnflows_callback.explain.explain_flip` (the code behind ``attnflows explain``).
- :func:`lifetimes_impl`: for the graph the flow view draws at one step, at which snapshots each
  of its edges is present (bounded by :data:`.metadata.MAX_LIFETIME_EDGES` and
  :data:`.metadata.MAX_LIFETIME_STEPS`; the answer says when a bound cut it).

The maths lives in ``attnflows_callback``; these functions check the query against the run,
call it, and turn its errors into typed, safe ones.
"""

from __future__ import annotations

import re

import numpy as np

from attnflows_callback.aggregate import aggregate_run
from attnflows_callback.analysis.aggregate import select_examples
from attnflows_callback.explain import explain_flip

from . import derived, metadata, reduced, registry
from .api import (CROSS_STREAMS, DEFAULT_TAU, check_example, check_index, check_step, check_stream,
                  classification_source, head_selection, numbers, read_attention)
from .display import Display
from .errors import BadRequest, NotFound, safe_text
from .params import resolve_heads
from .runs import AttentionCache, OpenRun

READ_ERRORS = (OSError, KeyError, EOFError, RuntimeError)  # a shard damaged or holding a link out of the run
SELECTION = re.compile(r"^(all|flipped|class:[0-9]{1,6})$")
EXPLAIN_MODES = ("mean", "any_head")


def _self_attention(entry: OpenRun, stream: str | None) -> str:
    stream = check_stream(entry, stream)
    if stream in CROSS_STREAMS or stream == "decoder":
        raise BadRequest(f"stream {stream!r} is not self-attention over the input; "
                         f"use one of {[s for s in entry.run.streams if s not in CROSS_STREAMS + ('decoder',)]}")
    return stream


# ------------------------------------------------------------------ /aggregate
def aggregate_impl(name: str, entry: OpenRun, *, step: int, selection: str = "all", stream: str | None = None,
                   drop_special: bool = True, drop_punctuation: bool = False,
                   cache: AttentionCache | None = None) -> dict:
    """/aggregate: mean head change from the first snapshot and word influence over a selection of examples.

    ``selection`` is ``all``, ``flipped`` (prediction at ``step`` differs from the first snapshot's)
    or ``class:K`` (label K). A selection without examples is answered with ``count`` 0 and no values.
    ``drop_special`` and ``drop_punctuation``: the view under which word influence is computed.
    With a :class:`.derived.StepCache`, each example's row at each step is computed once, in the
    background: until all are ready this raises :class:`.derived.Pending` (the route answers ``pending``).
    """
    if not SELECTION.match(selection):
        raise BadRequest("parameter 'selection' must be 'all', 'flipped' or 'class:K' with K a label index")
    stream = _self_attention(entry, stream)
    check_step(entry, step)
    run = entry.run
    reduced.require_full_rows(run.meta, stream, "the aggregate over examples (word influence is a rollout)")
    if selection.startswith("class:"):
        if run.labels is None:
            raise BadRequest("this run's probe set has no labels: choose selection 'all' or 'flipped'")
        classes = sorted({int(y) for y in np.asarray(run.labels).tolist()})
        if int(selection[6:]) not in classes:
            raise BadRequest(f"selection class must be one of the probe labels {classes}")
    if selection == "flipped" and run.predictions(step) is None:
        raise BadRequest("this run holds no predictions (no classifier head): choose selection 'all' or 'class:K'")
    reference_step = int(run.steps[0])
    try:
        chosen = select_examples(selection, num_examples=run.num_examples, labels=run.labels,
                                 predictions_before=run.predictions(reference_step),
                                 predictions_after=run.predictions(step))
        if chosen.size == 0:  # an answer, not an error: e.g. nothing has flipped yet at this step
            return {"run": name, "step": step, "reference_step": reference_step, "stream": stream,
                    "selection": selection, "examples": [], "count": 0, "view": None, "heads": None,
                    "influence_by_role": None, "words": []}
        rows = derived.aggregate_rows(entry, cache, chosen.tolist(), (reference_step, step), stream, drop_special,
                                      drop_punctuation)
        found = aggregate_run(run, step, selection=selection, stream=stream, top_words=metadata.MAX_AGGREGATE_WORDS,
                              drop_special=drop_special, drop_punctuation=drop_punctuation, rows=rows)
    except (ValueError, IndexError) as err:
        raise BadRequest(str(err)) from None
    except READ_ERRORS as err:
        raise _unreadable(err) from None
    heads = found["heads"]
    return {"run": name, "step": step, "reference_step": found["steps"][0], "stream": stream,
            "selection": selection, "examples": found["examples"], "count": found["count"], "view": found["view"],
            "heads": {"js": {k: numbers(v) for k, v in heads["js"].items()},
                      "cosine": {k: numbers(v) for k, v in heads["cosine"].items()}, "source": heads["source"]},
            "influence_by_role": found["influence_by_role"],
            "words": [{**w, **{k: numbers(w[k]) for k in ("before", "after", "change")}} for w in found["words"]]}


# --------------------------------------------------------------------- /explain
def explain_impl(name: str, entry: OpenRun, *, example: int, step: int | None = None, stream: str | None = None,
                 tau: float = DEFAULT_TAU, mode: str = "mean", drop_special: bool = True,
                 drop_punctuation: bool = False) -> dict:
    """/explain: ``attnflows explain``'s answer for one example (the flip at ``step``, default its last).

    ``drop_special`` and ``drop_punctuation``: the view under which edges and influence are computed
    (``attnflows explain --raw`` is ``drop_special=False``).
    """
    if mode not in EXPLAIN_MODES:
        raise BadRequest(f"parameter 'mode' must be one of {list(EXPLAIN_MODES)}")
    stream = _self_attention(entry, stream)
    check_example(entry, example)
    if step is not None:
        check_step(entry, step)
    reduced.require_full_rows(entry.run.meta, stream, "the flip explanation (trace edges and influence)")
    try:
        found = explain_flip(entry.run, example, step, stream=stream, tau=tau, mode=mode, drop_special=drop_special,
                             drop_punctuation=drop_punctuation)
    except (ValueError, IndexError) as err:
        raise BadRequest(str(err)) from None
    except READ_ERRORS as err:
        raise _unreadable(err) from None
    return {**found, "run": name}


def _unreadable(err: Exception) -> NotFound:
    return NotFound(f"a snapshot of this run could not be read ({type(err).__name__}: {safe_text(err)}); "
                    "see the run's problems in /runs")


# ------------------------------------------------------------------- /lifetimes
def traced_steps(steps: list[int], current: int, limit: int) -> list[int]:
    """At most ``limit`` snapshots, spread evenly over ``steps``, keeping the first, the last and ``current``.

    Example:
        >>> traced_steps(list(range(0, 100, 10)), 50, 4)
        [0, 40, 50, 90]
        >>> traced_steps([0, 10, 20], 10, 64)
        [0, 10, 20]
    """
    if len(steps) <= limit:
        return list(steps)
    picks = {int(round(k)) for k in np.linspace(0, len(steps) - 1, max(2, limit - 1))}
    picks.add(steps.index(current))
    while len(picks) > limit:  # the current step pushed one too many: drop the pick nearest to it
        nearest = min((k for k in picks if steps[k] != current and k not in (0, len(steps) - 1)),
                      key=lambda k: abs(steps[k] - current))
        picks.discard(nearest)
    return [steps[k] for k in sorted(picks)]


def lifetimes_impl(name: str, entry: OpenRun, cache: AttentionCache, *, example: int, step: int, view: str = "raw",
                   stream: str | None = None, source: int | None = None, layer: int | None = None,
                   tau: float = DEFAULT_TAU, heads: list | None = None, residual: bool = True,
                   max_edges: int = metadata.MAX_LIFETIME_EDGES, max_steps: int = metadata.MAX_LIFETIME_STEPS) -> dict:
    """/lifetimes: the edges the flow view draws at ``step`` (method ``view``), and at which snapshots each is drawn.

    The graph at every traced snapshot is drawn with the same method, source, layer, tau and heads.
    ``present[e][k]`` is 1 when edge ``e`` is in the graph at ``steps[k]``; ``appeared[e]`` is the
    first snapshot of the unbroken run of presence that holds ``step`` (where the edge last
    appeared). ``capped`` says whether the edges or the steps were cut to their limits.
    """
    if view not in registry.FLOW_METHODS:
        raise BadRequest(f"parameter 'view' must be one of {list(registry.FLOW_METHODS)}")
    stream = _self_attention(entry, stream)
    check_example(entry, example)
    check_step(entry, step)
    run = entry.run
    reduced.require_full_rows(run.meta, stream, "edge lifetimes (a trace at every snapshot)")
    layers, heads_per_layer = run.stream_shape(stream)
    pairs = resolve_heads(heads, layers, heads_per_layer)
    tokens, _ = run.stream_tokens(example, stream)
    length = len(tokens)
    source = classification_source(entry, length) if source is None else check_index(source, length, "source")
    layer = layers - 1 if layer is None else check_index(layer, layers, "layer")
    method = registry.FLOW_METHODS[view]
    all_steps = [int(s) for s in run.steps]
    steps = traced_steps(all_steps, step, max_steps)

    def graph_at(at: int) -> dict[tuple[int, int, int], float]:
        if pairs is None and view in derived.MEAN_METHODS:  # the head mean is all these methods use
            selected, head_indices = derived.mean_shown(entry, cache, example, at, stream, Display()).attention, None
        else:
            selected, head_indices = head_selection(read_attention(entry, cache, example, at, stream), pairs)
        edges, _ = method.draw(registry.Graph(selected, head_indices, source, layer, tau, residual))
        return {(int(l), int(i), int(j)): float(w) for l, i, j, w in np.asarray(edges).reshape(-1, 4)}

    def graph_once(at: int) -> dict[tuple[int, int, int], float]:
        key = ("lifetime-graph", str(entry.run_dir), at, run.snapshot_info(at).identity, stream, example, view,
               source, layer, tau, residual, None if pairs is None else tuple(pairs))
        return derived.kept(cache, key, lambda: derived.Sized(graph_at(at)))

    graphs = {at: graph_once(at) for at in steps}
    current = sorted(graphs[step].items(), key=lambda item: -item[1])
    shown = current[:max_edges]
    present = [[int(edge in graphs[at]) for at in steps] for edge, _ in shown]
    here = steps.index(step)
    appeared = []
    for row in present:
        k = here
        while k > 0 and row[k - 1]:
            k -= 1
        appeared.append(steps[k])
    return {"run": name, "example": example, "step": step, "stream": stream, "view": view, "source": source,
            "layer": layer, "tau": tau, "tokens": tokens, "steps": steps,
            "edges": [[l, i, j, numbers(w)] for (l, i, j), w in shown], "present": present, "appeared": appeared,
            "capped": {"edges": len(current) > len(shown), "steps": len(steps) < len(all_steps),
                       "total_edges": len(current), "total_steps": len(all_steps)},
            "limits": {"edges": max_edges, "steps": max_steps}}

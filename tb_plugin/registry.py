"""What the tab offers, defined once and served to the browser at ``/registries``.

The browser builds its menus from these lists and checks the URL state against them, so a
flow method or a colour-by option is added here, in Python, and nowhere in JavaScript:

- :data:`FLOW_METHODS`: the *method* menu of the Attention-flow view. Each method turns one
  example's attention and the trace from the source into what the view draws (edges and one
  value per input token), on the server (``/flow?method=trace&view=<name>``).
- :data:`HEAD_METRICS`: what ``/heads`` returns per head; :data:`COLOUR_BY`: which of them
  the head grid can be coloured by.

Recipe (docs/extending.md): write the maths as a pure function in
``attnflows_callback/analysis/``, then register it with one :func:`register_flow_method` call.

Example:
    >>> [m.name for m in FLOW_METHODS.values()]
    ['raw', 'rollout', 'flow', 'per_head']
    >>> sorted(registries_impl())
    ['colour_by', 'display', 'flow_methods', 'head_metrics']
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from attnflows_callback import analysis

from . import display


@dataclass(frozen=True)
class Graph:
    """What a flow method is given: one example's attention, already restricted to the selected heads.

    ``attention`` is ``[L, H, T, T]``, ``heads`` the head indices to average (None: all of
    ``attention``'s heads), ``source`` and ``layer`` the resolved start of the flow, ``tau`` the
    request's threshold and ``residual`` its residual flag, ``mode`` the trace mode of the method
    (:data:`~attnflows_callback.analysis.TRACE_MODES`). ``trace`` is the
    :class:`~attnflows_callback.analysis.Trace` from there, computed only if a method asks for it.
    """

    attention: np.ndarray
    heads: list[int] | None
    source: int
    layer: int
    tau: float
    residual: bool
    mode: str = "mean"

    @functools.cached_property
    def trace(self) -> analysis.Trace:
        return analysis.trace(self.attention, source=self.source, layer=self.layer, tau=self.tau, heads=self.heads,
                              mode=self.mode)


@dataclass(frozen=True)
class FlowMethod:
    """One entry of the flow view's method menu.

    Args:
        name: the value in the URL (``method=``) and the query (``view=``).
        label: the menu text.
        draw: ``Graph -> (edges [E, 4] as (layer, from, to, weight), values [T] per input token)``.
        influence_label: the input bars' legend; ``{layer}`` is replaced by the source's layer.
        token_influence: the method whose per-token values the Token-influence view shows with this
            one selected (a method whose values are not a per-token total names another).
        needs_classification_head: only offered for runs with a classifier's logits.
        per_example: computed from one example's attention (every flow method so far).
        trace_mode: how the method's trace passes tau (:data:`~attnflows_callback.analysis.TRACE_MODES`):
            ``"any_head"`` draws the per-head graph, whose edges carry the heads that pass tau, and the
            comparison overlay traces the same way.
    """

    name: str
    label: str
    draw: Callable[[Graph], tuple[np.ndarray, np.ndarray]]
    influence_label: str
    token_influence: str = ""
    needs_classification_head: bool = False
    per_example: bool = True
    trace_mode: str = "mean"

    def served(self) -> dict:
        return {"name": self.name, "label": self.label, "influence_label": self.influence_label,
                "token_influence": self.token_influence or self.name,
                "needs_classification_head": self.needs_classification_head, "per_example": self.per_example,
                "trace_mode": self.trace_mode}


def _trace_edges(graph: Graph) -> np.ndarray:
    edges = graph.trace.edges
    return np.column_stack([edges["layer"], edges["from_pos"], edges["to_pos"], edges["weight"]]) if len(edges) \
        else np.zeros((0, 4))


def _raw(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    return _trace_edges(graph), graph.trace.influence


def _rollout(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    edges, row = analysis.rollout_paths(graph.attention, graph.source, graph.layer, graph.tau, heads=graph.heads)
    if not graph.residual:  # the edges follow the residual rollout; the bars, the rollout asked for
        row = analysis.rollout_row(graph.attention, graph.source, layer=graph.layer, residual=False, heads=graph.heads)
    return edges, row


def _max_flow(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    values = analysis.attention_flow(graph.attention, graph.source, residual=graph.residual, heads=graph.heads)
    return _trace_edges(graph), values


FLOW_METHODS: dict[str, FlowMethod] = {}


def register_flow_method(method: FlowMethod) -> FlowMethod:
    """Add ``method`` to the menu (after the others); its name must be new and URL-safe."""
    if not isinstance(method, FlowMethod):
        raise TypeError(f"method must be a FlowMethod, got {type(method).__name__}")
    if method.trace_mode not in analysis.TRACE_MODES:
        raise ValueError(f"trace_mode must be one of {list(analysis.TRACE_MODES)}, got {method.trace_mode!r}")
    if not method.name.isidentifier() or method.name in FLOW_METHODS or method.name == "trace":
        raise ValueError(f"method name must be a new identifier other than 'trace' and {sorted(FLOW_METHODS)}, "
                         f"got {method.name!r}")
    FLOW_METHODS[method.name] = method
    return method


register_flow_method(FlowMethod("raw", "raw attention", _raw, "traced attention reaching each input token",
                                token_influence="rollout"))  # raw attention has no per-token total
register_flow_method(FlowMethod("rollout", "rollout", _rollout, "rollout from the source at layer {layer}"))
register_flow_method(FlowMethod("flow", "max-flow", _max_flow, "max-flow from the source"))
register_flow_method(FlowMethod("per_head", "per-head graph (any head ≥ τ)", _raw,
                                "influence over the per-head graph",
                                trace_mode="any_head"))


@dataclass(frozen=True)
class HeadMetric:
    """One value per head that ``/heads`` returns (``metrics[name]``, ``[L][H]``).

    ``colour_by``: offered in the head grid's *colour by* menu; ``categorical``: values index
    ``pattern_classes``; ``from_zero``: the colour scale starts at 0; ``missing``: what to say
    when a run has no values for it.
    """

    name: str
    label: str
    unit: str = ""
    colour_by: bool = False
    categorical: bool = False
    from_zero: bool = False
    needs_classification_head: bool = False
    per_example: bool = True
    missing: str = "This snapshot does not hold that metric."

    def served(self) -> dict:
        return {"name": self.name, "label": self.label, "unit": self.unit, "colour_by": self.colour_by, "categorical": self.categorical,
                "from_zero": self.from_zero, "needs_classification_head": self.needs_classification_head,
                "per_example": self.per_example, "missing": self.missing}


HEAD_METRICS: dict[str, HeadMetric] = {m.name: m for m in (
    HeadMetric("change", "change from pre-trained", colour_by=True),
    HeadMetric("entropy", "entropy", "nats", colour_by=True, from_zero=True),
    HeadMetric("pattern", "pattern class", colour_by=True, categorical=True),
    HeadMetric("importance", "importance", colour_by=True, needs_classification_head=True,
               missing="Head importance needs a classification head and labels; choose another metric."),
    HeadMetric("cosine", "cosine similarity to pre-trained"),
    HeadMetric("to_cls", "attention to [CLS]"),
    HeadMetric("to_sep", "attention to [SEP]"),
    HeadMetric("to_self", "attention to itself"),
    HeadMetric("punctuation", "attention to punctuation"),
    HeadMetric("previous", "attention to the previous token"),
    HeadMetric("next", "attention to the next token"),
    HeadMetric("distance", "mean attention distance"),
    HeadMetric("confidence", "largest weight per row"),
)}

COLOUR_BY = tuple(name for name, metric in HEAD_METRICS.items() if metric.colour_by)


def registries_impl() -> dict:
    """/registries: the flow methods, head metrics, colour-by options and display options, in menu order."""
    return {"flow_methods": [m.served() for m in FLOW_METHODS.values()],
            "head_metrics": [m.served() for m in HEAD_METRICS.values()],
            "colour_by": list(COLOUR_BY),
            "display": display.served()}

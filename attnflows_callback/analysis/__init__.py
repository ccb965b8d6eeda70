"""Pure numpy/scipy analysis of attention: rollout, flow, trace, head metrics, change measures.

Attention for one example is a ``[L, H, Tq, Tk]`` array (layers, heads, query tokens, key tokens)
whose rows sum to 1. Every function checks its input and raises ValueError naming the argument.
See docs/analysis.md for formulas, sources and the flow algorithm.

The names load lazily (PEP 562), each from its submodule on first use: TensorBoard imports the
plugin, and with it this package, at start, and scipy's special functions alone take a third of
a second to import.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

# rollout and trace are cheap (numpy only) and share their names with their submodules, so
# they are bound now: a later `from .rollout import ...` must not leave the module in their place.
from .rollout import layer_attention, rollout, rollout_edges, rollout_paths, rollout_row  # noqa: E402
from .trace import EDGE_LABELS, TRACE_MODES, ComparisonTrace, Trace, compare_trace, trace  # noqa: E402

# public name -> the submodule that defines it (scipy-backed: loaded on first use)
_LAZY = {
    "CHANGE_MEASURES": "change",
    "head_change": "change",
    "head_cosine_similarity": "change",
    "head_js_divergence": "change",
    "most_changed_heads": "change",
    "prediction_flips": "change",
    "summary_timeline_change": "change",
    "attention_flow": "flow",
    "attention_flow_bounds": "flow",
    "METRIC_NAMES": "metrics",
    "PATTERN_CLASSES": "metrics",
    "PATTERN_THRESHOLDS": "metrics",
    "head_entropy": "metrics",
    "head_metrics": "metrics",
    "merge_word_pieces": "metrics",
    "pattern_class": "metrics",
    "pattern_scores": "metrics",
    "uniform_entropy": "metrics",
    "word_units": "metrics",
    "TOKEN_ROLES": "view",
    "VIEW_DEFAULTS": "view",
    "View": "view",
    "apply_view": "view",
    "drop_targets": "view",
    "keep_mask": "view",
    "keep_of_roles": "view",
    "kept_mass": "view",
    "mass_by_role": "view",
    "token_roles": "view",
    "word_view": "view",
    "TARGET_SETS": "view",
    "view_head_mean": "view",
    "view_keep": "view",
    "view_targets": "view",
}

__all__ = sorted([*_LAZY, "layer_attention", "rollout", "rollout_edges", "rollout_paths", "rollout_row", "EDGE_LABELS", "TRACE_MODES", "ComparisonTrace", "Trace",
                  "compare_trace", "trace"])


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)

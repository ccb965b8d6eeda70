"""Pure numpy/scipy analysis of attention: rollout, flow, trace, head metrics, change measures.

Attention for one example is a ``[L, H, Tq, Tk]`` array (layers, heads, query tokens, key tokens)
whose rows sum to 1. Every function checks its input and raises ValueError naming the argument.
See docs/analysis.md for formulas, sources and the flow algorithm.
"""

from .change import (
    CHANGE_MEASURES,
    head_change,
    head_cosine_similarity,
    head_js_divergence,
    most_changed_heads,
    prediction_flips,
    summary_timeline_change,
)
from .flow import attention_flow, attention_flow_bounds
from .metrics import (
    METRIC_NAMES,
    PATTERN_CLASSES,
    PATTERN_THRESHOLDS,
    head_entropy,
    head_metrics,
    merge_word_pieces,
    pattern_class,
    pattern_scores,
    uniform_entropy,
    word_units,
)
from .rollout import layer_attention, rollout
from .trace import EDGE_LABELS, TRACE_MODES, ComparisonTrace, Trace, compare_trace, trace
from .view import TOKEN_ROLES, VIEW_DEFAULTS, View, apply_view, drop_targets, keep_mask, kept_mass, mass_by_role, token_roles, word_view

__all__ = [
    "CHANGE_MEASURES",
    "EDGE_LABELS",
    "METRIC_NAMES",
    "PATTERN_CLASSES",
    "PATTERN_THRESHOLDS",
    "TOKEN_ROLES",
    "TRACE_MODES",
    "VIEW_DEFAULTS",
    "View",
    "ComparisonTrace",
    "Trace",
    "apply_view",
    "attention_flow",
    "attention_flow_bounds",
    "compare_trace",
    "drop_targets",
    "head_change",
    "head_cosine_similarity",
    "head_entropy",
    "head_js_divergence",
    "head_metrics",
    "keep_mask",
    "kept_mass",
    "layer_attention",
    "mass_by_role",
    "merge_word_pieces",
    "most_changed_heads",
    "pattern_class",
    "pattern_scores",
    "prediction_flips",
    "rollout",
    "summary_timeline_change",
    "token_roles",
    "trace",
    "uniform_entropy",
    "word_units",
    "word_view",
]

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
from .trace import EDGE_LABELS, ComparisonTrace, Trace, compare_trace, trace

__all__ = [
    "CHANGE_MEASURES",
    "EDGE_LABELS",
    "METRIC_NAMES",
    "PATTERN_CLASSES",
    "PATTERN_THRESHOLDS",
    "ComparisonTrace",
    "Trace",
    "attention_flow",
    "attention_flow_bounds",
    "compare_trace",
    "head_change",
    "head_cosine_similarity",
    "head_entropy",
    "head_js_divergence",
    "head_metrics",
    "layer_attention",
    "merge_word_pieces",
    "most_changed_heads",
    "pattern_class",
    "pattern_scores",
    "prediction_flips",
    "rollout",
    "summary_timeline_change",
    "trace",
    "uniform_entropy",
    "word_units",
]

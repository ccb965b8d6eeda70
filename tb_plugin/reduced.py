"""What a reduced run can show (``rows="cls"``, ``top_k``), and which heads share a key/value head.

A run recorded with ``rows="cls"`` holds one query row per head, the classification
position's, so everything computed over every row (the trace, rollout, max-flow, the
influence bars, edge lifetimes, the aggregate and the flip explanation, the head pattern and
where heads look on average) cannot be had from it. Those answers refuse with
:class:`~.errors.NeedsFullRows` (409, ``"needs_full_rows": true`` in the body) and the tab
shows the notice instead of drawing numbers that would be wrong. What works on the one row
(the timeline, the head change and entropy summaries, run comparison of heads) is served.

A run recorded with ``top_k`` keeps every row, sparsified: the trace at ``tau >= 1/k`` is
exact per head, rollout, max-flow and head averages lose each row's dropped mass. Those answers carry a
:func:`top_k_note` saying which.

Example:
    >>> meta = {"streams": {"self": {"layers": 2, "heads": 4, "rows": "cls", "top_k": None}}}
    >>> stream_reduction(meta, "self")
    {'rows': 'cls', 'top_k': None}
    >>> top_k_note({"rows": "all", "top_k": 10}, "trace", 0.1, per_head=True)["exact"]
    True
    >>> top_k_note({"rows": "all", "top_k": 10}, "rollout")["exact"]
    False
"""

from __future__ import annotations

from attnflows_callback.schema import key_value_heads

from .errors import NeedsFullRows

RECORD_FULL_ROWS = "record with rows='all' to see it"


def stream_reduction(meta: dict, stream: str) -> dict:
    """``{"rows": "all" | "cls", "top_k": k or None}`` of one stream, from run.json (older runs: full)."""
    info = (meta.get("streams") or {}).get(stream) or {}
    reduction = meta.get("reduction") or {}
    rows = info.get("rows", reduction.get("rows", "all"))
    top_k = info.get("top_k", reduction.get("top_k"))
    return {"rows": rows if rows in ("all", "cls") else "all", "top_k": top_k if isinstance(top_k, int) else None}


def stream_kv_heads(meta: dict, stream: str) -> list[int] | None:
    """The key/value head of each stored head of ``stream`` (grouped-query attention), or None.

    run.json's ``streams[stream]["kv_heads"]`` where the recorder wrote it; for older runs, from
    the model config it stored (``num_key_value_heads``); no config: no grouping.
    """
    info = (meta.get("streams") or {}).get(stream) or {}
    if "kv_heads" in info:
        stored = info["kv_heads"]
        ok = isinstance(stored, list) and len(stored) == info.get("heads") and all(isinstance(k, int) for k in stored)
        return stored if ok else None
    config = (meta.get("model") or {}).get("config") or {}
    found = key_value_heads(config, info.get("head_ids"))
    return found if found is not None and len(found) == info.get("heads") else None


def require_full_rows(meta: dict, stream: str, what: str) -> None:
    """Refuse (:class:`NeedsFullRows`) when ``stream`` holds only the classification row; ``what`` names the answer."""
    if stream_reduction(meta, stream)["rows"] == "cls":
        raise NeedsFullRows(f"{what} needs every attention row, and this run recorded only the classification "
                            f"token's row: rows='cls'; {RECORD_FULL_ROWS}")


def top_k_note(reduction: dict, method: str, tau: float | None = None, *, per_head: bool = False) -> dict | None:
    """What ``top_k`` means for an answer of ``method`` (``trace``, ``rollout``, ``flow``), or None if not reduced.

    A per-head trace keeps the edges where one head's weight is >= tau; a row summing to 1 has
    fewer than 1/tau of them, so with ``tau >= 1/k`` all are among its k kept weights and the trace
    is exact. Averaged over heads, or rolled out, the weights a head dropped (each at most 1/k)
    are missing from the sums: an approximation.
    """
    k = reduction.get("top_k")
    if k is None:
        return None
    if method == "trace" and per_head and tau is not None and tau * k >= 1:
        return {"top_k": k, "exact": True, "note": f"recorded with top_k={k}: this per-head trace at tau >= 1/{k} is exact"}
    what = {"trace": "this trace", "rollout": "rollout", "flow": "max-flow"}.get(method, method)
    return {"top_k": k, "exact": False,
            "note": f"recorded with top_k={k}: {what} is an approximation that misses each row's weights below its "
                    f"top {k} (each at most 1/{k}); record with rows='all' and no top_k for exact values"}


def listing(meta: dict, stream: str) -> dict:
    """What /runs adds to a stream's entry: its reduction and its key/value heads."""
    return {**stream_reduction(meta, stream), "kv_heads": stream_kv_heads(meta, stream)}

"""One bounded-cache helper (LRU) and one module of limits serve the reader and the plugin; one argument-check rule."""

from __future__ import annotations

import pytest

from attnflows_callback import checks, limits
from attnflows_callback.lru import LRU


def test_lru_drops_the_least_recently_used_past_either_limit_and_keeps_the_last():
    closed = []
    cache = LRU(3, max_weight=10, weight=len, on_evict=lambda key, value: closed.append(key), keep_last=1)
    for key in "abc":
        cache.put(key, "xx")
    cache.get("a")
    cache.put("d", "xx")  # four entries: "b", the least recently used, goes
    assert list(cache) == ["c", "a", "d"] and closed == ["b"]
    cache.put("e", "x" * 50)  # heavier than the limit alone: kept, as the most recent entry
    assert list(cache) == ["e"] and cache.total == 50
    cache.drain()
    assert not cache and closed == ["b", "c", "a", "d", "e"]


def test_the_plugin_takes_its_cache_limits_from_the_one_limits_module():
    from attnflows_tb import metadata
    from attnflows_tb.runs import AttentionCache, RunCache

    for name in ("OPEN_RUNS", "OPEN_RUNS_BYTES", "ATTENTION_CACHE_BYTES", "DERIVED_PER_RUN"):
        assert getattr(metadata, name) == getattr(limits, name)
    cache = RunCache()
    assert (cache.max_runs, cache.max_bytes) == (limits.OPEN_RUNS, limits.OPEN_RUNS_BYTES)
    assert isinstance(AttentionCache()._items, LRU)


@pytest.mark.parametrize(("value", "error"), [("4", TypeError), (4.0, TypeError), (True, TypeError), (0, ValueError)])
def test_a_wrong_type_is_a_type_error_and_a_wrong_value_a_value_error(value, error):
    with pytest.raises(error, match="batch_size must be an integer >= 1"):
        checks.integer("batch_size", value)
    with pytest.raises(ValueError, match=r"encoding must be one of \['a', 'b'\], got 'c'"):
        checks.one_of("encoding", "c", ("b", "a"))

"""``LRU``: the one bounded least-recently-used cache of the read side and the plugin.

A dict that remembers use order and, past its limit, drops the least recently used entries
(handing each to ``on_evict``, to close a file, say). The limits are a count (``max_items``),
a total weight (``max_weight``, in the units of ``weight``: bytes, say), or both. Not thread-safe: callers hold their own lock, as they
already must around the work that fills the cache.

Example:
    >>> closed = []
    >>> files = LRU(2, on_evict=lambda key, value: closed.append(key))
    >>> files.put("a", 1); files.put("b", 2)
    >>> files.get("a")  # "a" is now the most recently used
    1
    >>> files.put("c", 3)
    >>> list(files), closed
    (['a', 'c'], ['b'])
    >>> sizes = LRU(max_weight=10, weight=len)
    >>> sizes.put("x", "123456"); sizes.put("y", "12345")
    >>> list(sizes), sizes.total
    (['y'], 5)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable


class LRU(OrderedDict):
    """At most ``max_items`` entries and ``max_weight`` total ``weight``, least recently used dropped first.

    Args:
        max_items: the most entries kept (None: no count limit).
        max_weight: the most total weight kept (None: no weight limit).
        weight: an entry's weight (``value -> int``), weighed when put and reweighed by :meth:`trim`; None: 1.
        on_evict: called with ``(key, value)`` for each entry dropped by a limit or :meth:`drain`.
        keep_last: the most recent entries never dropped by a limit, however heavy.
    """

    def __init__(self, max_items: int | None = None, *, max_weight: int | None = None,
                 weight: Callable[[object], int] | None = None,
                 on_evict: Callable[[object, object], None] | None = None, keep_last: int = 0):
        super().__init__()
        self.max_items = max_items
        self.max_weight = max_weight
        self.weight = weight
        self.on_evict = on_evict
        self.keep_last = keep_last
        self.total = 0

    def get(self, key, default=None):
        """The value of ``key`` (now the most recently used), or ``default``."""
        if key not in self:
            return default
        self.move_to_end(key)
        return self[key]

    def put(self, key, value) -> None:
        """Keep ``value`` as the most recently used, then drop what is over a limit (weighs ``value`` alone)."""
        if self.weight is not None:
            self.total += self.weight(value) - (self.weight(self[key]) if key in self else 0)
        self[key] = value
        self.move_to_end(key)
        self._drop_over()

    def trim(self) -> None:
        """Drop least recently used entries while over a limit, reweighing every entry first (for values
        whose weight changed in place)."""
        if self.weight is not None:
            self.total = sum(map(self.weight, self.values()))
        self._drop_over()

    def _drop_over(self) -> None:
        if self.weight is None:
            self.total = len(self)
        while len(self) > self.keep_last and self._over():
            key, value = self.popitem(last=False)
            self.total -= self._weigh(value)
            if self.on_evict is not None:
                self.on_evict(key, value)

    def drain(self) -> None:
        """Drop every entry, most recent first, through ``on_evict``."""
        while self:
            key, value = self.popitem()
            if self.on_evict is not None:
                self.on_evict(key, value)
        self.total = 0

    def _over(self) -> bool:
        return ((self.max_items is not None and len(self) > self.max_items)
                or (self.max_weight is not None and self.total > self.max_weight))

    def _weigh(self, value) -> int:
        return 1 if self.weight is None else self.weight(value)

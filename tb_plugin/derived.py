"""Per-snapshot work done once, and ahead of the browser: what long sequences need to scrub quickly.

At 12 layers x 12 heads x 128 tokens one step of one example costs the server a decode (an LZMA
stream), the display transform of ``[L, H, T, T]`` and the head metrics; at 512 tokens each of
these is a second or more. The routes asked for together on a step change all need them, and
scrubbing asks for step after step. :class:`StepCache` keeps, beside the decoded tensors of
:class:`~.runs.AttentionCache`:

- ``mean``: the head average of the attention as a display shows it, ``[L, 1, U, U]`` with the
  units' labels: all the flow needs when no head is selected and a method traces the head mean
  (``raw``, ``rollout``, ``flow``), and all the token influence needs;
- ``heads``: one example's head metrics and pattern classes (``[L, H]`` each) for ``/heads``;

bounded together in bytes (:data:`~attnflows_callback.limits.DERIVED_ARRAYS_BYTES`). When a
route computes them for one step, a single background thread computes them for the same example
at the run's other snapshots, nearest first, off the request path (:meth:`StepCache.warm`); the
queue holds at most :data:`~attnflows_callback.limits.WARM_QUEUE` jobs, and a job already cached
costs a dictionary lookup.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import queue
import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np

from attnflows_callback.limits import AGGREGATE_INLINE_VALUES, ATTENTION_CACHE_BYTES, DERIVED_ARRAYS_BYTES, WARM_QUEUE
from attnflows_callback.lru import LRU

from attnflows_callback import step_products

from .display import Display, Shown, transform_mean
from .run_access import classification_source, read_attention, shown_attention, word_ids_of
from .run_caches import AttentionCache, OpenRun

STOP_WAIT_S = 10.0  # at interpreter exit, how long to let a background job finish before exiting anyway
FOREGROUND_PAUSE_S = 0.25  # the background thread starts a job only after requests paused this long ...
FOREGROUND_MAX_WAIT_S = 2.0  # ... or once it has waited this long


@dataclass(frozen=True)
class HeadsOfExample:
    """One example's head metrics at one step: ``{metric: [L, H]}``, pattern classes ``[L, H]``, ``ln Tk``."""

    metrics: dict
    pattern: np.ndarray
    baseline: float

    @property
    def nbytes(self) -> int:
        return sum(np.asarray(v).nbytes for v in self.metrics.values()) + self.pattern.nbytes + 256


class Sized(dict):
    """A small dict kept in the derived cache, weighed at 64 bytes an entry."""

    @property
    def nbytes(self) -> int:
        return 64 * len(self) + 256


def _weight(value) -> int:
    if isinstance(value, Shown):
        return int(value.attention.nbytes) + 64 * len(value.labels) + 1024
    return int(value.nbytes)


class StepCache(AttentionCache):
    """Decoded attention (up to ``max_bytes``) and what each step derives from it (up to ``derived_bytes``).

    Args:
        max_bytes: decoded tensors kept (:class:`~.runs.AttentionCache`).
        derived_bytes: head means and head metrics kept, least recently used dropped first.
        warm: whether a background thread fills the other snapshots of an example once one is asked for.

    Example:
        >>> cache = StepCache(max_bytes=2**20, derived_bytes=2**20, warm=False)
        >>> cache.derived(("k",), lambda: np.zeros(4)).tolist(), cache.derived_bytes_kept
        ([0.0, 0.0, 0.0, 0.0], 32)
    """

    def __init__(self, max_bytes: int = ATTENTION_CACHE_BYTES, derived_bytes: int = DERIVED_ARRAYS_BYTES,
                 *, warm: bool = True):
        super().__init__(max_bytes)
        self.derived_max_bytes = derived_bytes
        self._derived: LRU = LRU(max_weight=derived_bytes, weight=_weight)
        self._derived_lock = threading.Lock()
        self._warm_enabled = warm
        self._jobs: queue.PriorityQueue = queue.PriorityQueue(WARM_QUEUE)
        self._queued: set = set()
        self._seq = 0
        self._failures: LRU = LRU(WARM_QUEUE)  # keys of jobs that failed: the request computes those itself
        self._worker: threading.Thread | None = None
        self._last_request = 0.0
        self._heavy = threading.RLock()  # re-entered: a lifetimes graph is made from a kept head mean
        self._stopping = False
        self.warmed = 0  # jobs the background thread has run

    @property
    def derived_bytes_kept(self) -> int:
        with self._derived_lock:
            return self._derived.total

    def derived(self, key: tuple, compute):
        """``compute()`` once for ``key`` while it stays in the bounded cache (a larger value is not kept)."""
        with self._derived_lock:
            hit = self._derived.get(key)
        if hit is not None:
            return hit
        # One request at a time (each holds an example's working copies, hundreds of MiB at 512 tokens), beside
        # at most one background job: requests never wait for the background thread.
        with self._heavy if threading.current_thread() is not self._worker else contextlib.nullcontext():
            with self._derived_lock:
                hit = self._derived.get(key)
            value = compute() if hit is None else hit
        if _weight(value) <= self.derived_max_bytes:
            with self._derived_lock:
                self._derived.put(key, value)
        return value

    def clear(self) -> None:
        super().clear()
        with self._derived_lock:
            self._derived.clear()
            self._derived.total = 0

    # ------------------------------------------------------------- background
    def touch(self) -> None:
        """A request is being served: the background thread waits until requests pause (foreground first)."""
        self._last_request = time.monotonic()

    def submit(self, key: tuple, job, priority: int = 1) -> bool:
        """Queue ``job()`` for the background thread unless ``key`` is queued already; False when the queue is full."""
        with self._derived_lock:
            if key in self._queued:
                return True
            self._queued.add(key)
            self._seq += 1
            seq = self._seq
        try:
            self._jobs.put_nowait((priority, seq, key, job))
        except queue.Full:
            with self._derived_lock:
                self._queued.discard(key)
            return False
        with self._derived_lock:
            if not self._stopping and (self._worker is None or not self._worker.is_alive()):
                self._worker = threading.Thread(target=self._work, name="attnflows-warm", daemon=True)
                _stop_at_exit(self)
                self._worker.start()
        return True

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        """Stop the background thread after its current job (waiting at most ``timeout`` seconds).

        Called for every cache at interpreter exit: a daemon thread still inside HDF5 or numpy while
        the interpreter tears down crashes the process (seen as a segmentation fault at exit).
        """
        with self._derived_lock:
            self._stopping = True
            worker = self._worker
        with contextlib.suppress(queue.Full):
            self._jobs.put_nowait((-1, 0, None, None))  # wakes a worker waiting for a job
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)

    def warm(self, entry: OpenRun, example: int, step: int, stream: str, job) -> None:
        """Run ``job(step)`` for ``example``'s other snapshots in the background, nearest to ``step`` first."""
        if not self._warm_enabled:
            return
        steps = [int(s) for s in entry.run.steps.tolist()]
        if step in steps:
            k = steps.index(step)
            steps = sorted((s for s in steps if s != step), key=lambda s: (abs(steps.index(s) - k), s))
        for other in steps:
            key = (str(entry.run_dir), entry.version, example, stream, other, job.key)
            if not self.submit(key, functools.partial(job, other), priority=0):
                break

    def failed(self, key: tuple) -> bool:
        with self._derived_lock:
            return key in self._failures

    def _work(self) -> None:
        while True:
            try:
                _, _, key, job = self._jobs.get(timeout=30)
            except queue.Empty:
                with self._derived_lock:
                    if self._jobs.empty():
                        self._worker = None
                        return
                continue
            waited = time.monotonic()  # requests first, but never starved for longer than FOREGROUND_MAX_WAIT_S
            while (not self._stopping and time.monotonic() - self._last_request < FOREGROUND_PAUSE_S
                   and time.monotonic() - waited < FOREGROUND_MAX_WAIT_S):
                time.sleep(FOREGROUND_PAUSE_S / 4)
            if self._stopping:
                return
            try:
                job()
            except Exception:  # noqa: BLE001 - a failed job is done again in the request, which reports the error
                with self._derived_lock:
                    self._failures.put(key, True)
            finally:
                with self._derived_lock:
                    self._queued.discard(key)
                self.warmed += 1


_caches_with_workers: weakref.WeakSet = weakref.WeakSet()
_exit_hook_installed = False


def _stop_at_exit(cache: StepCache) -> None:
    """Have ``cache``'s background thread stopped at interpreter exit (the hook is installed once, when needed)."""
    global _exit_hook_installed
    if not _exit_hook_installed:
        atexit.register(_stop_all)
        _exit_hook_installed = True
    _caches_with_workers.add(cache)


def _stop_all() -> None:
    for cache in list(_caches_with_workers):
        cache.stop()
    _caches_with_workers.clear()


class Pending(Exception):
    """An answer still being prepared in the background: ``ready`` of ``needed`` parts are done."""

    def __init__(self, ready: int, needed: int):
        super().__init__(f"{ready} of {needed} ready")
        self.ready, self.needed = ready, needed


def display_key(display: Display) -> tuple:
    return (display.targets, display.units)


# ------------------------------------------------------------------ what the routes take from here
MEAN_METHODS = ("raw", "rollout", "flow")
"""Flow methods (and trace views) that use nothing of the attention but its head average."""


def mean_shown(entry: OpenRun, cache: AttentionCache, example: int, step: int, stream: str,
               display: Display, *, warm: bool = True) -> Shown:
    """The head average ``[L, 1, U, U]`` (float64) of ``example``'s attention at ``step`` as ``display``
    shows it, with the units' labels; computed once per snapshot while it stays cached."""
    def compute() -> Shown:
        stored = stored_mean(entry, example, step, stream, display)
        if stored is not None:
            return stored
        attention = read_attention(entry, cache, example, step, stream)
        # One layer at a time: the transform's float64 copies are a layer's, not the whole tensor's (12x less).
        layers = [shown_attention(entry, example, stream, attention[layer : layer + 1], display)
                  for layer in range(attention.shape[0])]
        first = layers[0]
        info = first.info
        if info is not None:  # the share hidden over every row shown: the mean of the layers' (equal-sized) shares
            info = {**info, "hidden_mass": round(float(np.mean([s.info["hidden_mass"] for s in layers])), 6)}
        mean = np.concatenate([s.attention.mean(axis=1, keepdims=True, dtype=np.float64) for s in layers])
        return Shown(mean, first.labels, first.units, info)

    warming = (entry, example, step, stream, _WarmJob(entry, cache, example, stream, display)) if warm else None
    return kept(cache, _key("mean", entry, example, step, stream, display_key(display)), compute, warming)


def stored_mean(entry: OpenRun, example: int, step: int, stream: str, display: Display) -> Shown | None:
    """The head mean as ``display`` shows it, from the one the writer stored for a long example
    (:mod:`attnflows_callback.step_products`); None when the shard holds none for these targets."""
    tokens, _ = entry.run.stream_tokens(example, stream)
    word_ids = word_ids_of(entry, example, len(tokens))
    try:
        found = entry.run.head_mean(example, step, stream, display.targets)
        if found is None or (found.units == "words" and (display.units != "words" or word_ids is None)):
            return None  # none stored, or over words for a view of tokens: derived from the attention
        return transform_mean(found.values, found.hidden, tokens, word_ids, display, merged=found.units == "words")
    except (OSError, ValueError, KeyError, RuntimeError) as err:  # a damaged product: derive it from the attention
        entry.note_read_problem(step, err)
        return None


def example_heads(entry: OpenRun, cache: AttentionCache, example: int, step: int, stream: str,
                  *, warm: bool = True) -> HeadsOfExample:
    """``analysis.head_metrics`` and ``pattern_class`` of one example at one step, computed once while cached."""
    from attnflows_callback import analysis

    def compute() -> HeadsOfExample:
        _, key_tokens = entry.run.stream_tokens(example, stream)
        stored = entry.run.summary(step, stream)
        names = [step_products.summary_name(m) for m in (*step_products.METRICS, step_products.PATTERN)]
        if all(name in stored for name in names) and "entropy" in stored:  # written with the snapshot
            metrics = {m: stored[step_products.summary_name(m)][example].astype(np.float64)
                       for m in step_products.METRICS}
            metrics["entropy"] = stored["entropy"][example].astype(np.float64)
            return HeadsOfExample(metrics, stored[names[-1]][example].astype(np.int64),
                                  float(analysis.uniform_entropy(len(key_tokens))))
        attention = read_attention(entry, cache, example, step, stream)
        cls_index = classification_source(entry, attention.shape[-1])
        # Every metric is per head: one layer at a time bounds the float64 copies to a layer's.
        per_layer = [analysis.head_metrics(attention[layer : layer + 1], key_tokens, cls_index=cls_index)
                     for layer in range(attention.shape[0])]
        metrics = {k: np.concatenate([np.asarray(found[k]) for found in per_layer]) for k in per_layer[0]}
        pattern = np.concatenate([np.asarray(analysis.pattern_class(attention[layer : layer + 1]))
                                  for layer in range(attention.shape[0])])
        return HeadsOfExample(metrics, pattern, float(analysis.uniform_entropy(attention.shape[-1])))

    warming = (entry, example, step, stream, _WarmJob(entry, cache, example, stream, None)) if warm else None
    return kept(cache, _key("heads", entry, example, step, stream), compute, warming)


def kept(cache: AttentionCache, key: tuple, compute, warming: tuple | None = None):
    """``compute()``, kept under ``key`` while it stays cached when ``cache`` is a :class:`StepCache`.

    ``warming``: ``(entry, example, step, stream, job)`` for :meth:`StepCache.warm`, which then runs
    ``job`` for the example's other snapshots in the background (a request's own call passes it).

    Example:
        >>> cache = StepCache(warm=False)
        >>> kept(cache, ("k",), lambda: np.ones(2)) is kept(cache, ("k",), lambda: np.zeros(2))
        True
    """
    if not isinstance(cache, StepCache):
        return compute()
    if warming is not None:
        cache.touch()
    value = cache.derived(key, compute)
    if warming is not None:
        cache.warm(*warming)
    return value


def _key(kind: str, entry: OpenRun, example: int, step: int, stream: str, *rest) -> tuple:
    return (kind, str(entry.run_dir), step, entry.run.snapshot_info(step).identity, stream, example) + rest


class _WarmJob:
    """What the background thread computes at another step: the head mean for one display, or the head metrics."""

    def __init__(self, entry, cache, example, stream, display):
        self.entry, self.cache, self.example, self.stream, self.display = entry, cache, example, stream, display
        self.key = ("heads",) if display is None else ("mean",) + display_key(display)

    def __call__(self, step: int) -> None:
        if self.display is None:
            example_heads(self.entry, self.cache, self.example, step, self.stream, warm=False)
        else:
            mean_shown(self.entry, self.cache, self.example, step, self.stream, self.display, warm=False)


def aggregate_rows(entry: OpenRun, cache: AttentionCache, examples, steps, stream: str, drop_special: bool,
                   drop_punctuation: bool):
    """``(example, step) -> row`` for :func:`~attnflows_callback.aggregate.aggregate_run` once every row of
    ``examples`` at ``steps`` is ready; else the missing ones are queued and :class:`Pending` is raised.

    None (compute in the request) without a :class:`StepCache`, or when a queued row failed (the request
    then meets the same error and reports it).
    """
    from attnflows_callback.aggregate import source_row, stored_source_rows

    if not isinstance(cache, StepCache):
        return None
    keys = {(int(i), int(at)): _key("row", entry, int(i), int(at), stream, drop_special, drop_punctuation)
            for at in steps for i in examples}
    with cache._derived_lock:
        found = {ia: cache._derived.get(key) for ia, key in keys.items()}
    for at in steps:  # stored with long examples: read (a step's rows in one pass), not derived
        unknown = [i for (i, step), row in found.items() if row is None and step == int(at)]
        stored = stored_source_rows(entry.run, unknown, int(at), stream=stream, drop_special=drop_special,
                                    drop_punctuation=drop_punctuation) if unknown else {}
        for i, row in stored.items():
            found[(i, int(at))] = cache.derived(keys[(i, int(at))], lambda row=row: row)
    missing = [ia for ia, row in found.items() if row is None]
    if not missing:
        return lambda i, at: found[(int(i), int(at))]
    if any(cache.failed(keys[ia]) for ia in missing):
        return None
    layers, heads = entry.run.stream_shape(stream)
    values = sum(layers * heads * len(entry.run.stream_tokens(i, stream)[0]) ** 2 for i, _ in missing)
    jobs = []
    for i, at in missing:
        key = keys[(i, at)]

        def job(i=i, at=at, key=key):
            return cache.derived(key, lambda: source_row(entry.run, i, at, stream=stream, drop_special=drop_special,
                                                         drop_punctuation=drop_punctuation))

        jobs.append((key, job))
    if values <= AGGREGATE_INLINE_VALUES:  # little to do: done in the request, as before
        found.update((ia, job()) for ia, (_, job) in zip(missing, jobs))
        return lambda i, at: found[(int(i), int(at))]
    for key, job in jobs:
        cache.submit(key, job, priority=1)
    raise Pending(len(keys) - len(missing), len(keys))

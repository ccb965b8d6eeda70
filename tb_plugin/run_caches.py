"""The caches behind the routes: open runs, and the attention tensors decoded from them.

* :class:`RunCache` keeps a bounded LRU of open reader :class:`~attnflows_callback.reader.Run`
  objects (by count and by the size of their in-memory index) and refreshes one when its
  files change: a cheap ``stat`` of three paths per request tells whether new snapshots
  landed, so a live run shows new steps without restarting TensorBoard.
* :class:`AttentionCache` keeps recently decoded attention tensors, bounded in bytes.

Which runs exist, and where, is :mod:`.runs`'s (discovery); these caches are handed a run directory.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnflows_callback.lru import LRU
from attnflows_callback.reader import Run, open_run
from attnflows_callback.schema import DATA_DIRNAME, RUN_JSON, SNAPSHOT_DIRNAME, STATUS_JSON

from . import metadata
from .errors import describe, safe_text


# ------------------------------------------------------------------ open runs
@dataclass
class OpenRun:
    """An open reader ``Run`` and what the plugin derived from it, valid for one ``version``."""

    run_dir: Path
    run: Run
    signature: tuple
    checked_at: float
    version: int = 0
    weight: int = 0
    derived: LRU = field(default_factory=lambda: LRU(metadata.DERIVED_PER_RUN))
    read_problems: dict = field(default_factory=dict)  # shard file -> (identity, reason), shared per run_dir
    lock: threading.RLock = field(default_factory=threading.RLock)
    on_problem: Callable[[], None] | None = None

    def cached(self, key, compute: Callable[[], object]):
        """``compute()`` once per version of the run (kept up to DERIVED_PER_RUN results)."""
        with self.lock:
            version = self.version
            hit = self.derived.get(key)
            if hit is not None and hit[0] == version:
                return hit[1]
        value = compute()
        with self.lock:
            if self.version == version:
                self.derived.put(key, (version, value))
        return value

    def note_read_problem(self, step: int, err: Exception) -> str:
        """Remember that a shard failed when read (shown in /runs until the file changes)."""
        info = self.run.snapshot_info(step)
        reason = describe(err)
        with self.lock:
            self.read_problems[info.file] = (info.identity, reason)
            self.version += 1
        if self.on_problem is not None:
            self.on_problem()
        return reason

    def problems(self) -> list[dict]:
        found = [{"file": p.file, "reason": safe_text(p.reason)} for p in self.run.problems]
        with self.lock:
            for file, (identity, reason) in sorted(self.read_problems.items()):
                found.append({"file": file, "reason": reason})
        return found


class RunCache:
    """A bounded LRU of open runs, refreshed when their files change.

    Args:
        max_runs: open runs kept.
        max_bytes: estimated bytes of the runs' in-memory indexes (summaries and logits
            of every snapshot) kept; the most recently used run is always kept.
    """

    def __init__(self, max_runs: int = metadata.OPEN_RUNS, max_bytes: int = metadata.OPEN_RUNS_BYTES):
        self._lock = threading.Lock()
        self._open: LRU = LRU(max_runs, max_weight=max_bytes, weight=lambda entry: entry.weight,
                              on_evict=self._closed, keep_last=1)  # run_dir -> OpenRun
        self._opening: dict[Path, threading.Lock] = {}
        # Shards that failed when read outlive the open run (bounded): /runs keeps showing them.
        self._read_problems: LRU = LRU(metadata.READ_PROBLEM_RUNS)  # run_dir -> {shard file: problem}
        self.read_problems_noted = 0

    def __len__(self) -> int:
        return len(self._open)

    def peek(self, run_dir: Path) -> OpenRun | None:
        """The open run in ``run_dir`` if it is open, without opening or refreshing it."""
        with self._lock:
            return self._open.get(run_dir)

    def _problem_noted(self) -> None:
        with self._lock:
            self.read_problems_noted += 1

    def get(self, run_dir: Path) -> OpenRun:
        """The open run in ``run_dir``, refreshed if new snapshots (or a new status) landed."""
        with self._lock:
            entry = self._open.get(run_dir)
            gate = self._opening.setdefault(run_dir, threading.Lock())
        if entry is None:
            with gate:  # one thread opens a run; the others wait and share it
                with self._lock:
                    entry = self._open.get(run_dir)
                if entry is None:
                    entry = self._open_run(run_dir)
        else:
            self._refresh_if_changed(entry)
        return entry

    def _open_run(self, run_dir: Path) -> OpenRun:
        signature = files_signature(run_dir)
        run = open_run(run_dir)
        entry = OpenRun(run_dir, run, signature, time.time(), on_problem=self._problem_noted)
        entry.weight = index_bytes(run)
        with self._lock:
            problems = self._read_problems.get(run_dir)
            entry.read_problems = {} if problems is None else problems
            self._read_problems.put(run_dir, entry.read_problems)
        _drop_stale_problems(entry)
        with self._lock:
            self._open.put(run_dir, entry)
        return entry

    def _refresh_if_changed(self, entry: OpenRun) -> None:
        signature = files_signature(entry.run_dir)
        if signature == entry.signature and settled(signature, entry.checked_at):
            return
        with entry.lock:
            if signature == entry.signature and settled(signature, entry.checked_at):
                return
            before = (len(entry.run.steps), len(entry.run.problems))
            new_steps = entry.run.refresh()
            after = (len(entry.run.steps), len(entry.run.problems))
            stale = _drop_stale_problems(entry)
            if new_steps or before != after or stale or signature != entry.signature:
                entry.version += 1
            entry.signature = signature
            entry.checked_at = time.time()
            entry.weight = index_bytes(entry.run)
        with self._lock:
            self._open.trim()  # its index grew

    @property
    def max_runs(self) -> int:
        return self._open.max_items

    @property
    def max_bytes(self) -> int:
        return self._open.max_weight

    def _closed(self, run_dir: Path, old: OpenRun) -> None:
        """An open run dropped from the cache (the cache's lock is held)."""
        self._opening.pop(run_dir, None)
        old.run.close()

    def clear(self) -> None:
        with self._lock:
            self._open.drain()
            self._opening.clear()


class _Decoding:
    """One tensor being decoded: the requests that want it too wait for ``done``."""

    def __init__(self):
        self.done = threading.Event()
        self.value: np.ndarray | None = None


def _drop_stale_problems(entry: OpenRun) -> list[str]:
    """Forget read failures of shards that were replaced or removed since; returns their names."""
    with entry.lock:
        if not entry.read_problems:
            return []
        current = {}
        for step in entry.run.steps.tolist():
            info = entry.run.snapshot_info(step)
            current[info.file] = info.identity
        stale = [f for f, (identity, _) in entry.read_problems.items() if current.get(f) != identity]
        for file in stale:
            del entry.read_problems[file]
        return stale


def files_signature(run_dir: Path) -> tuple:
    """What changes when a snapshot is published or removed, or the status or metadata is rewritten."""
    data_dir = run_dir / DATA_DIRNAME
    parts = []
    for path in (data_dir / SNAPSHOT_DIRNAME, data_dir / STATUS_JSON, data_dir / RUN_JSON):
        try:
            st = os.stat(path)
            parts.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            parts.append(None)
    return tuple(parts)


def settled(signature: tuple, checked_at: float) -> bool:
    """False while a file changed within SETTLE_S of the last check: mtimes are coarse, so look again."""
    newest = max((p[2] for p in signature if p is not None), default=0) / 1e9
    return checked_at - newest > metadata.SETTLE_S


SUMMARIES_PER_STREAM = 13  # entropy, js and cosine from start, importance, and the 9 head_* step products


def index_bytes(run: Run) -> int:
    """Estimated bytes of a run's in-memory index: summaries and logits of every snapshot."""
    per_snapshot = 0
    for stream in run.streams:
        layers, heads = run.stream_shape(stream)
        # 3 summaries, 4 with head importance, 13 with the step products of long examples: counted as 13
        per_snapshot += SUMMARIES_PER_STREAM * run.num_examples * layers * heads * 4
    per_snapshot += run.num_examples * 8 * 4 + 512
    return 4096 + len(run.steps) * per_snapshot


# ------------------------------------------------------------ decoded tensors
class AttentionCache:
    """Recently decoded attention tensors, keyed by shard identity, at most ``max_bytes`` in all.

    A tensor is decoded once however many requests ask for it at the same time: a step change
    in the browser sends its views' requests together, and they all need the same example.
    """

    def __init__(self, max_bytes: int = metadata.ATTENTION_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: LRU = LRU(max_weight=max_bytes, weight=lambda value: value.nbytes)  # key -> array
        self._decoding: dict[tuple, _Decoding] = {}

    def get(self, entry: OpenRun, example: int, step: int, stream: str, layer: int | None = None) -> np.ndarray:
        """float32 ``[L, H, Tq, Tk]`` of one example at one step (read-only: never modify it).

        ``layer``: that layer only, ``[1, H, Tq, Tk]``, cut from the whole tensor when it is kept, else
        read alone (a long example decodes one layer's chunk) and kept as such.
        """
        info = entry.run.snapshot_info(step)
        key = (str(entry.run_dir), step, info.identity, stream, example)
        if layer is not None:
            with self._lock:
                whole, alone = self._items.get(key), self._items.get(key + (layer,))
            if whole is not None or alone is not None:
                return alone if whole is None else whole[layer : layer + 1]
            if not entry.run.reads_a_layer_alone(example, step, stream):  # decode it whole, once, and keep it
                return self.get(entry, example, step, stream)[layer : layer + 1]
            key += (layer,)
        while True:
            with self._lock:
                value = self._items.get(key)
                if value is not None:
                    return value
                decoding = self._decoding.get(key)
                if decoding is None:
                    decoding = self._decoding[key] = _Decoding()
                    break
            decoding.done.wait()
            if decoding.value is not None:
                return decoding.value
            # The decode failed: try again, so this request gets the error (or the data) itself.
        try:
            value = entry.run.attention(example, step, stream) if layer is None else \
                entry.run.attention(example, step, stream, layer=layer)
            value.setflags(write=False)
            decoding.value = value
            if value.nbytes <= self.max_bytes:
                with self._lock:
                    self._items.put(key, value)
            return value
        finally:
            with self._lock:
                del self._decoding[key]
            decoding.done.set()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._items.total = 0

    @property
    def _bytes(self) -> int:
        """Bytes of the decoded tensors kept."""
        return self._items.total

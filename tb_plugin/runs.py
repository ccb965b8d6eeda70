"""Run discovery: which runs TensorBoard lists hold an attnflows run, and where.

* :class:`RunCatalog` maps the run names that TensorBoard lists (through its data provider,
  or the legacy multiplexer) to directories under the logdir. A requested run name is
  only ever *looked up* in that table; it never becomes a path. Directories whose real
  path leaves the logdir (symlinks out) are left out of the table, with one log line each.
  Names are served with bidirectional controls neutralised, and looked up the same way.
* :class:`ActiveRuns` answers ``is_active`` from a flag that a daemon thread keeps up to
  date: TensorBoard's ``/data/plugins_listing`` does no per-run work.

The caches behind the routes (open runs, decoded attention) are :mod:`.run_caches`'s; their
names are importable from here too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from attnflows_callback.lru import LRU
from attnflows_callback.schema import DATA_DIRNAME, RUN_JSON, SNAPSHOT_DIRNAME

from . import metadata
from .errors import NotFound, neutralise_bidi
from .run_caches import AttentionCache, OpenRun, RunCache, files_signature, index_bytes, settled  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

ListNames = Callable[[object, str], Iterable[str]]  # (request context, experiment id) -> run names


@dataclass(frozen=True)
class RunTable:
    """Discovered attnflows runs of one experiment: name -> run directory (under the logdir)."""

    dirs: dict[str, Path]
    listed_at: float


class RunCatalog:
    """TensorBoard's run names, filtered to those that hold an attnflows run inside the logdir.

    Args:
        logdir: TensorBoard's ``--logdir``; None or a non-local path means no runs.
        list_names: returns TensorBoard's run names for (request context, experiment id).
        ttl: seconds a listing is reused; an unknown name asks again only once it is this old,
            so a flood of bad names cannot turn into a flood of listings.
    """

    def __init__(self, logdir: str | None, list_names: ListNames, *, ttl: float = metadata.RUN_TABLE_TTL_S):
        self._root = _local_root(logdir)
        self.ttl = ttl
        self._list_names = list_names
        self._lock = threading.Lock()
        self._tables: LRU = LRU(metadata.RUN_TABLES)  # experiment id -> RunTable
        self._refused: LRU = LRU(metadata.REFUSED_NAMES)  # names already logged as refused
        self.has_runs = False  # whether the last table built held a run (read by ActiveRuns)

    @property
    def root(self) -> Path | None:
        return self._root

    def _refuse_once(self, name: str) -> None:
        with self._lock:
            if name in self._refused:
                return
            self._refused.put(name, None)
        logger.warning("attnflows: run %r points outside the logdir; it is not served", neutralise_bidi(name))

    def table(self, ctx, experiment_id: str, *, max_age: float | None = None) -> RunTable:
        """The run table of ``experiment_id``, asked of TensorBoard again when older than ``max_age`` (default ttl)."""
        max_age = self.ttl if max_age is None else max_age
        with self._lock:
            table = self._tables.get(experiment_id)
            if table is not None and time.monotonic() - table.listed_at <= max_age:
                return table
        dirs = {}
        if self._root is not None:
            for name in sorted(set(self._list_names(ctx, experiment_id))):
                run_dir = run_directory(self._root, name, on_outside=self._refuse_once)
                served = neutralise_bidi(name) if isinstance(name, str) else name
                if run_dir is not None and served not in dirs:  # the browser only ever sees the served name
                    dirs[served] = run_dir
        table = RunTable(dirs, time.monotonic())
        self.has_runs = bool(dirs)
        with self._lock:
            self._tables.put(experiment_id, table)
        return table

    def lookup(self, name: str, ctx, experiment_id: str) -> Path:
        """The directory of run ``name``; an unknown name asks TensorBoard again if the listing is older than ttl."""
        table = self.table(ctx, experiment_id, max_age=float("inf"))
        if name not in table.dirs:
            table = self.table(ctx, experiment_id)
        if name not in table.dirs or not self.still_inside(name, table.dirs[name]):
            raise NotFound("unknown run: the runs route lists the runs that hold attention snapshots")
        return table.dirs[name]

    def still_inside(self, name: str, run_dir: Path) -> bool:
        """Checked again at every use: a folder swapped for a symlink out after the table was built is refused."""
        try:
            for path in (run_dir, run_dir / DATA_DIRNAME, run_dir / DATA_DIRNAME / SNAPSHOT_DIRNAME):
                if (path.exists() or path.is_symlink()) and not _inside(self._root, path):
                    self._refuse_once(name)
                    return False
        except OSError:
            return False
        return True


def run_directory(root: Path, name: str, on_outside: Callable[[str], None] | None = None) -> Path | None:
    """The directory of TensorBoard run ``name`` if it holds an attnflows run inside ``root``, else None.

    ``name`` comes from TensorBoard's own listing (``"."`` is the logdir itself); even so it
    is checked part by part, and the directory's real path must stay inside ``root``
    (``on_outside(name)`` is told when it does not). Only ``lstat``/``stat``: nothing is opened.

    Example:
        >>> run_directory(Path("/tmp"), "../etc") is None
        True
    """
    if not isinstance(name, str) or "\x00" in name or "\\" in name or name.startswith("/"):
        return None
    parts = [] if name == "." else name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    run_dir = root.joinpath(*parts)
    data_dir = run_dir / DATA_DIRNAME
    try:
        if not (data_dir / RUN_JSON).is_file() or (data_dir / RUN_JSON).is_symlink():
            return None
        for path in (run_dir, data_dir, data_dir / SNAPSHOT_DIRNAME):
            if path.exists() and not _inside(root, path):
                if on_outside is not None:
                    on_outside(name)
                return None
    except OSError:
        return None
    return run_dir


def _inside(root: Path, path: Path) -> bool:
    real = os.path.realpath(path)
    return real == str(root) or real.startswith(str(root) + os.sep)


def _local_root(logdir: str | None) -> Path | None:
    if not logdir or "://" in logdir:
        return None
    path = os.path.realpath(os.path.expanduser(logdir))
    return Path(path) if os.path.isdir(path) else None


class ActiveRuns:
    """Whether TensorBoard lists an attnflows run: a flag read in O(1), kept fresh by a daemon thread.

    The thread rebuilds the catalog's table every ``idle_s`` while no run is found and every
    ``active_s`` once one is (``/runs`` refreshes the flag too). It holds the object only
    weakly, so it ends when the plugin is dropped. The first reader waits at most
    ``first_wait_s`` for the first scan, so a tab is not hidden on TensorBoard's first page.
    """

    def __init__(self, catalog: RunCatalog, list_context: Callable[[], object], *, idle_s: float = 2.0,
                 active_s: float = 30.0, first_wait_s: float = 1.0):
        self.catalog = catalog
        self.list_context = list_context
        self.idle_s, self.active_s, self.first_wait_s = idle_s, active_s, first_wait_s
        self.scans = 0
        self._scanned = threading.Event()
        self._failed_logged = False
        self._thread = threading.Thread(target=_scan_loop, args=(weakref.ref(self),), name="attnflows-runs",
                                        daemon=True)
        self._thread.start()

    @property
    def active(self) -> bool:
        if not self._scanned.is_set():
            self._scanned.wait(self.first_wait_s)
        return self.catalog.has_runs

    def scan(self) -> float:
        """Rebuild the table once; returns the seconds until the next scan."""
        try:
            self.catalog.table(self.list_context(), "", max_age=0.0)
            self._failed_logged = False
        except Exception:  # noqa: BLE001 - TensorBoard's listing may not be up yet: try again, log once
            if not self._failed_logged:
                logger.warning("attnflows: could not list runs", exc_info=True)
                self._failed_logged = True
        finally:
            self.scans += 1
            self._scanned.set()
        return self.active_s if self.catalog.has_runs else self.idle_s


def _scan_loop(ref: weakref.ref) -> None:
    while True:
        active_runs = ref()
        if active_runs is None:
            return
        wait = active_runs.scan()
        del active_runs
        time.sleep(wait)

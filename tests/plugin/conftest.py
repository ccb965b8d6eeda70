"""Fixtures for the plugin tests: a logdir of real small runs (some hostile), and TensorBoard's own WSGI app.

The hostile runs point out of the logdir to an ``outside`` folder that holds canary files.
:func:`outside_reads` says whether anything there was read: Python-level opens and
listings are caught with an audit hook, and reads by the HDF5 C library show up as a
changed access time (the canaries' atime is set to 0 before each check).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.helpers import PROBE_LABELS, PROBE_TEXTS, write_run

GOOD_RUNS = ("sweep/lr_1", "sweep/lr_2", "gpt", "t5", "other_probe", "corrupt")
HOSTILE_RUNS = ("escape", "escape_data", "extlink", "virtual", "extsummary", "snaplink", "probelink")

# ------------------------------------------------------------------ audit hook
_watch: list[str] = []
_seen: list[tuple[str, str]] = []
_hook_lock = threading.Lock()


def _audit(event: str, args) -> None:
    if not _watch or event not in ("open", "os.listdir", "os.scandir", "os.walk", "shutil.copyfile"):
        return
    if not args or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    try:
        path = os.path.realpath(os.fsdecode(args[0]))
    except (TypeError, ValueError):
        return
    for root in _watch:
        if path == root or path.startswith(root + os.sep):
            with _hook_lock:
                _seen.append((event, path))


sys.addaudithook(_audit)


class OutsideWatch:
    """Arm with :meth:`reset`; :meth:`reads` lists what was read under ``root`` since."""

    def __init__(self, root: Path):
        self.root = Path(os.path.realpath(root))

    def canaries(self) -> list[Path]:
        return [p for p in self.root.rglob("*") if p.is_file() and not p.is_symlink() and ".tfevents." not in p.name]

    def reset(self) -> None:
        _watch.clear()
        self.files = self.canaries()  # listed once here: listing them later would count as a read
        for path in self.files:
            st = os.stat(path)
            os.utime(path, ns=(0, st.st_mtime_ns))
        with _hook_lock:
            _seen.clear()
        if str(self.root) not in _watch:
            _watch.append(str(self.root))

    def reads(self) -> list[str]:
        touched = [f"atime {p.name}" for p in self.files if os.stat(p).st_atime_ns != 0]
        with _hook_lock:
            return touched + [f"{event} {Path(path).name}" for event, path in _seen]


# --------------------------------------------------------------------- runs
def _damage_shard(shard: Path, how: str, canary: Path) -> None:
    with h5py.File(shard, "r+") as f:
        if how == "external":
            shape = f["attention/self/0"].attrs["shape"]
            del f["attention/self/0"]
            f["attention/self/0"] = h5py.ExternalLink(str(canary), "/data")
        elif how == "virtual":
            shape = f["attention/self/1"].attrs["shape"]
            del f["attention/self/1"]
            layout = h5py.VirtualLayout(shape=(64,), dtype=np.uint8)
            layout[:] = h5py.VirtualSource(str(canary), "data", shape=(64,))
            f.create_virtual_dataset("attention/self/1", layout)
            f["attention/self/1"].attrs["shape"] = shape
        elif how == "external-summary":
            del f["summary/self/entropy"]
            f["summary/self/entropy"] = h5py.ExternalLink(str(canary), "/data")


def snapshot_path(run_dir: Path, step: int) -> Path:
    return run_dir / "attnflows" / "snapshots" / f"step-{step:012d}.h5"


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """(logdir, outside): good and hostile runs in ``logdir``; canaries in ``outside``."""
    base = tmp_path_factory.mktemp("plugin")
    logdir, outside = base / "logs", base / "outside"
    outside.mkdir()
    canary = outside / "canary.h5"
    with h5py.File(canary, "w") as f:
        f["data"] = np.arange(64, dtype=np.uint8)
    (outside / "canary.txt").write_text("secret")

    write_run(logdir / "sweep" / "lr_1", steps=(0, 10, 20), hparams={"learning_rate": 1e-3, "seed": 0})
    shutil.copytree(logdir / "sweep" / "lr_1", logdir / "sweep" / "lr_2")
    write_run(logdir / "gpt", family="gpt2", steps=(0, 5))
    write_run(logdir / "t5", family="t5", steps=(0, 5))
    write_run(logdir / "other_probe", steps=(0,), texts=PROBE_TEXTS[:4], labels=PROBE_LABELS[:4])
    shutil.copytree(logdir / "sweep" / "lr_1", logdir / "corrupt")
    shard = snapshot_path(logdir / "corrupt", 10)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])

    # Hostile runs: each points out of the logdir in its own way.
    shutil.copytree(logdir / "sweep" / "lr_1", outside / "secret_run")
    (logdir / "escape").symlink_to(outside / "secret_run", target_is_directory=True)
    (logdir / "escape_data").mkdir()
    for marker in (outside / "secret_run").glob("events.out.tfevents.*"):
        shutil.copy(marker, logdir / "escape_data" / marker.name)
    (logdir / "escape_data" / "attnflows").symlink_to(outside / "secret_run" / "attnflows", target_is_directory=True)
    for name, how in (("extlink", "external"), ("virtual", "virtual"), ("extsummary", "external-summary")):
        shutil.copytree(logdir / "sweep" / "lr_1", logdir / name)
        _damage_shard(snapshot_path(logdir / name, 10), how, canary)
    shutil.copytree(logdir / "sweep" / "lr_1", logdir / "snaplink")
    snapshot_path(logdir / "snaplink", 20).unlink()
    snapshot_path(logdir / "snaplink", 20).symlink_to(snapshot_path(outside / "secret_run", 20))
    shutil.copytree(logdir / "sweep" / "lr_1", logdir / "probelink")
    (logdir / "probelink" / "attnflows" / "probe.h5").unlink()
    (logdir / "probelink" / "attnflows" / "probe.h5").symlink_to(outside / "secret_run" / "attnflows" / "probe.h5")
    return logdir, outside


@pytest.fixture(scope="session")
def logdir(world) -> Path:
    return world[0]


@pytest.fixture()
def outside(world) -> OutsideWatch:
    watch = OutsideWatch(world[1])
    watch.reset()
    yield watch
    _watch.clear()


# ----------------------------------------------------------------- WSGI apps
def make_app(logdir: Path, *, multiplexer: bool):
    """TensorBoard's own WSGI app over ``logdir``, loaded once, with the installed plugins.

    ``multiplexer=False`` hands plugins no multiplexer, as under the default ``--load_fast``.
    """
    from tensorboard import program
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_ingester

    tb = program.TensorBoard()
    tb.configure(logdir=str(logdir), load_fast="false", reload_interval=0, reload_task="blocking")
    ingester = data_ingester.LocalDataIngester(tb.flags)
    ingester.start()
    return application.TensorBoardWSGIApp(
        tb.flags, tb.plugin_loaders, ingester.data_provider, tb.assets_zip_provider,
        ingester.deprecated_multiplexer if multiplexer else None,
    )


@pytest.fixture(scope="session")
def client(logdir):
    from werkzeug.test import Client

    return Client(make_app(logdir, multiplexer=False))


@pytest.fixture(scope="session")
def legacy_client(logdir):
    from werkzeug.test import Client

    return Client(make_app(logdir, multiplexer=True))


PREFIX = "/data/plugin/attnflows"


def get(client, route, **params):
    """GET ``route`` of the plugin with ``params`` as the query string."""
    return client.get(f"{PREFIX}/{route}", query_string=params)

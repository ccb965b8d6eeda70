"""The run directory on disk: schema, attention encodings, and the crash-safe writer.

Layout (``docs/format.md`` is the full schema)::

    <tensorboard run dir>/
        events.out.tfevents.*.attnflows     header-only marker, so TensorBoard lists the run
        attnflows/
            run.json                        model, streams, probe id, hyperparameters, format version
            status.json                     running | finished | failed | interrupted
            probe.h5                        texts, labels, token ids, tokens, other fed inputs
            snapshots/step-000000000000.h5  one immutable file per snapshot

Every file is written under a temporary dot-name, flushed, fsynced, closed and then
published with ``os.replace``: a reader sees a whole file or nothing, a SIGKILL at any
instant leaves every published snapshot readable with plain h5py, and appending costs
one new file. The sorted listing of ``snapshots/`` is the index.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

FORMAT_NAME = "attnflows-run"
# 2: probe.h5 holds the inputs fed beyond input_ids and attention_mask (model_inputs/, e.g. segment ids).
FORMAT_VERSION = 2
OLDEST_FORMAT_VERSION = 1  # still read; its probe pass fed only input_ids and attention_mask
DATA_DIRNAME = "attnflows"
SNAPSHOT_DIRNAME = "snapshots"
SNAPSHOT_NAME = re.compile(r"^step-(\d{12})\.h5$")
STATUSES = ("running", "finished", "failed", "interrupted")
SNAPSHOT_KINDS = ("step", "checkpoint", "epoch_end", "final")


# ------------------------------------------------------------------ encodings
class Encoding:
    """How attention weights in [0, 1] are stored in a shard: dtype, codec and decode rule."""

    name: str
    max_abs_error: float

    def encode(self, weights: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def decode(self, stored: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def dataset_options(self, shape: tuple[int, ...]) -> dict:
        raise NotImplementedError


def _codes(weights: np.ndarray) -> np.ndarray:
    """``round(w * 255)`` as uint8: max abs error 1/510 (< 2e-3) on [0, 1]."""
    return np.rint(np.clip(weights, 0.0, 1.0) * 255.0).astype(np.uint8)


def _from_codes(codes: np.ndarray) -> np.ndarray:
    return codes.astype(np.float32) * np.float32(1.0 / 255.0)


class CompactUint8(Encoding):
    """uint8 codes, transposed key-major, in one raw LZMA2 stream (the default).

    Max abs error 1/510 (< 2e-3). Quantisation is already near-optimal for a max-error
    bound, so the gain is in the coder: LZMA2's context-modelled range coder packs the
    codes about 15% smaller than deflate (docs/benchmarks.md), and key-major order lines
    up the columns of "vertical" heads. Stored as a 1-D uint8 dataset with a ``shape``
    attribute; decode with ``lzma.decompress(data, format=lzma.FORMAT_RAW,
    filters=COMPACT_FILTERS)``, reshape to ``[L, H, Tk, Tq]`` and swap the last two axes.
    """

    name = "compact"
    max_abs_error = 0.5 / 255

    def encode(self, weights: np.ndarray) -> np.ndarray:
        keymajor = np.ascontiguousarray(_codes(weights).swapaxes(-1, -2))
        packed = lzma.compress(keymajor.tobytes(), format=lzma.FORMAT_RAW, filters=COMPACT_ENCODE_FILTERS)
        return np.frombuffer(packed, dtype=np.uint8)

    def decode(self, stored: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        raw = lzma.decompress(stored.tobytes(), format=lzma.FORMAT_RAW, filters=COMPACT_FILTERS)
        keymajor_shape = (*shape[:-2], shape[-1], shape[-2])
        codes = np.frombuffer(raw, dtype=np.uint8).reshape(keymajor_shape).swapaxes(-1, -2)
        return _from_codes(codes)

    def dataset_options(self, shape):
        return {}


COMPACT_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6, "lc": 4, "lp": 0, "pb": 0}]
# Preset 4 encodes these codes in half the time of preset 6 at the same size on the bundled probe
# (+2% on 49-token examples); its 4 MiB dictionary is within the 8 MiB that COMPACT_FILTERS
# decodes with, so every stream, old or new, decodes with COMPACT_FILTERS.
COMPACT_ENCODE_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 4, "lc": 4, "lp": 0, "pb": 0}]


class Uint8(Encoding):
    """uint8 codes with HDF5's own deflate filter: any HDF5 tool can read them (max error 1/510)."""

    name = "uint8"
    max_abs_error = 0.5 / 255

    def encode(self, weights: np.ndarray) -> np.ndarray:
        return _codes(weights)

    def decode(self, stored: np.ndarray, shape) -> np.ndarray:
        return _from_codes(stored)

    def dataset_options(self, shape):
        return {"compression": "gzip", "compression_opts": 9, "chunks": shape}


class Float16(Encoding):
    """float16 with byte shuffle and deflate: exact to half precision (error <= 2**-12 on [0, 1])."""

    name = "float16"
    max_abs_error = 2.0**-12

    def encode(self, weights: np.ndarray) -> np.ndarray:
        return weights.astype(np.float16)

    def decode(self, stored: np.ndarray, shape) -> np.ndarray:
        return stored.astype(np.float32)

    def dataset_options(self, shape):
        return {"compression": "gzip", "compression_opts": 6, "shuffle": True, "chunks": shape}


ENCODINGS: dict[str, Encoding] = {e.name: e for e in (CompactUint8(), Uint8(), Float16())}
DEFAULT_ENCODING = "compact"


def get_encoding(name: str) -> Encoding:
    if name not in ENCODINGS:
        raise ValueError(f"encoding must be one of {sorted(ENCODINGS)}, got {name!r}")
    return ENCODINGS[name]


# ---------------------------------------------------------------- file helpers
def data_dir(run_dir: str | os.PathLike) -> Path:
    """The attnflows folder of a TensorBoard run directory (accepts the folder itself too)."""
    path = Path(run_dir)
    return path if path.name == DATA_DIRNAME and (path / "run.json").is_file() else path / DATA_DIRNAME


def snapshot_filename(step: int) -> str:
    return f"step-{step:012d}.h5"


def publish_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (temporary dot-file, fsync, ``os.replace``)."""
    with _atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(payload)


def publish_json(path: Path, value: Mapping) -> None:
    publish_bytes(path, json.dumps(value, indent=1, sort_keys=True, default=_json_default).encode("utf-8"))


class _atomic_path:
    """Context manager yielding a temporary path that is fsynced and renamed onto ``path`` on success."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        fd = os.open(self.tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.tmp, self.path)
        _fsync_dir(self.path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def write_marker_events_file(run_dir: Path) -> None:
    """A header-only TensorBoard events file, so the run is listed even if nothing else logs there."""
    if any(p.name.endswith(".attnflows") for p in run_dir.glob("events.out.tfevents.*")):
        return
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(run_dir), filename_suffix=".attnflows")
    writer.close()


# ---------------------------------------------------------------------- writer
class RunExistsError(ValueError):
    """The run directory already holds data that this writer must not overwrite or mix with."""


class RunWriter:
    """Writes one run directory: metadata and probe once, then one shard per snapshot.

    Args:
        run_dir: the TensorBoard run directory; data goes to ``run_dir/attnflows``.
        meta: JSON-serialisable run metadata (model, streams, hyperparameters, ...).
            ``meta["probe_id"]`` and ``meta["model"]["identity"]`` identify the run.
        probe_arrays: what ``probe.h5`` holds (see :func:`probe_arrays`).
        encoding: one of :data:`ENCODINGS`.
        overwrite: replace a run directory that holds another probe set or model, or
            any snapshots when not resuming.
        resume: continue a run with the same probe set and model.

    Raises:
        RunExistsError: if the directory holds another probe set or model (without
            ``overwrite``), or snapshots (without ``resume`` or ``overwrite``).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        meta: dict,
        probe_arrays: dict,
        encoding: str = DEFAULT_ENCODING,
        overwrite: bool = False,
        resume: bool = False,
        marker_events_file: bool = True,
    ):
        self.encoding = get_encoding(encoding)
        self.run_dir = Path(run_dir)
        self.data_dir = self.run_dir / DATA_DIRNAME
        self.snapshot_dir = self.data_dir / SNAPSHOT_DIRNAME
        meta = {**meta, "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "encoding": self.encoding.name}
        existing = self._existing_meta()
        if existing is not None:
            self._check_compatible(existing, meta, overwrite=overwrite, resume=resume)
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        if existing is None or overwrite:
            meta.setdefault("created", time.time())
            self._write_probe(probe_arrays)
            publish_json(self.data_dir / "run.json", meta)
        else:
            meta = {**existing, **{k: v for k, v in meta.items() if k not in ("created", "encoding")}}
            publish_json(self.data_dir / "run.json", meta)
            self.encoding = get_encoding(existing.get("encoding", DEFAULT_ENCODING))
        self.meta = meta
        if marker_events_file:
            write_marker_events_file(self.run_dir)
        self.set_status("running")

    # --------------------------------------------------------------- set-up
    def _existing_meta(self) -> dict | None:
        path = self.data_dir / "run.json"
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RunExistsError(
                f"{self.data_dir} holds an unreadable run.json ({err}); pass overwrite=True to replace it, "
                "or choose another run directory"
            ) from None

    def _check_compatible(self, existing: dict, meta: dict, *, overwrite: bool, resume: bool) -> None:
        if overwrite:
            # Replace only what attnflows wrote; anything else in the TensorBoard run stays.
            shutil.rmtree(self.data_dir)
            return
        if existing.get("probe_id") != meta.get("probe_id"):
            raise RunExistsError(
                f"{self.data_dir} holds snapshots of another probe set (probe id {existing.get('probe_id')}, "
                f"this one is {meta.get('probe_id')}); use a new run directory, or pass overwrite=True to replace it"
            )
        old_model = existing.get("model", {}).get("identity")
        new_model = meta.get("model", {}).get("identity")
        if old_model != new_model:
            raise RunExistsError(
                f"{self.data_dir} holds snapshots of another model ({old_model}, this one is {new_model}); "
                "use a new run directory, or pass overwrite=True to replace it"
            )
        if not resume and self.steps():
            raise RunExistsError(
                f"{self.data_dir} already holds {len(self.steps())} snapshots (last step {self.steps()[-1]}); "
                "pass resume=True to continue that run, or overwrite=True to replace it"
            )

    def _write_probe(self, arrays: dict) -> None:
        with _atomic_path(self.data_dir / "probe.h5") as tmp:
            with h5py.File(tmp, "w") as f:
                for name, value in arrays.items():
                    if value is None:
                        continue
                    if name.startswith("attr:"):
                        f.attrs[name[5:]] = value
                    elif isinstance(value, list) and value and isinstance(value[0], str):
                        f.create_dataset(name, data=np.array(value, dtype=object), dtype=h5py.string_dtype())
                    elif isinstance(value, list):  # ragged integer rows
                        dt = h5py.vlen_dtype(np.int32)
                        ds = f.create_dataset(name, (len(value),), dtype=dt)
                        for k, row in enumerate(value):
                            ds[k] = np.asarray(row, dtype=np.int32)
                    else:
                        f.create_dataset(name, data=np.asarray(value))

    # -------------------------------------------------------------- snapshots
    def steps(self) -> list[int]:
        """Steps of the published snapshots, sorted."""
        if not self.snapshot_dir.exists():
            return []
        return sorted(int(m.group(1)) for m in map(SNAPSHOT_NAME.match, os.listdir(self.snapshot_dir)) if m)

    def purge_from(self, step: int) -> list[int]:
        """Delete published snapshots at ``step`` and later (orphans of a crashed attempt)."""
        purged = [s for s in self.steps() if s >= step]
        for s in purged:
            (self.snapshot_dir / snapshot_filename(s)).unlink(missing_ok=True)
        if purged:
            _fsync_dir(self.snapshot_dir)
        return purged

    def write_snapshot(
        self,
        step: int,
        *,
        attention: Mapping[str, list[np.ndarray]],
        logits: np.ndarray | None = None,
        summaries: Mapping[str, Mapping[str, np.ndarray]] | None = None,
        kind: str = "step",
        epoch: int | None = None,
        wall_time: float | None = None,
        extra: Mapping[str, np.ndarray] | None = None,
    ) -> Path:
        """Encode and publish one snapshot atomically; returns the published path."""
        if kind not in SNAPSHOT_KINDS:
            raise ValueError(f"kind must be one of {SNAPSHOT_KINDS}, got {kind!r}")
        path = self.snapshot_dir / snapshot_filename(step)
        with _atomic_path(path) as tmp:
            with h5py.File(tmp, "w", libver="latest") as f:
                f.attrs.update(
                    format_version=FORMAT_VERSION,
                    step=int(step),
                    kind=kind,
                    wall_time=float(time.time() if wall_time is None else wall_time),
                    encoding=self.encoding.name,
                )
                if epoch is not None:
                    f.attrs["epoch"] = int(epoch)
                for stream, per_example in attention.items():
                    group = f.create_group(f"attention/{stream}")
                    for i, weights in enumerate(per_example):
                        stored = self.encoding.encode(weights)
                        ds = group.create_dataset(str(i), data=stored, **self.encoding.dataset_options(stored.shape))
                        ds.attrs["shape"] = np.asarray(weights.shape, dtype=np.int64)
                if logits is not None:
                    f.create_dataset("logits", data=np.asarray(logits, dtype=np.float32))
                for stream, metrics in (summaries or {}).items():
                    for name, value in metrics.items():
                        f.create_dataset(f"summary/{stream}/{name}", data=np.asarray(value, dtype=np.float32))
                for name, value in (extra or {}).items():
                    f.create_dataset(f"extra/{name}", data=np.asarray(value))
        return path

    def set_status(self, status: str, **details) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        publish_json(self.data_dir / "status.json", {"status": status, "updated": time.time(), **details})

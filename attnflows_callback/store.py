"""The run directory on disk: the crash-safe writer and its lock.

The names on disk are :mod:`.schema`'s, the attention encodings :mod:`.encodings`', the file
safety (regular files only, atomic publish) :mod:`.fileio`'s and the one-writer rule
:mod:`.writer_lock`'s; this module re-exports them.

Layout (``docs/format.md`` is the full schema)::

    <tensorboard run dir>/
        events.out.tfevents.*.attnflows     header-only marker, so TensorBoard lists the run
        attnflows/
            run.json                        model, streams, probe id, hyperparameters, format version
            status.json                     running | finished | failed | interrupted
            writer.lock                     the live writer's host and PID (one writer per run)
            probe.h5                        texts, labels, token ids, tokens, other fed inputs
            snapshots/step-000000000000.h5  one immutable file per snapshot

Every file is written under a temporary dot-name, flushed, fsynced, closed and then
published with ``os.replace``: a reader sees a whole file or nothing, a SIGKILL at any
instant leaves every published snapshot readable with plain h5py, and appending costs
one new file. The sorted listing of ``snapshots/`` is the index.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from .schema import (  # noqa: F401  (re-exported: the names every writer and reader of a run share)
    DATA_DIRNAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    HIDDEN_ATTR,
    LOCK_NAME,
    OLDEST_FORMAT_VERSION,
    PROBE_H5,
    RUN_JSON,
    SHAPE_ATTR,
    SHARD_EXTRA,
    SHARD_LOGITS,
    SNAPSHOT_DIRNAME,
    SNAPSHOT_KINDS,
    SNAPSHOT_NAME,
    STATUS_JSON,
    STATUSES,
    TEMP_NAME,
    UNITS_ATTR,
    attention_path,
    mean_path,
    source_rows_path,
    snapshot_filename,
    summary_path,
)
from .encodings import (  # noqa: F401  (re-exported)
    COMPACT_ENCODE_FILTERS,
    COMPACT_FILTERS,
    DEFAULT_ENCODING,
    ENCODINGS,
    CompactUint8,
    Encoding,
    Float16,
    Uint8,
    decompress_exactly,
    get_encoding,
)
from .fileio import (  # noqa: F401  (re-exported)
    RegularH5File,
    UnsafeFileError,
    _fsync_dir,
    _json_default,
    _overwrite_in_place,
    _published_image,
    open_regular,
    publish_bytes,
    publish_json,
    read_json,
    read_regular,
)
from .step_products import HeadMean, source_row_table
from .writer_lock import RunExistsError, RunLockedError, WriterLock, dead_writer  # noqa: F401  (re-exported)


# ---------------------------------------------------------------- file helpers
def data_dir(run_dir: str | os.PathLike) -> Path:
    """The attnflows folder of a TensorBoard run directory (accepts the folder itself too)."""
    path = Path(run_dir)
    return path if path.name == DATA_DIRNAME and (path / RUN_JSON).is_file() else path / DATA_DIRNAME


def write_marker_events_file(run_dir: Path) -> None:
    """A header-only TensorBoard events file, so the run is listed even if nothing else logs there."""
    if any(p.name.endswith(".attnflows") for p in run_dir.glob("events.out.tfevents.*")):
        return
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(run_dir), filename_suffix=".attnflows")
    writer.close()


# ---------------------------------------------------------------------- writer
def model_shape(meta: Mapping) -> str:
    """What a resumed run must share with the model: its streams (layers x heads) and classes.

    Example:
        >>> model_shape({"streams": {"self": {"layers": 2, "heads": 4}}, "model": {"config": {"id2label": {0: "a", 1: "b"}}}})
        'streams self=2x4, 2 classes'
    """
    streams = meta.get("streams") or {}
    text = "streams " + (",".join(f"{name}={info.get('layers')}x{info.get('heads')}"
                                  for name, info in sorted(streams.items())) or "none")
    config = (meta.get("model") or {}).get("config") or {}
    classes = len(config["id2label"]) if isinstance(config.get("id2label"), Mapping) else config.get("num_labels")
    return text if classes is None else f"{text}, {classes} classes"


class RunWriter:
    """Writes one run directory: metadata and probe once, then one shard per snapshot.

    One writer per run: the writer holds the run's :class:`WriterLock` from construction to
    :meth:`close`, and a second writer (``resume=True`` and ``overwrite=True`` included) is
    refused before it reads, purges or writes anything. Temporary files left by a killed
    writer (older than the lock, which is now ours) are removed.

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
        RunLockedError: another live writer holds the run (its host and PID are named).
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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.lock = WriterLock(self.data_dir).acquire()
        try:
            existing = self._existing_meta()
            if existing is not None:
                self._check_compatible(existing, meta, overwrite=overwrite, resume=resume)
            self.snapshot_dir.mkdir(parents=True, exist_ok=True)
            self.removed_temporaries = self._remove_orphaned_temporaries()
            if existing is None or overwrite:
                meta.setdefault("created", time.time())
                self._write_probe(probe_arrays)
                publish_json(self.data_dir / RUN_JSON, meta)
            else:
                meta = {**existing, **{k: v for k, v in meta.items() if k not in ("created", "encoding")}}
                publish_json(self.data_dir / RUN_JSON, meta)
                self.encoding = get_encoding(existing.get("encoding", DEFAULT_ENCODING))
            self.meta = meta
            if marker_events_file:
                write_marker_events_file(self.run_dir)
            self.set_status("running")
        except BaseException:
            self.lock.release()
            raise

    def close(self) -> None:
        """Release the writer lock (after the final status). Safe to call twice."""
        self.lock.release()

    # --------------------------------------------------------------- set-up
    def _existing_meta(self) -> dict | None:
        path = self.data_dir / RUN_JSON
        if not os.path.lexists(path):
            return None
        try:
            return read_json(path)
        except (OSError, ValueError) as err:
            raise RunExistsError(
                f"{self.data_dir} holds an unreadable run.json ({err}); pass overwrite=True to replace it, "
                "or choose another run directory"
            ) from None

    def _remove_orphaned_temporaries(self) -> list[str]:
        """Delete the temporary dot-files of killed writers: this writer holds the lock, so none is in use."""
        removed = []
        for folder in (self.data_dir, self.snapshot_dir):
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                try:
                    if (TEMP_NAME.match(entry.name) and entry.is_file(follow_symlinks=False)
                            and entry.stat(follow_symlinks=False).st_mtime <= self.lock.acquired_at):
                        os.unlink(entry.path)
                        removed.append(entry.name)
                except OSError:
                    continue
        return removed

    def _check_compatible(self, existing: dict, meta: dict, *, overwrite: bool, resume: bool) -> None:
        if overwrite:
            # Replace only what attnflows wrote; anything else in the TensorBoard run stays (and the lock we hold).
            for entry in os.scandir(self.data_dir):
                if entry.name == LOCK_NAME:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            return
        if existing.get("probe_id") != meta.get("probe_id"):
            raise RunExistsError(
                f"{self.data_dir} holds snapshots of another probe set (probe id {existing.get('probe_id')}, "
                f"this one is {meta.get('probe_id')}); use a new run directory, or pass overwrite=True to replace it"
            )
        old_shape, new_shape = model_shape(existing), model_shape(meta)
        if old_shape != new_shape:
            raise RunExistsError(
                f"{self.data_dir} holds snapshots of another model shape (the run has {old_shape}; this model has "
                f"{new_shape}); one run holds one model: use a new run directory, or pass overwrite=True to replace it"
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
        with _published_image(self.data_dir / PROBE_H5) as image:
            with h5py.File(image, "w") as f:
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
        means: Sequence[HeadMean] = (),
    ) -> Path:
        """Encode and publish one snapshot atomically; returns the published path.

        ``means``: head means of long examples (:mod:`.step_products`), stored in the run's encoding.
        """
        if kind not in SNAPSHOT_KINDS:
            raise ValueError(f"kind must be one of {SNAPSHOT_KINDS}, got {kind!r}")
        path = self.snapshot_dir / snapshot_filename(step)
        with _published_image(path) as image:
            with h5py.File(image, "w", libver="latest") as f:
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
                    group = f.create_group(attention_path(stream))
                    for i, weights in enumerate(per_example):
                        self._write_weights(group, str(i), weights)
                source_rows: dict[tuple[str, str], dict[int, np.ndarray]] = {}
                for mean in means:
                    ds = self._write_weights(f, mean_path(mean.stream, mean.targets, mean.example), mean.values)
                    ds.attrs[HIDDEN_ATTR] = float(mean.hidden)
                    ds.attrs[UNITS_ATTR] = mean.units
                    source_rows.setdefault((mean.stream, mean.targets), {})[mean.example] = mean.source_row
                for (stream, targets), rows in source_rows.items():  # a step's rows in one table: one read
                    per_example = attention[stream]
                    table = source_row_table(rows, len(per_example), max(w.shape[-1] for w in per_example))
                    f.create_dataset(source_rows_path(stream, targets), data=table)
                if logits is not None:
                    f.create_dataset(SHARD_LOGITS, data=np.asarray(logits, dtype=np.float32))
                for stream, metrics in (summaries or {}).items():
                    for name, value in metrics.items():
                        f.create_dataset(summary_path(stream, name), data=np.asarray(value, dtype=np.float32))
                for name, value in (extra or {}).items():
                    f.create_dataset(f"{SHARD_EXTRA}/{name}", data=np.asarray(value))
        return path

    def _write_weights(self, parent, name: str, weights: np.ndarray):
        """One tensor of weights in [0, 1] (an example's attention, a head mean), in the run's encoding."""
        stored = self.encoding.encode(weights)
        ds = parent.create_dataset(name, data=stored, **self.encoding.dataset_options(stored.shape))
        ds.attrs[SHAPE_ATTR] = np.asarray(weights.shape, dtype=np.int64)
        ds.attrs.update(self.encoding.dataset_attrs())
        return ds

    def set_status(self, status: str, **details) -> None:
        """Publish ``status.json``; when the atomic publish fails (a full disk has no room for a
        temporary copy) the small file is overwritten in place, in the blocks it already has."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        path = self.data_dir / STATUS_JSON
        payload = json.dumps({"status": status, "updated": time.time(), **details}, indent=1, sort_keys=True,
                             default=_json_default).encode("utf-8")
        try:
            publish_bytes(path, payload)
        except OSError as err:
            try:
                _overwrite_in_place(path, payload)
            except OSError:
                raise err from None

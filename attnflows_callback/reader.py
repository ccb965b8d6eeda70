"""Reading a run directory: ``open_run(run_dir)`` and the :class:`Run` it returns.

A :class:`Run` is cheap to open and safe to keep while training writes: published
snapshot files are immutable, :meth:`Run.refresh` picks up new ones incrementally, and
open HDF5 handles sit in a small LRU cache. A shard that cannot be read (truncated,
corrupted, unknown format version, a link out of the run, a shape that disagrees with
``run.json`` and the probe) is skipped and reported in :attr:`Run.problems`; the rest of the
run still opens.

Hostile files cost bounded time and memory: only regular files are opened (a FIFO, device
or symbolic link is refused before HDF5 sees it, checked at every open), and every declared
shape and size is checked against ``run.json`` and the probe before anything is decoded.

What needs no snapshot (the probe's texts, tokens and fed inputs; the streams and their
shapes) is read once at open, by :class:`~attnflows_callback.run_probe.RunProbe`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .schema import (
    DATA_DIRNAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    HIDDEN_ATTR,
    MEAN_UNITS,
    OLDEST_FORMAT_VERSION,
    RUN_JSON,
    SHAPE_ATTR,
    SHARD_LOGITS,
    SHARD_SUMMARY,
    SNAPSHOT_DIRNAME,
    SNAPSHOT_NAME,
    SOURCE_ROW_ATTR,
    STATUS_JSON,
    UNITS_ATTR,
    attention_path,
    mean_group,
    mean_path,
    source_rows_path,
    summary_path,
)
from . import checks
from .limits import MAX_ATTENTION_VALUES, MAX_CLASSES, MAX_STATUS_BYTES, OPEN_FILES
from .lru import LRU
from .fileio import read_h5_dataset as _read
from .fileio import safe_h5_member_id as _safe_member
from .fileio import safe_h5_object as _safe
from .run_probe import STREAM_ORDER, RunProbe  # noqa: F401  (STREAM_ORDER re-exported)
from .store import RegularH5File, UnsafeFileError, data_dir, dead_writer, get_encoding, read_json


class NotARunError(FileNotFoundError):
    """The path holds no attnflows run."""


@dataclass(frozen=True)
class Problem:
    """A shard that was skipped, and why (no absolute paths: safe to show)."""

    file: str
    reason: str


@dataclass(frozen=True)
class SnapshotInfo:
    """What the index knows of one published snapshot without reading its tensors."""

    step: int
    kind: str
    epoch: int | None
    wall_time: float
    file: str
    identity: tuple[int, int, int]  # inode, size, mtime_ns: a replaced shard is a new file


def open_run(run_dir: str | os.PathLike) -> Run:
    """Open a run directory (the TensorBoard run folder, or its ``attnflows/`` folder).

    Example:
        >>> import tempfile
        >>> try:
        ...     open_run(tempfile.mkdtemp())
        ... except NotARunError as err:
        ...     print(type(err).__name__)
        NotARunError
    """
    return Run(run_dir)


class Run(RunProbe):
    """One recorded run. See :func:`open_run`.

    Attributes:
        meta: model name and config, streams, hyperparameters, probe id, format version.
        problems: list of :class:`Problem` for shards that were skipped.
        texts: the probe texts (first segments).
        text_pairs: the second segments of a sentence-pair probe set, one per text, or
            None for single sentences. The model saw ``tokenizer(texts[i], text_pairs[i])``:
            :meth:`tokens` and :meth:`model_inputs` hold both segments, joined as the
            tokenizer joins them (``[CLS] a [SEP] b [SEP]`` for BERT).
        notes: caveats about how the run was recorded, safe to show (empty for a run of
            the current format). A format-1 run's probe pass fed only ``input_ids`` and
            ``attention_mask``, so a sentence-pair run from then may carry segment-less
            attention (docs/format.md).
    """

    def __init__(self, run_dir: str | os.PathLike):
        path = Path(run_dir)
        self.data_dir = data_dir(path)
        self.run_dir = self.data_dir.parent
        meta_path = self.data_dir / RUN_JSON
        if not meta_path.is_file():
            raise NotARunError(f"{path.name or path} is not an attnflows run: it has no {DATA_DIRNAME}/run.json")
        try:
            self.meta = read_json(meta_path)
        except ValueError as err:
            raise NotARunError(f"{path.name}: run.json is not valid JSON ({getattr(err, 'msg', err)})") from None
        if not isinstance(self.meta, dict):
            raise NotARunError(f"{path.name}: run.json is not an attnflows run (not a JSON object)")
        if self.meta.get("format") != FORMAT_NAME:
            raise NotARunError(f"{path.name}: run.json is not an attnflows run (format {self.meta.get('format')!r})")
        if int(self.meta.get("format_version", -1)) > FORMAT_VERSION:
            raise NotARunError(
                f"{path.name}: written by a newer attnflows (format {self.meta.get('format_version')}, "
                f"this one reads up to {FORMAT_VERSION}); upgrade attnflows"
            )
        self._lock = threading.RLock()
        self._files = LRU(OPEN_FILES, on_evict=lambda step, handle: handle.close())  # step -> open shard
        self._snapshots: dict[int, SnapshotInfo] = {}
        self._summaries: dict[int, dict] = {}
        self._logits: dict[int, np.ndarray | None] = {}
        self._bad: dict[str, tuple[tuple, Problem]] = {}
        self._classes: int | None = None  # logits width: the first readable shard's, all others must agree
        self._load_probe()
        self.refresh()

    # ----------------------------------------------------------------- status
    @property
    def status(self) -> dict:
        """``{"status": "running"|"finished"|"failed"|"interrupted", ...}`` as last published.

        ``failed`` and ``interrupted`` carry a ``reason``. A run that says ``running`` while its
        writer's lock names a process of this host that is gone (killed) reads ``interrupted``.
        """
        try:
            status = read_json(self.data_dir / STATUS_JSON, MAX_STATUS_BYTES)
        except (OSError, ValueError, UnicodeDecodeError):
            return {"status": "unknown"}
        if not isinstance(status, dict):
            return {"status": "unknown"}
        if status.get("status") == "running":
            gone = dead_writer(self.data_dir)
            if gone is not None:
                return {**status, "status": "interrupted", "reason": gone}
        return status

    # -------------------------------------------------------------- snapshots
    @property
    def steps(self) -> np.ndarray:
        """Sorted steps of the readable, published snapshots."""
        with self._lock:
            return np.array(sorted(self._snapshots), dtype=np.int64)

    def snapshot_info(self, step: int) -> SnapshotInfo:
        with self._lock:
            if step not in self._snapshots:
                raise KeyError(f"step {step} is not a snapshot of this run (steps: {self._steps_text()})")
            return self._snapshots[step]

    @property
    def problems(self) -> list[Problem]:
        with self._lock:
            return [problem for _, problem in self._bad.values()]

    def refresh(self) -> list[int]:
        """Pick up snapshots published (or purged) since the last call; returns the new steps."""
        snap_dir = self.data_dir / SNAPSHOT_DIRNAME
        try:
            entries = list(os.scandir(snap_dir))
        except FileNotFoundError:
            entries = []
        listed: dict[int, tuple[os.DirEntry, tuple]] = {}
        for entry in entries:
            m = SNAPSHOT_NAME.match(entry.name)
            if not m:
                continue  # temporary dot-files and anything else: never half-written data
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            listed[int(m.group(1))] = (entry, (st.st_ino, st.st_size, st.st_mtime_ns))
        new_steps = []
        with self._lock:
            for step in [s for s in self._snapshots if s not in listed or listed[s][1] != self._snapshots[s].identity]:
                self._forget(step)
            for name in [n for n, (ident, _) in self._bad.items() if not any(e.name == n and i == ident for e, i in listed.values())]:
                del self._bad[name]
            for step, (entry, identity) in sorted(listed.items()):
                if step in self._snapshots or (entry.name in self._bad and self._bad[entry.name][0] == identity):
                    continue
                try:
                    self._index(step, entry, identity)
                    new_steps.append(step)
                except Exception as err:  # a bad shard must never break the rest of the run
                    self._bad[entry.name] = (identity, Problem(entry.name, _reason(err)))
        return new_steps

    def _index(self, step: int, entry: os.DirEntry, identity: tuple) -> None:
        if entry.is_symlink():
            raise UnsafeFileError("is a symbolic link; attnflows reads only regular files inside the run")
        with RegularH5File(entry.path) as f:
            version = int(f.attrs.get("format_version", -1))
            if not OLDEST_FORMAT_VERSION <= version <= FORMAT_VERSION:
                raise ValueError(f"unknown format version {version} (this attnflows reads "
                                 f"{OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})")
            if int(f.attrs["step"]) != step:
                raise ValueError(f"file name says step {step} but the file says {int(f.attrs['step'])}")
            encoding = get_encoding(str(f.attrs["encoding"]))
            for stream in self.streams:
                group = _safe(f, attention_path(stream))
                if len(group) != self.num_examples:
                    raise ValueError(f"stream {stream!r} holds {len(group)} examples, the probe has {self.num_examples}")
                for i in range(self.num_examples):  # links and declared shapes are cheap to check here
                    link = group.get(str(i), getlink=True)
                    if link is None:
                        raise ValueError(f"stream {stream!r} has no example {i}")
                    if not isinstance(link, h5py.HardLink):
                        raise UnsafeFileError(f"'attention/{stream}/{i}' is a {type(link).__name__}; attnflows follows no links")
                    self._check_attention(group[str(i)], encoding, i, stream)
            logits = self._read_logits(f) if SHARD_LOGITS in f else None
            summaries = {}
            if SHARD_SUMMARY in f:
                for stream in _safe(f, SHARD_SUMMARY):
                    if stream not in self.meta.get("streams", {}):
                        continue  # not a stream of this run: never read
                    expected = (self.num_examples, *self.stream_shape(stream))
                    summaries[stream] = {k: _read(f, summary_path(stream, k), shape=expected)
                                         for k in _safe(f, summary_path(stream))}
            epoch = f.attrs.get("epoch")
            info = SnapshotInfo(
                step=step,
                kind=str(f.attrs.get("kind", "step")),
                epoch=None if epoch is None else int(epoch),
                wall_time=float(f.attrs.get("wall_time", 0.0)),
                file=entry.name,
                identity=identity,
            )
        if logits is not None and self._classes is None:
            self._classes = logits.shape[1]
        self._snapshots[step] = info
        self._summaries[step] = summaries
        self._logits[step] = logits

    def _read_logits(self, f: h5py.File) -> np.ndarray:
        """``[examples, classes]`` logits, their shape checked before they are read."""
        dataset = _safe(f, SHARD_LOGITS)
        shape = dataset.shape
        if len(shape) != 2 or shape[0] != self.num_examples or not 1 <= shape[1] <= MAX_CLASSES:
            raise ValueError(f"logits have shape {list(shape)}; this run needs [{self.num_examples}, classes]")
        if self._classes is not None and shape[1] != self._classes:
            raise ValueError(f"logits have {shape[1]} classes; this run's snapshots have {self._classes}")
        if dataset.dtype.kind not in "fiu":
            raise ValueError(f"logits have dtype {dataset.dtype}; attnflows writes float32")
        return np.asarray(_read(f, SHARD_LOGITS), dtype=np.float32)

    def expected_shape(self, i: int, stream: str | None = None) -> tuple[int, int, int, int]:
        """``(layers, heads, Tq, Tk)`` that ``run.json`` and the probe say example ``i`` has in ``stream``."""
        stream = self._check_stream(stream)
        layers, heads = self.stream_shape(stream)
        queries, keys = self.stream_tokens(i, stream)
        rows = (self.meta["streams"][stream] or {}).get("rows", "all")
        return layers, heads, 1 if rows == "cls" else len(queries), len(keys)

    def _check_attention(self, dataset, encoding, i: int, stream: str) -> tuple[int, ...]:
        """The declared shape of one attention dataset, refused unless it fits the run and the probe."""
        return _check_weights(dataset, encoding, attention_path(stream, i), self.expected_shape(i, stream))

    def _forget(self, step: int) -> None:
        self._snapshots.pop(step, None)
        self._summaries.pop(step, None)
        self._logits.pop(step, None)
        handle = self._files.pop(step, None)
        if handle is not None:
            handle.close()

    def _file(self, step: int) -> h5py.File:
        with self._lock:
            info = self.snapshot_info(step)
            handle = self._files.get(step)
            if handle is None:
                handle = RegularH5File(self.data_dir / SNAPSHOT_DIRNAME / info.file)
                if handle.identity != info.identity:  # what was indexed is what is read
                    handle.close()
                    raise UnsafeFileError(f"{info.file} was replaced since it was indexed; refresh the run")
                self._files.put(step, handle)
            return handle

    # -------------------------------------------------------------- tensors
    def attention(self, i: int, step: int, stream: str | None = None, *, layer: int | None = None) -> np.ndarray:
        """float32 ``[layers, heads, Tq_i, Tk_i]`` attention of example ``i`` at ``step``.

        ``layer``: that layer only, ``[1, heads, Tq_i, Tk_i]``; a long example in ``zstd-u8`` then
        decodes one layer's chunk, not the whole tensor.
        """
        self._check_example(i)
        stream = self._check_stream(stream)
        if layer is not None:
            checks.integer("layer", layer, minimum=0, maximum=self.stream_shape(stream)[0] - 1)
        with self._lock:
            dataset, encoding, shape = self._attention_dataset(i, step, stream)
            part = None if layer is None else encoding.read_layer(dataset, shape, layer)
            stored = encoding.read(dataset, shape) if part is None else part
        if part is not None:  # one layer's chunk, decoded alone
            shape = (1, *shape[1:])
        decoded = encoding.decode(stored, shape)
        if decoded.shape != shape:
            raise ValueError(f"'attention/{stream}/{i}' decodes to shape {list(decoded.shape)}, not {list(shape)}")
        if layer is not None and part is None:  # decoded whole: a copy of the layer, not a view holding the whole
            return decoded[layer : layer + 1].copy()
        return decoded

    def reads_a_layer_alone(self, i: int, step: int, stream: str | None = None) -> bool:
        """Whether ``attention(i, step, stream, layer=k)`` decodes layer ``k`` alone (a long example in
        ``zstd-u8``, stored one chunk per layer); otherwise it decodes the whole tensor and cuts the layer out."""
        with self._lock:
            dataset, encoding, shape = self._attention_dataset(i, step, stream)
            return encoding.reads_layers(dataset, shape)

    def _attention_dataset(self, i: int, step: int, stream: str | None):
        """``(dataset, encoding, [L, H, Tq, Tk])`` of example ``i``'s attention at ``step``, checked (call under the lock)."""
        self._check_example(i)
        stream = self._check_stream(stream)
        f = self._file(int(step))
        dataset = _safe(f, attention_path(stream, i))
        encoding = get_encoding(str(f.attrs["encoding"]))
        return dataset, encoding, self._check_attention(dataset, encoding, i, stream)

    def head_mean(self, i: int, step: int, stream: str | None = None, targets: str = "none") -> StoredMean | None:
        """The head mean of example ``i`` at ``step`` that the writer stored for a long example
        (:mod:`.step_products`), with the share of attention its view hides and its units; None when not stored.

        ``targets`` names what the view hides (:data:`~.analysis.view.TARGET_SETS`): ``"none"`` is the raw
        head mean over tokens; the writer stores it and the default view's (``"special_punct"`` over words
        for BERT-like inputs).
        """
        with self._lock:
            found = self._mean_dataset(i, step, stream, targets)
            if found is None:
                return None
            dataset, encoding, path, shape, units = found
            stored = encoding.read(dataset, shape)
            hidden = float(np.asarray(dataset.attrs.get(HIDDEN_ATTR, np.nan)).ravel()[0])
        decoded = encoding.decode(stored, shape)
        if decoded.shape != shape:
            raise ValueError(f"{path!r} decodes to shape {list(decoded.shape)}, not {list(shape)}")
        return StoredMean(decoded, hidden, units)

    def source_row(self, i: int, step: int, stream: str | None = None, targets: str = "none") -> np.ndarray | None:
        """The classification token's row ``float32 [T]`` of the rollout through :meth:`head_mean` (what the
        aggregate averages), stored with a long example's head mean; None when not stored.

        Reads the step's table of source rows (its shape and type checked first), not the mean;
        :meth:`source_rows` reads many examples' rows at once.
        """
        return self.source_rows(step, stream, {i: targets}).get(int(i))

    def source_rows(self, step: int, stream: str | None, targets: dict[int, str]) -> dict[int, np.ndarray]:
        """:meth:`source_row` of each example in ``targets`` (example -> the targets its view hides) at ``step``,
        in one read of the step's table (``source_rows/<stream>/<targets>``; older shards: an attribute on
        each head mean); examples with no stored row are left out.

        Example:
            >>> import tempfile
            >>> try:
            ...     open_run(tempfile.mkdtemp()).source_rows(0, None, {0: "none"})
            ... except Exception as err:
            ...     print(type(err).__name__)
            NotARunError
        """
        stream = self._check_stream(stream)
        lengths = {}
        for i in targets:
            self._check_example(i)
            lengths[int(i)] = self.expected_shape(i, stream)[-1]
        rows, table_shape = {}, self._source_table_shape(stream)
        with self._lock:
            f = self._file(int(step))
            for name in sorted(set(targets.values())):
                wanted = {int(i): lengths[int(i)] for i, hidden in targets.items() if hidden == name}
                try:  # its declared shape checked before it is read
                    table = _read(f, source_rows_path(stream, name), table_shape)
                except KeyError:  # shards written before the table: an attribute on each head mean
                    rows.update(_attribute_rows(f, stream, name, wanted))
                else:
                    rows.update(self._table_rows(table, source_rows_path(stream, name), wanted))
        return rows

    def _source_table_shape(self, stream: str) -> tuple[int, int]:
        """A step's table of source rows: one row per example, as long as the longest example's tokens."""
        return self.num_examples, max(self.expected_shape(i, stream)[-1] for i in range(self.num_examples))

    @staticmethod
    def _table_rows(table: np.ndarray, path: str, wanted: dict[int, int]) -> dict[int, np.ndarray]:
        """The ``wanted`` examples' rows (example -> length) of a step's source-row table, whose shape was checked
        (every row as long as the longest example); NaN rows are not stored."""
        if table.dtype != np.float32:
            raise ValueError(f"{path!r} holds {table.dtype}; a table of float32 rows is needed")
        rows = {}
        for i, length in wanted.items():
            row, past = table[i, :length], table[i, length:]
            if np.isnan(row).all() and np.isnan(past).all():
                continue  # no row stored for this example
            if not np.isfinite(row).all() or not np.isnan(past).all():
                raise ValueError(f"{path!r} row {i} must hold {length} finite values, then only NaN")
            rows[i] = row.copy()
        return rows

    def _mean_node(self, i: int, step: int, stream: str, targets: str):
        """``(dataset, path)`` of a stored head mean, reached without following a link; None when not stored."""
        path = mean_path(stream, targets, i)
        try:
            return _safe(self._file(int(step)), path), path
        except KeyError:
            return None

    def _mean_dataset(self, i: int, step: int, stream: str | None, targets: str):
        """``(dataset, encoding, path, [L, U, U], units)`` of a stored head mean, checked; None when not stored."""
        self._check_example(i)
        stream = self._check_stream(stream)
        layers, _, queries, keys = self.expected_shape(i, stream)
        found = self._mean_node(i, step, stream, targets)
        if found is None:
            return None
        dataset, path = found
        units = str(np.asarray(dataset.attrs.get(UNITS_ATTR, "tokens")).ravel()[0])
        if units not in MEAN_UNITS:
            raise ValueError(f"{path!r} says its units are {units!r}; attnflows writes one of {list(MEAN_UNITS)}")
        if units == "words":  # [L, W, W] with W words, at most the tokens (the routes check W against the words)
            if self.word_ids(i) is None or queries != keys:
                raise ValueError(f"{path!r} is over words, but example {i} has no word ids")
            declared = tuple(int(n) for n in np.asarray(dataset.attrs.get(SHAPE_ATTR, ())).ravel())
            if len(declared) != 3 or declared[1] != declared[2] or not 1 <= declared[2] <= keys:
                raise ValueError(f"{path!r} declares shape {list(declared)}; a head mean over the words of "
                                 f"example {i} is [{layers}, W, W] with W <= {keys}")
            queries = keys = declared[2]
        encoding = get_encoding(str(dataset.file.attrs["encoding"]))
        return dataset, encoding, path, _check_weights(dataset, encoding, path, (layers, queries, keys)), units

    def logits(self, step: int) -> np.ndarray | None:
        """float32 ``[examples, classes]`` logits at ``step``, or None if the model has no classifier."""
        with self._lock:
            self.snapshot_info(int(step))
            value = self._logits[int(step)]
        return None if value is None else value.copy()

    def probabilities(self, step: int) -> np.ndarray | None:
        logits = self.logits(step)
        if logits is None:
            return None
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def predictions(self, step: int) -> np.ndarray | None:
        logits = self.logits(step)
        return None if logits is None else logits.argmax(axis=1)

    def summary(self, step: int, stream: str | None = None) -> dict[str, np.ndarray]:
        """The small per-snapshot summaries of ``stream``: ``{metric: float32 [examples, layers, heads]}``."""
        stream = self._check_stream(stream)
        with self._lock:
            self.snapshot_info(int(step))
            return {k: v.copy() for k, v in self._summaries[int(step)].get(stream, {}).items()}

    def summary_timeline(self, metric: str, stream: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values ``[steps, examples, layers, heads]``) of one stored summary metric, NaN where absent."""
        stream = self._check_stream(stream)
        layers, heads = self.stream_shape(stream)
        with self._lock:
            steps = self.steps
            values = np.full((len(steps), self.num_examples, layers, heads), np.nan, dtype=np.float32)
            for k, step in enumerate(steps):
                value = self._summaries[int(step)].get(stream, {}).get(metric)
                if value is not None:
                    values[k] = value
        return steps, values

    def close(self) -> None:
        with self._lock:
            self._files.drain()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Run({self.run_dir.name!r}, steps={self._steps_text()}, examples={self.num_examples}, streams={self.streams})"

    def _steps_text(self) -> str:
        steps = sorted(self._snapshots)
        if len(steps) > 6:
            return f"[{steps[0]}, {steps[1]}, ..., {steps[-1]}] ({len(steps)} snapshots)"
        return str(steps)


# ---------------------------------------------------------------- helpers
def _reason(err: Exception) -> str:
    """``"Type: message"`` without absolute paths: an OS error names only its file's last component."""
    text = str(err)
    if isinstance(err, OSError) and not isinstance(err, UnsafeFileError):
        if err.strerror:
            text = err.strerror + (f": {Path(os.fsdecode(err.filename)).name}" if err.filename else "")
        else:
            text = text.split("(")[0].strip()  # h5py's "(name = '/abs/path', errno = ...)" details
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@dataclass(frozen=True)
class StoredMean:
    """A head mean the writer stored (:meth:`Run.head_mean`): ``values`` float32 ``[L, U, U]`` over ``units``
    (``"tokens"``, or ``"words"`` with word pieces merged), and the mean share of attention its view ``hidden``."""

    values: np.ndarray
    hidden: float
    units: str


def _check_weights(dataset, encoding, path: str, expected: tuple[int, ...]) -> tuple[int, ...]:
    """``expected``, once the stored tensor at ``path`` is a plain dataset that declares that shape and
    stores no more than its encoding needs for it; else a ValueError (UnsafeFileError for outside data)."""
    if not isinstance(dataset, h5py.Dataset):
        raise ValueError(f"{path!r} is not a dataset")
    if dataset.is_virtual or dataset.external:
        raise UnsafeFileError(f"{path!r} stores its data outside the file; attnflows reads no external data")
    declared = dataset.attrs.get(SHAPE_ATTR)
    shape = tuple(int(n) for n in np.asarray(declared).ravel()) if declared is not None else ()
    if shape != expected:
        raise ValueError(f"{path!r} declares shape {list(shape)}; run.json and the probe say {list(expected)}")
    if int(np.prod(expected, dtype=np.int64)) > MAX_ATTENTION_VALUES:
        raise ValueError(f"{path!r} would decode to more than {MAX_ATTENTION_VALUES} values")
    if dataset.size > encoding.max_stored_size(expected) or dataset.dtype.itemsize > 4:
        raise ValueError(f"{path!r} stores {dataset.size} values of {dataset.dtype}, "
                         f"more than {encoding.name!r} needs for shape {list(expected)}")
    encoding.check_stored(dataset, expected)  # the encoding's own cheap checks (stored dtype and shape)
    return expected


def _attribute_rows(f, stream: str, targets: str, wanted: dict[int, int]) -> dict[int, np.ndarray]:
    """Source rows as shards before the table stored them: an attribute on each head mean (low-level reads,
    64 examples a step)."""
    try:
        group = _safe(f, mean_group(stream, targets))
    except KeyError:
        return {}
    rows = {}
    for i, length in wanted.items():
        member = _safe_member(group, str(i))
        if member is None or not h5py.h5a.exists(member, SOURCE_ROW_ATTR.encode()):
            continue
        path, stored = mean_path(stream, targets, i), h5py.h5a.open(member, SOURCE_ROW_ATTR.encode())
        if stored.shape != (length,) or stored.dtype != np.float32:
            raise ValueError(f"{path!r} holds a source row of {stored.dtype} {list(stored.shape or ())}; the "
                             f"example needs {length} float32 values")
        rows[i] = np.empty(length, dtype=np.float32)
        stored.read(rows[i])
        if not np.isfinite(rows[i]).all():
            raise ValueError(f"{path!r} holds a source row that is not finite")
    return rows

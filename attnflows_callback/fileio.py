"""File safety for a run directory: open only regular files, read with a size limit, publish atomically.

Every file is written under a temporary dot-name, flushed, fsynced, closed and then published
with ``os.replace``: a reader sees a whole file or nothing. A reader opens only regular files
(a FIFO, device or symbolic link is refused before HDF5 sees it).
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from .limits import MAX_JSON_BYTES, MAX_READ_BYTES


class UnsafeFileError(OSError):
    """A file or HDF5 object that attnflows refuses to read: a link out of the run, a FIFO or device, a bomb."""


def open_regular(path: str | os.PathLike) -> int:
    """A read-only descriptor of ``path`` if it is a regular file here and now, else UnsafeFileError.

    ``lstat`` refuses symbolic links, FIFOs, sockets and devices by name; the open itself
    does not follow a link and cannot block (``O_NOFOLLOW | O_NONBLOCK``), and ``fstat`` of
    the open descriptor must show the same regular file, so nothing swapped in between the
    two is ever read. Checked at every open, never only when the run was listed.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     os.close(open_regular(f.name))
        >>> fifo = Path(tempfile.mkdtemp()) / "probe.h5"
        >>> os.mkfifo(fifo)
        >>> open_regular(fifo)
        Traceback (most recent call last):
        ...
        attnflows_callback.fileio.UnsafeFileError: probe.h5 is a FIFO; attnflows reads only regular files inside the run
    """
    path = Path(path)
    before = os.lstat(path)
    if not stat.S_ISREG(before.st_mode):
        raise UnsafeFileError(f"{path.name} is {_file_kind(before.st_mode)}; attnflows reads only regular files inside the run")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
            raise UnsafeFileError(f"{path.name} was replaced while it was opened; attnflows reads only regular files")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return kind
    return "not a regular file"


def read_regular(path: str | os.PathLike, limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of the regular file ``path`` (see :func:`open_regular`), refusing one larger than ``limit``."""
    with os.fdopen(open_regular(path), "rb") as f:
        chunks, size = [], 0
        while size <= limit:  # in pieces: read(limit) would allocate the limit up front
            chunk = f.read(min(2**16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    if size > limit:
        raise UnsafeFileError(f"{Path(path).name} is larger than {limit} bytes; attnflows wrote no such file")
    return b"".join(chunks)


def read_json(path: str | os.PathLike, limit: int = MAX_JSON_BYTES):
    """JSON from the regular file ``path`` (ValueError if it is not JSON)."""
    return json.loads(read_regular(path, limit).decode("utf-8"))


class RegularH5File(h5py.File):
    """``h5py.File(path, "r")`` of a checked regular file: HDF5 reads through the descriptor that was checked.

    h5py holds one process-wide lock while it opens a file, so a FIFO handed to it would stall
    every other read in the process; HDF5 is only ever given the descriptor
    :func:`open_regular` checked, never a path that might have been swapped since.
    """

    def __init__(self, path: str | os.PathLike):
        fileobj = os.fdopen(open_regular(path), "rb")
        try:
            super().__init__(fileobj, "r")
        except BaseException:
            fileobj.close()
            raise
        self._attnflows_fileobj = fileobj
        opened = os.fstat(fileobj.fileno())
        self.identity = (opened.st_ino, opened.st_size, opened.st_mtime_ns)  # as the reader's index records it

    def close(self) -> None:
        try:
            super().close()
        finally:
            fileobj = self.__dict__.get("_attnflows_fileobj")
            if fileobj is not None:
                fileobj.close()


def publish_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (temporary dot-file, fsync, ``os.replace``)."""
    with _atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(payload)


def publish_json(path: Path, value: Mapping) -> None:
    publish_bytes(path, json.dumps(value, indent=1, sort_keys=True, default=_json_default).encode("utf-8"))


class _published_image:
    """Context manager yielding an in-memory file that is published atomically onto ``path`` on success.

    HDF5 builds the file in memory and Python writes it: a full disk or a lost folder is a
    plain OSError from :func:`publish_bytes`, never an HDF5 file left half-closed (which
    crashes the interpreter at exit).
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self) -> io.BytesIO:
        self.image = io.BytesIO()
        return self.image

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            publish_bytes(self.path, self.image.getvalue())


class _atomic_path:
    """Context manager yielding a temporary path that is fsynced and renamed onto ``path`` on success.

    The temporary file is created ``O_EXCL`` with mode ``0666`` less the umask, like any file
    the user writes (0644 under umask 022; ``mkstemp`` would make it 0600, and ``os.replace``
    keeps that), so the published file is as readable as TensorBoard's own event files.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self) -> Path:
        for _ in range(100):
            name = self.path.parent / f".{self.path.name}.{os.urandom(6).hex()}.tmp"
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
            except FileExistsError:
                continue
            os.close(fd)
            self.tmp = name
            return self.tmp
        raise FileExistsError(errno.EEXIST, f"no free temporary name beside {self.path.name}")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        try:
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)


def _overwrite_in_place(path: Path, payload: bytes) -> None:
    """Write ``payload`` over the regular file ``path`` from its first byte, then cut it to length."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeFileError(f"{path.name} is not a regular file")
        os.pwrite(fd, payload, 0)
        os.ftruncate(fd, len(payload))
        os.fsync(fd)
    finally:
        os.close(fd)


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


# ---------------------------------------------------------------- inside an HDF5 file
def safe_h5_object(f: h5py.File, name: str):
    """The object at ``name``, refusing soft/external links, external storage and virtual datasets."""
    node = f
    for part in name.split("/"):
        link = node.get(part, getlink=True)
        if link is None:
            raise KeyError(f"missing {name!r}")
        if not isinstance(link, h5py.HardLink):
            raise UnsafeFileError(f"{name!r} is a {type(link).__name__}; attnflows follows no links")
        node = node[part]
    if isinstance(node, h5py.Dataset) and (node.is_virtual or node.external):
        raise UnsafeFileError(f"{name!r} stores its data outside the file; attnflows reads no external data")
    return node


def safe_h5_member_id(group: h5py.Group, name: str):
    """The low-level id of ``group``'s member ``name``, or None when it has none; a link other than a hard
    one is refused as :func:`safe_h5_object` does. For reading many small attributes (an object opened
    this way costs a tenth of ``group[name]``); its data is not for reading (no storage check)."""
    key = name.encode()
    if not group.id.links.exists(key):
        return None
    if group.id.links.get_info(key).type != h5py.h5l.TYPE_HARD:
        raise UnsafeFileError(f"{group.name}/{name!r} is not a hard link; attnflows follows no links")
    return h5py.h5o.open(group.id, key)


def read_h5_dataset(f: h5py.File, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The whole dataset ``name``; its declared shape (``shape``, when given) and size are checked first."""
    dataset = safe_h5_object(f, name)
    if not isinstance(dataset, h5py.Dataset):
        raise ValueError(f"{name!r} is not a dataset")
    if shape is not None and dataset.shape != shape:
        raise ValueError(f"{name!r} has shape {list(dataset.shape or ())}; this run needs {list(shape)}")
    if dataset.size * dataset.dtype.itemsize > MAX_READ_BYTES:
        raise UnsafeFileError(f"{name!r} declares {dataset.size * dataset.dtype.itemsize} bytes; "
                              f"attnflows reads at most {MAX_READ_BYTES} per dataset")
    return dataset[()]

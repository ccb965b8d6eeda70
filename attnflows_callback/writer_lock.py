"""One writer per run: the exclusive writer lock ``attnflows/writer.lock`` (docs/format.md, "Who may write a run").

An advisory ``flock`` that the kernel drops when its holder exits; the file names the holder's
host and PID, so a refused writer is told who holds the run and a reader can tell a killed
writer's run (``interrupted``) from a live one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import time
from pathlib import Path

from .fileio import _file_kind, read_regular
from .schema import LOCK_NAME


class RunExistsError(ValueError):
    """The run directory already holds data that this writer must not overwrite or mix with."""


class RunLockedError(RunExistsError):
    """Another live writer holds the run directory's writer lock.

    Attributes:
        holder: ``{"host": ..., "pid": ..., "started": ...}`` of that writer, as far as it is known.
    """

    def __init__(self, message: str, holder: dict | None = None):
        super().__init__(message)
        self.holder = holder or {}


class WriterLock:
    """The exclusive writer lock of one run: ``attnflows/writer.lock``, naming its holder's host and PID.

    It is an advisory ``flock`` on that file: the kernel releases it when the holder exits,
    however it exits (a SIGKILL included), so a lock left by a dead writer is stale and is
    simply taken over. A second writer, in this process or another, is refused with a
    :class:`RunLockedError` naming the holder. Release unlinks the file while still holding
    the lock; a writer that locked a file since unlinked notices it and tries again.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> first = WriterLock(folder).acquire()
        >>> try:
        ...     WriterLock(folder).acquire()
        ... except RunLockedError as err:
        ...     err.holder["pid"] == os.getpid()
        True
        >>> first.release()
        >>> WriterLock(folder).acquire().release()
    """

    def __init__(self, data_dir: str | os.PathLike):
        self.path = Path(data_dir) / LOCK_NAME
        self.fd: int | None = None
        self.stale_holder: dict | None = None  # the dead writer whose lock this one took over
        self.acquired_at: float | None = None

    def acquire(self) -> WriterLock:
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_CLOEXEC", 0), 0o666)
            try:
                opened = os.fstat(fd)
                if not stat.S_ISREG(opened.st_mode):
                    raise RunExistsError(f"{self.path} is {_file_kind(opened.st_mode)}, not a lock file; remove it")
                if not self._lock(fd):
                    raise self._refusal(_read_holder(fd, wait=True))
                try:
                    current = os.stat(self.path, follow_symlinks=False)
                except FileNotFoundError:
                    current = None
                if current is None or (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
                    os.close(fd)  # the holder released (and unlinked) it as we locked: lock the new file
                    continue
                self.stale_holder = _read_holder(fd) or None
                record = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()})
                os.ftruncate(fd, 0)
                os.pwrite(fd, record.encode("utf-8"), 0)
                os.fsync(fd)
                self.acquired_at = os.fstat(fd).st_mtime
            except BaseException:
                os.close(fd)
                raise
            self.fd = fd
            return self
        raise RunLockedError(f"the writer lock of {self.path.parent} keeps changing hands; try again")

    def _lock(self, fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as err:  # a filesystem without flock: judge by the recorded holder
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
                raise
            holder = _read_holder(fd)
            return not holder or holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname() \
                or not _holder_alive(holder)

    def _refusal(self, holder: dict) -> RunLockedError:
        who = (f"host {holder.get('host')!r}, pid {holder.get('pid')}" if holder else "a writer that has not named itself yet")
        mine = holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname()
        fix = ("close the earlier recorder (or RunWriter) of this run first" if mine else
               "wait for it to finish, or record into another run directory; the lock is released when that "
               "process exits, even if it is killed")
        return RunLockedError(f"{self.path.parent} is being written by another writer ({who}); {fix}", holder)

    def release(self) -> None:
        """Unlink the lock file and drop the lock. Safe to call twice."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            opened = os.fstat(fd)
            current = os.stat(self.path, follow_symlinks=False)
            if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
                self.path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self.fd is not None


def _read_holder(fd: int, wait: bool = False) -> dict:
    """The holder recorded in a lock file; with ``wait``, give a writer that just locked it 0.5 s to write it."""
    deadline = time.monotonic() + (0.5 if wait else 0.0)
    while True:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
            if isinstance(holder, dict):
                return holder
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return {}
        time.sleep(0.02)


def _holder_alive(holder: dict) -> bool:
    """False only when the holder is known to be gone: a PID of this host that no longer exists."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def dead_writer(data_dir: str | os.PathLike) -> str | None:
    """Why a run that says ``running`` has no writer any more, or None while one may be alive.

    Only a lock naming a PID of this host that no longer exists is known to be dead (a writer
    killed with SIGKILL leaves its lock file; a writer that closes removes it). A lock of
    another host, or no lock at all, cannot be judged from here.
    """
    try:
        holder = json.loads(read_regular(Path(data_dir) / LOCK_NAME, 4096).decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(holder, dict) or _holder_alive(holder):
        return None
    return f"the writer (pid {holder.get('pid')} on this host) ended without closing the run"

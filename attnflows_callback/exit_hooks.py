"""Interpreter exit for open recorders: each is closed with a status that says how the process ended.

The hooks (``sys.excepthook`` and an ``atexit`` function) are installed by the first recorder
(:func:`track`), never at import: the read side (``open_run``, the TensorBoard plugin) imports
this package and must leave ``sys.excepthook`` and ``atexit`` alone.
"""

from __future__ import annotations

import atexit
import sys
import threading
import weakref


def status_for(exc_type) -> str:
    """The run status for a recorder closed by an exception of ``exc_type`` (None: no exception)."""
    if exc_type is None:
        return "finished"
    return "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed"


_open_recorders: weakref.WeakSet = weakref.WeakSet()
_uncaught: list[type] = []
_previous_excepthook = None
_hooks_lock = threading.Lock()


def _remember_uncaught(exc_type, exc, tb):
    _uncaught.append(exc_type)
    (_previous_excepthook or sys.__excepthook__)(exc_type, exc, tb)


def exit_status() -> str:
    """The run status for a recorder still open at interpreter exit: how the process ended."""
    return status_for(_uncaught[-1] if _uncaught else None)


def _close_open_recorders() -> None:
    for recorder in list(_open_recorders):
        recorder._close_at_exit()


def track(recorder) -> None:
    """Remember an open recorder for interpreter exit; the first one installs the exit hooks."""
    global _previous_excepthook
    with _hooks_lock:
        if _previous_excepthook is None:
            _previous_excepthook = sys.excepthook
            sys.excepthook = _remember_uncaught
            atexit.register(_close_open_recorders)
        _open_recorders.add(recorder)


def untrack(recorder) -> None:
    """Forget a closed recorder."""
    _open_recorders.discard(recorder)

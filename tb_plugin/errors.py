"""Typed, safe-to-show errors of the plugin's HTTP API.

Every message that leaves the server goes through :func:`safe_text`: no absolute path,
no traceback, only a short sentence. Messages never echo a query value, raw or parsed.
Every text served to the browser goes through :func:`neutralise_bidi` (see ``plugin._json_bytes``
and ``wire_format.frame``), so no stored text can reorder what the tab or its SVG export shows.
"""

from __future__ import annotations

import os
import re

_ABSOLUTE_PATH = re.compile(r"""(?<![\w.~])(?:[A-Za-z]:)?[/\\][^\s'"(),;:]*""")
_QUOTED_PATH = re.compile(r"""(['"])(?:[A-Za-z]:)?[/\\][^'"\n]*?\1""")  # a quoted path may hold spaces and parentheses
# Bidirectional controls (embeddings, overrides, isolates, marks): stored text could use them to
# show "exe.png" as "gnp.exe"; each becomes U+FFFD, visibly there and inert.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_NEUTRAL = str.maketrans({c: "\ufffd" for c in BIDI_CONTROLS})
_H5_DETAILS = re.compile(r"\((?:[^()]*=)[^()]*\)")  # h5py's "(name = '/x', errno = 2, ...)"
MAX_MESSAGE_CHARS = 300


class ApiError(Exception):
    """An error with an HTTP status code and a message that is safe to show."""

    http_code = 400

    def __init__(self, message: str):
        super().__init__(safe_text(message))

    @property
    def message(self) -> str:
        return str(self)


class BadRequest(ApiError):
    """A missing or malformed parameter, or a value out of its bounds (400)."""

    http_code = 400


class NotFound(ApiError):
    """An unknown run, step, example or stream (404)."""

    http_code = 404


class MethodNotAllowed(ApiError):
    """An unknown ``method`` of /flow, or an HTTP method other than GET (405)."""

    http_code = 405


class NeedsFullRows(ApiError):
    """An answer computed over every attention row, asked of a run that recorded only some (409).

    Its body carries ``"needs_full_rows": true`` so the tab shows a notice, not an error.
    """

    http_code = 409
    body = {"needs_full_rows": True}


def safe_text(text: object) -> str:
    """``text`` without absolute paths (kept as their last component) and cut to one short line.

    Example:
        >>> safe_text("Unable to open file (name = '/home/u/logs/run/x.h5', errno = 2)")
        'Unable to open file'
        >>> safe_text("cannot read /home/u/logs/run/attnflows/probe.h5: truncated")
        'cannot read probe.h5: truncated'
    """
    text = _QUOTED_PATH.sub(lambda m: _last_component(m.group(0)[1:-1]), str(text))
    text = _H5_DETAILS.sub("", text)
    text = _ABSOLUTE_PATH.sub(lambda m: _last_component(m.group(0)), text)
    text = " ".join(text.split())
    return neutralise_bidi(text[:MAX_MESSAGE_CHARS])


def describe(err: BaseException) -> str:
    """``"Type: message"`` of an exception, safe to show; an OS error names only its file's last component.

    Example:
        >>> describe(PermissionError(13, "Permission denied", "/srv/pe rm (x)log dir/run a/attnflows/probe.h5"))
        'PermissionError: Permission denied: probe.h5'
    """
    if isinstance(err, OSError) and err.strerror:
        name = _last_component(os.fsdecode(err.filename)) if err.filename is not None else ""
        text = f"{err.strerror}: {name}" if name else err.strerror
    else:
        text = str(err)
    return safe_text(f"{type(err).__name__}: {text}" if text else type(err).__name__)


def error_body(err: Exception) -> dict:
    """The JSON body of an error response."""
    if isinstance(err, ApiError):
        return {"error": safe_text(err), **getattr(err, "body", {})}
    return {"error": describe(err)}


def neutralise_bidi(text: str) -> str:
    """``text`` with every bidirectional control character replaced by U+FFFD.

    Example:
        >>> neutralise_bidi("live \u202egnp.exe")
        'live \ufffdgnp.exe'
    """
    return text.translate(_NEUTRAL)


def _last_component(path: str) -> str:
    parts = [p for p in re.split(r"[/\\]", path) if p]
    return parts[-1] if parts else ""

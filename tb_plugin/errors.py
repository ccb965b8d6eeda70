"""Typed, safe-to-show errors of the plugin's HTTP API.

Every message that leaves the server goes through :func:`safe_text`: no absolute path,
no traceback, only a short sentence. Messages never echo a raw query value.
"""

from __future__ import annotations

import re

_ABSOLUTE_PATH = re.compile(r"""(?<![\w.~])(?:[A-Za-z]:)?[/\\][^\s'"(),;:]*""")
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


def safe_text(text: object) -> str:
    """``text`` without absolute paths (kept as their last component) and cut to one short line.

    Example:
        >>> safe_text("Unable to open file (name = '/home/u/logs/run/x.h5', errno = 2)")
        'Unable to open file'
        >>> safe_text("cannot read /home/u/logs/run/attnflows/probe.h5: truncated")
        'cannot read probe.h5: truncated'
    """
    text = _H5_DETAILS.sub("", str(text))
    text = _ABSOLUTE_PATH.sub(lambda m: _last_component(m.group(0)), text)
    text = " ".join(text.split())
    return text[:MAX_MESSAGE_CHARS]


def _last_component(path: str) -> str:
    parts = [p for p in re.split(r"[/\\]", path) if p]
    return parts[-1] if parts else ""

"""How the plugin's answers go on the wire: tensors as framed float32, other numbers rounded in JSON (docs/http_api.md).

The framing is one header and one block of values, so the browser reads a tensor with one
``Float32Array`` over the response, without parsing numbers out of JSON.
"""

from __future__ import annotations

import json
import struct

import numpy as np

from .errors import neutralise_bidi

BINARY = "application/octet-stream"


def frame(header: dict, values: np.ndarray) -> bytes:
    """uint32 N, an N-byte JSON header padded with spaces to a 4-byte boundary, then float32 values.

    Example:
        >>> body = frame({"shape": [2]}, np.array([0.5, 1.0]))
        >>> n = struct.unpack("<I", body[:4])[0]
        >>> json.loads(body[4 : 4 + n]), np.frombuffer(body[4 + n :], "<f4").tolist(), (4 + n) % 4
        ({'shape': [2]}, [0.5, 1.0], 0)
    """
    values = np.ascontiguousarray(values, dtype="<f4")
    header = {**header, "shape": list(values.shape)}
    text = neutralise_bidi(json.dumps(header, separators=(",", ":"), ensure_ascii=False)).encode("utf-8")
    text += b" " * (-(4 + len(text)) % 4)
    return struct.pack("<I", len(text)) + text + values.tobytes()


def unframe(body: bytes) -> tuple[dict, np.ndarray]:
    """The inverse of :func:`frame` (for tests and clients written in Python)."""
    n = struct.unpack("<I", body[:4])[0]
    header = json.loads(body[4 : 4 + n])
    return header, np.frombuffer(body[4 + n :], dtype="<f4").reshape(header["shape"])


def numbers(values, digits: int = 6):
    """Nested lists of floats rounded to ``digits`` significant digits, None where not finite."""
    a = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(a)
    safe = np.where(finite & (a != 0), np.abs(a), 1.0)
    scale = 10.0 ** (digits - 1 - np.floor(np.log10(safe)))
    rounded = np.where(finite, np.round(np.where(finite, a, 0.0) * scale) / scale, 0.0)
    if finite.all():
        return rounded.tolist()
    return np.where(finite, rounded, None).tolist()

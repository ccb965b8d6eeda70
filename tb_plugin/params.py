"""Parsing and bounding of query values: strict syntax, typed results, 400 on anything else.

Values are checked here for syntax and absolute bounds; checks that need the run (is this
example, step, layer in range?) happen in the ``*_impl`` functions. No message echoes a
raw query value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from . import metadata
from .errors import BadRequest

_INTEGER = re.compile(r"^[0-9]{1,16}$")
_REAL = re.compile(r"^[0-9]{1,8}(\.[0-9]{0,12})?$|^\.[0-9]{1,12}$")
_HEAD = re.compile(r"^(?:([0-9]{1,4}):)?([0-9]{1,4})$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def text(args: Mapping, name: str, *, required: bool = False) -> str | None:
    """The value of ``name`` (the first, if repeated), or None when absent and not required."""
    value = args.get(name)
    if value is None or (value == "" and not required):
        if required:
            raise BadRequest(f"missing parameter {name!r}")
        return None
    if value == "":
        raise BadRequest(f"parameter {name!r} is empty")
    if len(value) > metadata.MAX_PARAM_CHARS or "\x00" in value:
        raise BadRequest(f"parameter {name!r} is too long or holds invalid characters")
    return value


def integer(args: Mapping, name: str, *, required: bool = False, high: int | None = None) -> int | None:
    """A non-negative decimal integer (at most ``high``), or None when absent and not required.

    Example:
        >>> integer({"step": "10"}, "step")
        10
        >>> integer({}, "step") is None
        True
    """
    value = text(args, name, required=required)
    if value is None:
        return None
    if not _INTEGER.match(value):
        raise BadRequest(f"parameter {name!r} must be a non-negative integer")
    number = int(value)
    limit = metadata.MAX_STEP if high is None else high
    if number > limit:
        raise BadRequest(f"parameter {name!r} must be at most {limit}")
    return number


def snapshot(args: Mapping) -> dict:
    """The required ``example`` and ``step`` and the optional ``stream`` of one example's snapshot."""
    return {"example": integer(args, "example", required=True), "step": integer(args, "step", required=True),
            "stream": text(args, "stream")}


def real(args: Mapping, name: str, *, low: float, high: float, default: float) -> float:
    """A finite decimal number in ``[low, high]``; ``default`` when absent.

    Example:
        >>> real({"tau": "0.25"}, "tau", low=0.0, high=1.0, default=0.1)
        0.25
    """
    value = text(args, name)
    if value is None:
        return default
    if not _REAL.match(value):
        raise BadRequest(f"parameter {name!r} must be a decimal number in [{low}, {high}]")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise BadRequest(f"parameter {name!r} must be a decimal number in [{low}, {high}]")
    return number


def flag(args: Mapping, name: str, *, default: bool) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off``; ``default`` when absent."""
    value = text(args, name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise BadRequest(f"parameter {name!r} must be 0 or 1")


def heads(args: Mapping, name: str = "heads") -> list[tuple[int | None, int]] | None:
    """``layer:head`` pairs or bare head indices (``None`` layer: every layer); None means all heads.

    Example:
        >>> heads({"heads": "0:3,5:11,2"})
        [(0, 3), (5, 11), (None, 2)]
    """
    value = text(args, name)
    if value is None:
        return None
    items = value.split(",")
    if len(items) > metadata.MAX_HEAD_PAIRS:
        raise BadRequest(f"parameter {name!r} lists more than {metadata.MAX_HEAD_PAIRS} heads")
    parsed = []
    for item in items:
        match = _HEAD.match(item.strip())
        if not match:
            raise BadRequest(f"parameter {name!r} must be comma-separated 'layer:head' pairs or head indices")
        layer, head = match.groups()
        parsed.append((None if layer is None else int(layer), int(head)))
    return parsed


def resolve_heads(spec: list[tuple[int | None, int]] | None, layers: int, heads_per_layer: int) -> list[tuple[int, int]] | None:
    """Expand a ``heads`` spec against a stream's shape: sorted unique (layer, head) pairs, or None for all.

    Example:
        >>> resolve_heads([(None, 1), (0, 0)], 2, 4)
        [(0, 0), (0, 1), (1, 1)]
    """
    if spec is None:
        return None
    pairs = set()
    for layer, head in spec:
        if not 0 <= head < heads_per_layer:
            raise BadRequest(f"a head in 'heads' is out of range: this stream has {heads_per_layer} heads per layer")
        if layer is None:
            pairs.update((l, head) for l in range(layers))
        elif not 0 <= layer < layers:
            raise BadRequest(f"a layer in 'heads' is out of range: this stream has {layers} layers")
        else:
            pairs.add((layer, head))
    if len(pairs) == layers * heads_per_layer:
        return None
    return sorted(pairs)

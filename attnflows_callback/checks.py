"""Argument checks with one rule: a wrong type is a TypeError, a wrong value a ValueError.

Every message names the argument, what is allowed and what was given. Pure Python (no torch,
no numpy), so the read side may use it too. Array checks for the analysis functions live in
:mod:`attnflows_callback.analysis._checks`.

Example:
    >>> integer("batch_size", 4)
    4
    >>> integer("batch_size", 0)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be an integer >= 1, got 0
    >>> flag("strict", "yes")
    Traceback (most recent call last):
    ...
    TypeError: strict must be True or False, got 'yes'
"""

from __future__ import annotations

from collections.abc import Iterable


def flag(name: str, value) -> bool:
    """``value`` when it is a bool, else a TypeError."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def integer(name: str, value, *, minimum: int = 1, maximum: int | None = None, none: bool = False,
            allowed: str | None = None) -> int | None:
    """``value`` when it is an int (not a bool) in ``[minimum, maximum]`` (or None when ``none``).

    Args:
        allowed: what the message says is allowed (default: built from the bounds).

    Raises:
        TypeError: not an integer (a bool is not one).
        ValueError: an integer out of bounds.
    """
    if none and value is None:
        return None
    if allowed is None:
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        allowed = f"{'None or ' if none else ''}an integer {bounds}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def one_of(name: str, value, allowed: Iterable):
    """``value`` when it is one of ``allowed``, else a ValueError listing them sorted."""
    allowed = sorted(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value

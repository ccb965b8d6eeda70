"""PEP 562 lazy attributes for a package: each public name is imported from its submodule on first use.

Example:
    >>> import types
    >>> package = types.ModuleType("attnflows_callback.analysis")
    >>> getattr_, dir_ = lazy_attributes("attnflows_callback.analysis", vars(package), {"rollout": "rollout"})
    >>> getattr_("rollout").__name__, "rollout" in dir_()
    ('rollout', True)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping


def lazy_attributes(package: str, namespace: MutableMapping, table: Mapping[str, str]) -> tuple[Callable, Callable]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``table`` maps a public name to its submodule."""

    def __getattr__(name: str):
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__

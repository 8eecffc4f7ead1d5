"""Lazy package exports (PEP 562), so importing a package does not import every heavy module it re-exports.

Why: `arb.grid.embedded` is needed at CLI start-up and `arb.sim` by small tools; neither should drag numpy, redis and
aiohttp in through its package `__init__`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_getattr(package: str, exports: Mapping[str, str], namespace: dict[str, object]) -> Callable[[str], object]:
    """A module `__getattr__` that imports `exports[name]` on first use and caches the value in `namespace`."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__

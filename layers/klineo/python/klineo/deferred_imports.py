"""Modules a function's import pulls in and never uses, imported at their first use instead (cold start).

Powertools' event-handler package imports every resolver it has, and its AppSync resolver imports
``asyncio``: some 20 ms of CPU in a function's cold start on this project's machine, about 5% of its
import (issue 16 item 3, ``bench.cold_start``). No function of ours runs a coroutine. In a Lambda
runtime, ``klineo``'s import puts a stand-in in ``sys.modules`` for each such module, before
Powertools is imported: ``import asyncio`` then binds the stand-in, and the stand-in's first
attribute read imports the real module and takes its namespace, so code that does use it works
unchanged, one import later.

Why not ``importlib.util.LazyLoader``: the ``import`` statement itself reads the module's ``__spec__``
(to wait for a module being initialised), and a lazy module loads on that read, at once.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["DEFERRED", "defer_unused_imports"]

DEFERRED = ("asyncio",)


class _ImportedOnFirstUse(types.ModuleType):
    """Stands in for a module until an attribute of it is read; then holds the real module's namespace."""

    def __getattr__(self, attribute: str) -> Any:
        real = _real_module(self.__name__)
        self.__dict__.update(real.__dict__)
        return getattr(real, attribute)


def _real_module(name: str) -> types.ModuleType:
    if isinstance(sys.modules.get(name), _ImportedOnFirstUse):
        del sys.modules[name]
    return importlib.import_module(name)


def defer_unused_imports() -> None:
    """Put the stand-ins in place of each module of ``DEFERRED`` not imported yet."""
    for name in DEFERRED:
        if name not in sys.modules:
            sys.modules[name] = _ImportedOnFirstUse(name)

"""Package namespaces that import a name's module on first use (so `import hiermovie.X` stays
light: the CLI reads configs without importing torch, Ray or transformers)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` giving each name of `where` (name -> submodule) on first use."""
    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
    return __getattr__

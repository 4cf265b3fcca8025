"""Lazy package exports: a package's ``__init__`` names its public API without importing it.

``mnv3 --help`` and a warm ``mnv3 predict`` must not import torch, yet ``from mnv3cli.inference
import open_runtime`` should work. Each package lists ``name -> submodule`` and gets a module-level
``__getattr__`` (PEP 562) that imports the submodule on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` for ``package``, whose ``exports`` map names to submodules
    (relative, like ``".runtime"``)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(import_module(exports[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(exports)

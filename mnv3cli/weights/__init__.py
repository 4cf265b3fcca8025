"""Layer 3: read, write and convert weights; download published ones into torch.hub's cache.

``load_model`` (:mod:`.loader`) turns anything ``--weights`` accepts into a ready model;
``save_checkpoint``/``read_checkpoint`` (:mod:`.checkpoint`) are the project's own file format.
Names resolve lazily so importing a light submodule (``download``) does not import torch.
"""

from __future__ import annotations

from importlib import import_module

_LAZY = {
    "LoadedModel": ".loader",
    "load_model": ".loader",
    "read_checkpoint": ".checkpoint",
    "save_checkpoint": ".checkpoint",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_LAZY)

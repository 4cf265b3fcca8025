"""Layer 3: read, write and convert weights; download published ones into torch.hub's cache.

``load_model`` (:mod:`.loader`) turns anything ``--weights`` accepts into a ready model;
``save_checkpoint``/``read_checkpoint`` (:mod:`.checkpoint`) are the project's own file format.
Names resolve lazily so importing a light submodule (``download``) does not import torch.
"""

from .._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "LoadedModel": ".loader",
        "load_model": ".loader",
        "read_checkpoint": ".checkpoint",
        "save_checkpoint": ".checkpoint",
    },
)

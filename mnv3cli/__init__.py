"""mnv3: classify, evaluate, fine-tune and measure MobileNetV3 models.

Public API: :func:`create_model`, :func:`list_models`, :class:`MobileNetV3`. Attributes are resolved
lazily so that importing the package (and ``mnv3 --help``) never imports torch.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mnv3cli")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

_LAZY = {
    "MobileNetV3": "mnv3cli.model",
    "create_model": "mnv3cli.factory",
    "list_models": "mnv3cli.registry",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mnv3cli' has no attribute {name!r}")


__all__ = ["MobileNetV3", "__version__", "create_model", "list_models"]

"""mnv3: classify, evaluate, fine-tune and measure MobileNetV3 models.

Public API: :func:`create_model`, :func:`list_models`, :class:`MobileNetV3` (also spelt
``MobileNetv3``, as in the ``mobilenetv3_pytorch`` package this project grew from). Attributes are
resolved lazily so that importing the package (and ``mnv3 --help``) never imports torch.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._lazy import lazy_exports

try:
    __version__ = version("mnv3cli")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__getattr__, _names = lazy_exports(
    __name__,
    {
        "MobileNetV3": ".model",
        "MobileNetv3": ".model",  # the original mobilenetv3_pytorch spelling
        "create_model": ".factory",
        "list_models": ".registry",
    },
)
__all__ = [*_names, "__version__"]

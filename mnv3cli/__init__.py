"""mnv3: classify, evaluate, fine-tune and measure MobileNetV3 models.

Public API: :func:`create_model`, :func:`list_models`, :class:`MobileNetV3` (also spelt
``MobileNetv3``, as in the ``mobilenetv3_pytorch`` package this project grew from). Attributes are
resolved lazily so that importing the package (and ``mnv3 --help``) never imports torch.
"""

from __future__ import annotations

from ._lazy import lazy_exports

_lazy_getattr, _names = lazy_exports(
    __name__,
    {
        "MobileNetV3": ".model",
        "MobileNetv3": ".model",  # the original mobilenetv3_pytorch spelling
        "create_model": ".factory",
        "list_models": ".registry",
    },
)
__all__ = [*_names, "__version__"]


def _read_version() -> str:
    """The installed distribution's version. Read on first use of ``__version__``: importing
    ``importlib.metadata`` and scanning ``sys.path`` for it costs a bare ``mnv3 predict`` ~16 ms."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mnv3cli")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        globals()["__version__"] = value = _read_version()
        return value
    return _lazy_getattr(name)

"""A per-user cache of exported ONNX graphs, so that a warm ``mnv3 predict`` never imports torch.

An entry is a directory ``<cache>/onnx/<key>/`` holding ``model.onnx`` and ``meta.json`` (the key
and the model's :class:`~mnv3cli.registry.ModelCard`): everything ``predict`` and ``evaluate``
need besides the graph. The key hashes the weights file's *content* (so a renamed copy hits and an
overwritten file misses) together with the requested model name and overrides, the opset, the
exporter's version and :data:`FORMAT`. Finding an entry never imports torch: registry tags
(``imagenet``, ``torchvision:IMAGENET1K_V1`` ...) resolve to the file the loader downloads into
torch.hub's cache (:func:`~mnv3cli.weights.download.cached_path`).

Both files are written atomically and ``meta.json`` last, so a crash mid-build leaves no entry that
looks complete; an entry that turns out unreadable anyway is simply rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fileio import atomic_write
from ..registry import ModelCard, resolve_weights
from ..weights.download import cached_path

FORMAT = 2  # bump when the layout or the meaning of an entry changes
MODEL_FILE, META_FILE = "model.onnx", "meta.json"


def cache_root() -> Path:
    """``$MNV3_CACHE``, else ``$XDG_CACHE_HOME/mnv3``, else ``~/.cache/mnv3``."""
    if os.environ.get("MNV3_CACHE"):
        return Path(os.environ["MNV3_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "mnv3"


def weights_file(weights: str, model_name: str | None = None) -> Path | None:
    """The local file ``weights`` stands for, or None when it is not on disk (yet).

    A path is itself; a registry tag is the file the loader downloads into torch.hub's cache. A tag
    the registry does not know also gives None: the loader, not the cache, reports that.
    """
    path = Path(weights).expanduser()
    if path.is_file():
        return path.resolve()
    try:
        _, source = resolve_weights(weights, model_name)
    except UserError:
        return None
    candidate = cached_path(source)
    return candidate if candidate.is_file() else None


def _exporter_version() -> str:
    """torch's version, read from its package metadata (importing torch would cost seconds)."""
    try:
        return version("torch")
    except PackageNotFoundError:  # nothing can be exported then: every lookup misses, the loader says why
        return "none"


def cache_key(sha256: str, model_name: str | None, opset: int,
              overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything an exported graph depends on besides code this module versions with FORMAT."""
    return {"format": FORMAT, "weights_sha256": sha256, "model": model_name,
            "overrides": dict(sorted((overrides or {}).items())), "opset": opset,
            "exporter": f"torch-{_exporter_version()}"}


@dataclass(frozen=True)
class Entry:
    """A complete cache entry: the graph and the card that says what its outputs mean."""

    directory: Path
    card: ModelCard

    @property
    def model_path(self) -> Path:
        return self.directory / MODEL_FILE


class OnnxCache:
    """Entries under ``root/onnx`` (default :func:`cache_root`)."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()

    def directory(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        return self.root / "onnx" / digest[:32]

    def lookup(self, key: dict[str, Any]) -> Entry | None:
        """The complete entry for ``key``, or None (missing, half-written or unreadable)."""
        directory = self.directory(key)
        try:
            meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
            if not (isinstance(meta, dict) and meta.get("key") == key and (directory / MODEL_FILE).is_file()):
                return None
            return Entry(directory, ModelCard.from_dict(meta["card"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, key: dict[str, Any], export, card: ModelCard) -> Entry:
        """Create the entry for ``key``: ``export(path)`` writes the graph, then meta.json commits it."""
        directory = self.directory(key)
        directory.mkdir(parents=True, exist_ok=True)
        try:
            export(directory / MODEL_FILE)
        except BaseException:
            self.remove(key)
            raise
        with atomic_write(directory / META_FILE, "w", encoding="utf-8") as fh:
            json.dump({"key": key, "card": card.to_dict()}, fh, indent=1)
        return Entry(directory, card)

    def remove(self, key: dict[str, Any]) -> None:
        """Drop an entry (e.g. one whose graph no longer loads) so it can be rebuilt."""
        shutil.rmtree(self.directory(key), ignore_errors=True)

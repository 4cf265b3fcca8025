"""A per-user cache of exported ONNX graphs, so that a warm ``mnv3 predict`` never imports torch.

An entry is a directory ``<cache>/onnx/<key>/`` holding ``model.onnx`` and ``meta.json`` (the key
and the model's :class:`~mnv3cli.registry.ModelCard`): everything ``predict`` and ``evaluate``
need besides the graph. The key hashes the weights file's *content* (so a renamed copy hits and an
overwritten file misses) together with the requested model name and overrides, the input
resolution (graphs are static: every padding is computed for it at export), the opset, the
exporter's version and :data:`FORMAT`. Finding an entry never imports torch: registry tags
(``imagenet``, ``torchvision:IMAGENET1K_V1`` ...) resolve to the file the loader downloads into
torch.hub's cache (:func:`~mnv3cli.weights.download.cached_path`).

Several processes may build, use and drop the same entry at once (two ``predict`` runs started
together, a shard per GPU), so an entry only ever appears or disappears whole, by a rename: a build
writes into a private ``onnx/.tmp-<random>/`` folder and renames it to the entry's name (when another
process got there first, its entry is used and ours dropped); :meth:`OnnxCache.remove` renames an
entry aside before deleting it. A build that fails or is interrupted deletes only its own folder;
one killed outright leaves it behind, and the next build removes such folders once they are
:data:`STALE_SECONDS` old (no build takes that long; a younger one may be another process's).

An entry's files are not trusted either: meta.json records the sha256 of each file beside it, and
:meth:`OnnxCache.verify` checks them before the graph is used (a disk error, a stray write or an
edit by hand), so a changed file is rebuilt, with a note, rather than answering wrongly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fileio import atomic_write
from ..registry import ModelCard, resolve_weights
from ..weights.download import cached_path, sha256_file

FORMAT = 4  # bump when the layout or the meaning of an entry changes (3: static graphs, 4: file digests)
MODEL_FILE, META_FILE = "model.onnx", "meta.json"
TMP_PREFIX = ".tmp-"  # private build folders and entries being deleted; never an entry's name
STALE_SECONDS = 3600  # a private folder untouched this long belongs to a process that died


def cache_root() -> Path:
    """``$MNV3_CACHE``, else ``$XDG_CACHE_HOME/mnv3``, else ``~/.cache/mnv3``.

    Empty variables count as unset, and a relative ``XDG_CACHE_HOME`` is ignored (the XDG spec
    says so); ``HOME=""`` used to put the cache in ``/.cache/mnv3``: an empty or relative ``HOME``
    falls back to the user's home in the password database, else is a user error."""
    if os.environ.get("MNV3_CACHE"):
        return Path(os.environ["MNV3_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "mnv3"
    return _home() / ".cache" / "mnv3"


def _home() -> Path:
    home = os.environ.get("HOME")
    if home is None:  # unset: the platform's own rule (the password database, USERPROFILE)
        return Path.home()
    if not os.path.isabs(home):
        try:
            import pwd

            home = pwd.getpwuid(os.getuid()).pw_dir
        except (ImportError, KeyError):
            pass
    if not os.path.isabs(home):
        raise UserError(
            f"no folder for the ONNX cache: HOME is {os.environ['HOME']!r}; set HOME, XDG_CACHE_HOME or MNV3_CACHE"
        )
    return Path(home)


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
    """torch's version, read from its ``torch/version.py`` (what ``torch.__version__`` says) without
    importing torch (seconds) or ``importlib.metadata`` (~30 ms with its email parser: a third of a
    warm predict's own work). "none" when torch is absent: nothing can be exported then, every
    lookup misses, and the loader says why."""
    spec = find_spec("torch")
    if spec is None or spec.origin is None:
        return "none"
    try:
        text = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    found = re.search(r"""^__version__\s*(?::[^=]*)?=\s*['"]([^'"]+)['"]""", text, re.MULTILINE)
    return found.group(1) if found else "unknown"


def cache_key(
    sha256: str,
    model_name: str | None,
    opset: int,
    overrides: dict[str, Any] | None = None,
    resolution: int | None = None,
) -> dict[str, Any]:
    """Everything an exported graph depends on besides code this module versions with FORMAT.

    ``resolution``: the input height and width the graph is fixed to; None means the weights' own
    (which their content hash determines).
    """
    return {
        "format": FORMAT,
        "weights_sha256": sha256,
        "model": model_name,
        "overrides": dict(sorted((overrides or {}).items())),
        "resolution": resolution,
        "opset": opset,
        "exporter": f"torch-{_exporter_version()}",
    }


@dataclass(frozen=True)
class Entry:
    """A complete cache entry: the graph and the card that says what its outputs mean, and the
    sha256 of each of its files (but meta.json) when it was built."""

    directory: Path
    card: ModelCard
    digests: dict[str, str]

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
            digests = meta["files"]
            if not (isinstance(digests, dict) and MODEL_FILE in digests):
                return None
            return Entry(directory, ModelCard.from_dict(meta["card"]), {str(k): str(v) for k, v in digests.items()})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def intact(self, entry: Entry) -> bool:
        try:
            self.verify(entry)
        except UserError:
            return False
        return True

    @staticmethod
    def verify(entry: Entry) -> None:
        """Raise :class:`UserError` saying which file differs from its digest (or cannot be read)."""
        for name, digest in entry.digests.items():
            path = entry.directory / Path(name).name  # a name from meta.json never leaves the entry
            try:
                actual = sha256_file(path)
            except OSError as exc:
                raise UserError(f"{name}: cannot be read ({exc.strerror or exc})") from None
            if actual != digest:
                raise UserError(f"{name}: its content changed after it was built (sha256 mismatch)")

    def store(self, key: dict[str, Any], export, card: ModelCard) -> Entry:
        """Create the entry for ``key``: ``export(path)`` writes the graph into a private folder,
        meta.json follows, and a rename publishes both at once."""
        directory = self.directory(key)
        directory.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale(directory.parent)
        private = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=directory.parent))
        try:
            export(private / MODEL_FILE)
            digests = {p.name: sha256_file(p) for p in sorted(private.iterdir()) if p.is_file()}
            with atomic_write(private / META_FILE, "w", encoding="utf-8") as fh:
                json.dump({"key": key, "card": card.to_dict(), "files": digests}, fh, indent=1)
            return self._publish(private, key, card, digests)
        finally:
            shutil.rmtree(private, ignore_errors=True)  # gone already when it was published

    def _publish(self, private: Path, key: dict[str, Any], card: ModelCard, digests: dict[str, str]) -> Entry:
        directory = self.directory(key)
        for _ in range(2):
            try:
                os.rename(private, directory)  # atomic; fails when a non-empty folder is there
                return Entry(directory, card, digests)
            except OSError:
                existing = self.lookup(key)
                if existing is not None and self.intact(existing):  # another process published it first
                    return existing  # use theirs
                self.remove(key)  # an unusable or damaged folder in the way
        os.rename(private, directory)  # raises the reason it cannot be published
        return Entry(directory, card, digests)

    def remove(self, key: dict[str, Any]) -> None:
        """Drop an entry (e.g. one whose graph no longer loads) so it can be rebuilt: renamed aside
        first, so that no process ever sees it half deleted."""
        directory = self.directory(key)
        aside = directory.with_name(f"{TMP_PREFIX}{directory.name}-{os.urandom(4).hex()}")
        try:
            os.rename(directory, aside)
        except OSError:  # gone already (another process removed it) or never built
            return
        shutil.rmtree(aside, ignore_errors=True)

    @staticmethod
    def _remove_stale(folder: Path) -> None:
        """Private folders left by processes killed mid-build (see :data:`STALE_SECONDS`)."""
        cutoff = time.time() - STALE_SECONDS
        for path in folder.glob(TMP_PREFIX + "*"):
            try:
                if path.stat().st_mtime < cutoff:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:  # removed meanwhile by another process
                continue

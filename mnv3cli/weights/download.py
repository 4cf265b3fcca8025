"""Fetch published weights into torch.hub's cache, check them, and say clearly when we cannot.

Files go to ``$TORCH_HOME/hub/checkpoints`` under the name of their URL, the place and name
torchvision and timm use, so a file either of them already downloaded is reused as is. Release
files whose name carries a sha256 prefix (``mobilenet_v3_small-047dcff4.pth``) are checked against
it every time they are used, not just after downloading: a corrupt or substituted cache file is
reported instead of silently loaded. Google's checkpoints are ``.tgz`` archives; only the ``.tflite``
member is kept. The bundled model is not downloaded at all: it is a file of the package
(``mnv3cli/bundled/``), checked against the registry's full sha256 on every use.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import UserError
from ..fileio import atomic_write
from ..registry import WeightSource

# progress(bytes_done, bytes_total_or_None); True = a rich bar on an interactive stderr, False = none
Progress = Callable[[int, "int | None"], None]
CHUNK = 1 << 20


def cache_dir() -> Path:
    """torch.hub's checkpoint cache, ``torch.hub.get_dir() / "checkpoints"``, computed from the
    environment as torch does (``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else
    ``~/.cache/torch``) without importing torch: the ONNX cache finds downloads on a torch-free path."""
    home = os.environ.get("TORCH_HOME")
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME")
        home = os.path.join(os.path.expanduser(xdg) if xdg else os.path.expanduser("~/.cache"), "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


BUNDLED_DIR = Path(__file__).resolve().parents[1] / "bundled"  # package data: see pyproject.toml


def cached_path(source: WeightSource) -> Path:
    """Where :func:`fetch` keeps ``source``'s weights: the URL's file name, or the archive member's;
    the package's own file for the bundled model."""
    if source.bundled:
        return BUNDLED_DIR / source.bundled.file
    return cache_dir() / (Path(source.member).name if source.member else _url_name(source.url))


def _url_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def offline() -> bool:
    return os.environ.get("MNV3_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_hash(path: Path, prefix: str | None) -> str:
    """The file's sha256; :class:`UserError` when it does not start with the published ``prefix``."""
    digest = sha256_file(path)
    if prefix and not digest.startswith(prefix):
        raise UserError(
            f"{path}: sha256 {digest[:12]}... does not match the published prefix {prefix}; "
            "the file is corrupt or not the published one: delete it to download it again"
        )
    return digest


def fetch(source: WeightSource, progress: Progress | bool | None = True) -> tuple[Path, str]:
    """The local path of ``source``'s weights (the ``.tflite`` member for archives) and its sha256,
    downloading into the cache when it is not there yet."""
    if source.bundled:
        return _bundled(source)
    target = cached_path(source)
    if not target.exists():
        archive = target.with_name(_url_name(source.url)) if source.member else target
        if not archive.exists():  # an archive fetched by hand is used as is
            _download(source.url, archive, source.hash_prefix, progress)
        if source.member:
            _extract(archive, source.member, target)
            archive.unlink()
    return target, check_hash(target, None if source.member else source.hash_prefix)


def _bundled(source: WeightSource) -> tuple[Path, str]:
    """The package's own weights file, and its sha256, which must be the registry's."""
    path = cached_path(source)
    if not path.is_file():
        raise UserError(f"{path}: the bundled model is missing from this installation; reinstall mnv3cli")
    digest = sha256_file(path)
    assert source.bundled is not None, "a bundled source names its file"
    if digest != source.bundled.sha256:
        raise UserError(
            f"{path}: sha256 {digest[:12]}... is not the bundled model's "
            f"{source.bundled.sha256[:12]}...; the installation is damaged: reinstall mnv3cli"
        )
    return path, digest


def _download(url: str, path: Path, hash_prefix: str | None, progress: Progress | bool | None) -> None:
    if offline():  # one line within 80 columns: the file's name, not its URL and cache path
        raise UserError(f"offline: {path.name} not cached; use --weights")
    import urllib.error  # here, not at the top: a predict with cached weights needs no network code
    import urllib.request

    how = f"download it yourself and pass it with --weights PATH, or put it at {path}"
    try:
        with contextlib.ExitStack() as stack:
            response = stack.enter_context(urllib.request.urlopen(url, timeout=30))
            total = int(response.headers.get("Content-Length") or 0) or None
            report = stack.enter_context(_reporter(progress, path.name, total))
            digest, done = hashlib.sha256(), 0
            with atomic_write(path, "wb") as fh:
                for block in iter(lambda: response.read(CHUNK), b""):
                    fh.write(block)
                    digest.update(block)
                    done += len(block)
                    report(done, total)
                if hash_prefix and not digest.hexdigest().startswith(hash_prefix):  # before the rename
                    raise UserError(
                        f"downloaded {url} but its sha256 {digest.hexdigest()[:12]}... does "
                        f"not match the published prefix {hash_prefix}; try again later"
                    )
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UserError(f"cannot download {url}: {reason}; {how}") from None


def _extract(archive: Path, member: str, target: Path) -> None:
    """Copy one member out of a ``.tgz`` (read by name: no path from the archive is ever used)."""
    import tarfile

    try:
        with tarfile.open(archive, "r:*") as tar:
            src = tar.extractfile(member)
            if src is None:
                raise KeyError(member)
            with src, atomic_write(target, "wb") as fh:
                for block in iter(lambda: src.read(CHUNK), b""):
                    fh.write(block)
    except (KeyError, tarfile.TarError, OSError) as exc:
        raise UserError(
            f"{archive}: cannot extract {member} ({type(exc).__name__}: {exc}); delete the file to download it again"
        ) from None


@contextlib.contextmanager
def _reporter(progress: Progress | bool | None, label: str, total: int | None) -> Iterator[Progress]:
    """Turn the ``progress`` argument into a callback; ``True`` draws a rich bar on a terminal."""
    if callable(progress):
        yield progress
        return
    if not progress or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TransferSpeedColumn
    from rich.progress import Progress as RichProgress

    with RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(f"downloading {label}", total=total)
        yield lambda done, total: bar.update(task, completed=done, total=total)

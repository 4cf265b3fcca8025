"""What the user typed -> the list of images to classify, in order.

Arguments may be files, directories (searched recursively for image files), glob patterns (expanded
here too, so quoted patterns and ``**`` work the same on every shell and on Windows), ``-`` (paths
read from stdin, one per line), http(s) URLs (downloaded with a timeout) and CSV/JSONL manifests
(their rows' images, in file order; labels and splits are not read, bad rows are bad inputs named
``FILE:LINE``: see :mod:`~mnv3cli.data.manifest`). An argument that yields
nothing (an empty folder, a pattern matching no image, a failed download) becomes an
:class:`InputError` in its place, so it is reported like any other bad input; only when nothing at
all is left to classify is that a :class:`~mnv3cli.errors.UserError`.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

from ..errors import UserError
from .images import EncodedImage, is_image_file
from .manifest import is_manifest, read_manifest

URL_TIMEOUT = 30.0  # seconds without data before a download is abandoned
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024  # no photo is this large; a stream that is must stop somewhere
_GLOB_MAGIC = frozenset("*?[")


@dataclass(frozen=True)
class InputError:
    """An argument that failed before decoding; ``message`` names it and says why."""

    name: str
    message: str

    def __str__(self) -> str:
        return self.name


Source = str | EncodedImage | InputError


def is_url(arg: str) -> bool:
    return arg[:8].lower().startswith(("http://", "https://"))


def expand_inputs(
    args: Sequence[str], stdin: TextIO | None = None, url_timeout: float = URL_TIMEOUT, *, allow_absolute: bool = False
) -> list[Source]:
    """Expand ``args`` into decodable sources (paths, downloaded images) and :class:`InputError` s.

    Explicit file paths are kept even when missing or not images, so that decoding reports them;
    directories and patterns contribute their image files in sorted order. ``allow_absolute``: a
    manifest may name images outside its folder.
    """
    sources: list[Source] = []
    for arg in _with_stdin(args, stdin or sys.stdin):
        if is_url(arg):
            sources.append(arg)  # downloaded below, all at once
        elif is_manifest(arg):
            sources.extend(_manifest_images(arg, allow_absolute))
        elif os.path.isdir(arg):
            sources.extend(_images_under(arg) or [InputError(arg, f"{arg}: no image files in this directory")])
        elif not os.path.lexists(arg) and _GLOB_MAGIC.intersection(arg):
            sources.extend(_glob_images(arg) or [InputError(arg, f"{arg}: no image files match this pattern")])
        else:
            sources.append(arg)
    sources = _download_urls(sources, url_timeout)
    if sources and all(isinstance(s, InputError) for s in sources):
        raise UserError("nothing to classify: " + "; ".join(s.message for s in sources if isinstance(s, InputError)))
    if not sources:
        raise UserError("nothing to classify: no inputs given" + (" on stdin" if "-" in args else ""))
    return sources


def _with_stdin(args: Sequence[str], stdin: TextIO) -> Iterable[str]:
    for arg in args:
        if arg == "-":
            yield from (line.rstrip("\r\n") for line in _stdin_lines(stdin) if line.strip())
        else:
            yield arg


def _stdin_lines(stdin: TextIO) -> Iterable[str]:
    """Lines of stdin as file names: read as bytes and decoded like the OS's own names
    (:func:`os.fsdecode`), so a name that is not valid UTF-8 (from ``find``) still names its file
    whatever the locale says about stdin's errors."""
    binary = getattr(stdin, "buffer", None)
    return map(os.fsdecode, binary) if binary is not None else stdin


def _manifest_images(path: str, allow_absolute: bool) -> list[Source]:
    """A manifest's images in file order, each bad row an error in its place (named FILE:LINE)."""
    from .labelled import problems_of  # here, like images_under: a list of photos needs neither

    manifest = read_manifest(path, allow_absolute=allow_absolute)
    items: list[tuple[int, Source]] = [(row.line, os.path.normpath(row.path)) for row in manifest.rows]
    for problem, line in zip(manifest.problems, manifest.problem_lines, strict=True):
        items.append((line, InputError(f"{path}:{line}", problem)))
    more = problems_of(manifest)[len(manifest.problems) :]  # "... and N more bad rows"
    return [source for _, source in sorted(items, key=lambda item: item[0])] + [InputError(path, m) for m in more]


def _images_under(root: str) -> list[str]:
    """The images under a folder argument (see :func:`~mnv3cli.data.folders.images_under`), as
    normalised paths in one sorted list."""
    from .folders import images_under  # here: folder layouts cost ~2 ms a predict of files spares

    return sorted(os.path.normpath(path) for path in images_under(root))


def _glob_images(pattern: str) -> list[str]:
    """Image files matching ``pattern``, and those under matching directories (once each: ``**``
    matches a folder and its files alike)."""
    found = set()
    for match in glob.glob(pattern, recursive=True):
        if os.path.isdir(match):
            found.update(_images_under(match))
        elif is_image_file(match):
            found.add(os.path.normpath(match))
    return sorted(found)


def _download_urls(sources: list[Source], timeout: float) -> list[Source]:
    """Replace every URL by its downloaded bytes (or an error), fetching them concurrently."""
    urls = [i for i, s in enumerate(sources) if isinstance(s, str) and is_url(s)]
    if not urls:
        return sources
    from concurrent.futures import ThreadPoolExecutor  # here: it imports logging, ~15 ms a local predict spares

    with ThreadPoolExecutor(max_workers=min(8, len(urls)), thread_name_prefix="mnv3-fetch") as pool:
        fetched = pool.map(lambda i: download(str(sources[i]), timeout), urls)
        for i, result in zip(urls, fetched, strict=False):
            sources[i] = result
    return sources


def download(url: str, timeout: float = URL_TIMEOUT) -> EncodedImage | InputError:
    """Fetch ``url`` into memory; any failure becomes an :class:`InputError` naming the reason.

    urllib (with http, ssl and email) is imported here, not at the top: a predict of local files
    would pay ~16 ms for it."""
    import urllib.error
    import urllib.request

    from .. import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"mnv3/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(MAX_DOWNLOAD_BYTES + 1)
    except urllib.error.HTTPError as exc:
        return InputError(url, f"{url}: download failed (HTTP {exc.code} {exc.reason})")
    except urllib.error.URLError as exc:
        return InputError(url, f"{url}: download failed ({exc.reason})")
    except TimeoutError:
        return InputError(url, f"{url}: download failed (no data for {timeout:g} s)")
    except (OSError, ValueError) as exc:  # connection reset, malformed URL, ...
        return InputError(url, f"{url}: download failed ({exc})")
    if len(data) > MAX_DOWNLOAD_BYTES:
        return InputError(url, f"{url}: larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB; not downloaded")
    return EncodedImage(url, data)

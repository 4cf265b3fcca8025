"""Folders published whole: a report's files appear all together, or the old ones stay.

Split from :mod:`.atomic` (same rule for what may be replaced: :func:`~.atomic.output_target`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .atomic import _umask, _write_error, output_target

STALE_SECONDS = 3600  # a private folder untouched this long belongs to a process that died


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder in a private temporary folder beside ``path``; on success, publish it as a unit.

    The caller writes every file into the yielded folder. When the block finishes, that folder is
    renamed to ``path``; a folder already there (an older report) is first renamed aside and deleted
    only after the new one is in place, so ``path`` holds either all the old files or all the new
    ones, never a mix. On any exception (Ctrl-C included) the private folder is removed and ``path``
    is untouched. A process killed outright leaves a hidden ``.NAME.tmp-*`` sibling, which the next
    build removes once it is :data:`STALE_SECONDS` old. Write failures raise
    :class:`~mnv3cli.errors.WriteError` naming ``path``; an existing ``path`` must be a folder, and
    a symlink to one is kept, its folder replaced (:func:`output_target`).
    """
    path = output_target(path, folder=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(path)
        private = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        os.chmod(private, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the usual mode
    except OSError as exc:
        raise _write_error(exc, path) from None
    try:
        yield private
        _replace_directory(private, path)
    except BaseException as exc:
        shutil.rmtree(private, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _write_error(exc, path) from None
        raise


def _replace_directory(new: Path, path: Path) -> None:
    if not path.exists():
        os.rename(new, path)
        return
    aside = path.with_name(f".{path.name}.tmp-old-{os.urandom(4).hex()}")
    os.rename(path, aside)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(aside, path)  # put the old one back: never no report where there was one
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _remove_stale(path: Path) -> None:
    cutoff = time.time() - STALE_SECONDS
    for stale in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
        with contextlib.suppress(OSError):  # removed meanwhile by another process
            if stale.stat().st_mtime < cutoff:
                shutil.rmtree(stale, ignore_errors=True)

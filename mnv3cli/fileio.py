"""Atomic file writes: a crash mid-write never replaces the last good file with a half one."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import WriteError

# what a write() in the caller's block raises when the file cannot grow: disk full, size limit, quota.
# Other OSErrors there may concern another file (an input being read) and pass through unchanged;
# any OSError of this module's own steps (create, flush, fsync, rename) is about ``path``.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is left untouched.
    A full disk, a file-size limit or a read-only place raises :class:`~mnv3cli.errors.WriteError`
    ("cannot write PATH: No space left on device").
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(exc, path) from None
    in_caller = False
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            in_caller = True
            yield fh
            in_caller = False
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and (not in_caller or exc.errno in _NO_ROOM):
            raise _write_error(exc, path) from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows it
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _write_error(exc: OSError, path: Path) -> OSError:
    if isinstance(exc, WriteError) or exc.errno is None:
        return exc
    return WriteError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


def printable_path(text: str | os.PathLike) -> str:
    """``text`` (a path, or a message naming one) as valid UTF-8: bytes of a file name that are not
    UTF-8 (which Python keeps as lone surrogates, 'caf\\udce9.jpg') become ``\\xNN`` ('caf\\xe9.jpg').

    The one rule for every output that names files (tables, JSON, CSV, reports), so a record is
    never lost to a name, and the escaped form still tells which file it was.
    """
    text = os.fspath(text)
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file name produced: show it escaped as well
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
    :class:`~mnv3cli.errors.WriteError` naming ``path``.
    """
    path = Path(path)
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

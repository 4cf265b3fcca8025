"""Atomic file writes: a crash mid-write never replaces the last good file with a half one."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
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

"""Atomic file writes: a crash mid-write never replaces the last good file with a half one.

:func:`atomic_write` for outputs written in one go; :class:`PartFile` for long streamed ones that a
rerun can continue; :func:`atomic_directory` for a folder of files (a report) published as a unit.

What an output may replace (:func:`output_target`, one rule for all three): a write ends in a
rename, which would put a regular file in place of whatever the name held. So an existing target
that is not a regular file (a device such as ``/dev/null``, a FIFO, a socket, a folder where a file
is meant) is refused, never written through: a rename cannot feed a reader, and a command that
checks what it wrote (``export``) could not. A read-only file (no write bit, or not writable by
this user) is refused rather than silently replaced. A symlink is followed: the file it points to
is replaced atomically and the link is kept, as a plain ``open(..., "w")`` would behave. Names
under ``/dev`` and ``/proc`` are refused whatever they resolve to: ``/dev/stdout`` redirected to a
file would otherwise replace the shell's file, earlier output included (not ``/dev/shm``: files)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import UserError, WriteError

# what a write() in the caller's block raises when the file cannot grow: disk full, size limit, quota. Other
# OSErrors there may concern another file (an input read) and pass through; this module's own steps' are about ``path``.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


_SPECIAL, _ORDINARY = ("/dev/", "/proc/"), ("/dev/shm/",)  # devices, process files; /dev/shm: ordinary files


def _special(path: Path) -> bool:
    name = str(path.absolute())
    return name.startswith(_SPECIAL) and not name.startswith(_ORDINARY)


def output_target(path: str | os.PathLike, *, folder: bool = False) -> Path:
    """The path a write to ``path`` publishes: ``path`` itself, or the file a symlink points to.

    Raises :class:`~mnv3cli.errors.WriteError` naming ``path`` when what is there must not be
    replaced: something other than a regular file (``folder``: other than a folder), or a
    read-only file. See the module docstring for why."""
    given = Path(path)
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    if _special(given) or _special(target):  # /dev/stdout: the shell's file
        raise WriteError(errno.EEXIST, "a device or process file, never replaced by mnv3; give a file name", str(given))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise _write_error(exc, given) from None
    kind_ok = stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)
    if not kind_ok:
        what = "a folder" if folder else "a regular file"
        raise WriteError(errno.EEXIST, f"not {what}; mnv3 never replaces a device, FIFO or folder", str(given))
    if not folder and (not st.st_mode & 0o222 or not os.access(target, os.W_OK)):
        raise WriteError(errno.EACCES, "the file is read-only; make it writable or remove it first", str(given))
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, exclusive: bool = False, **open_kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is left untouched.
    A full disk, a file-size limit or a read-only place raises :class:`~mnv3cli.errors.WriteError`
    ("cannot write PATH: No space left on device"). ``exclusive``: never replace an existing
    ``path`` (another process's file included): :class:`FileExistsError` instead, as
    ``open(path, "x")`` would, but with the content still appearing whole or not at all. What an
    existing ``path`` may be (a regular, writable file; a symlink is followed): :func:`output_target`.
    """
    path = Path(path) if exclusive else output_target(path)
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
        (_publish_exclusive if exclusive else os.replace)(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, FileExistsError) and exclusive and not in_caller:
            raise
        if isinstance(exc, OSError) and (not in_caller or exc.errno in _NO_ROOM):
            raise _write_error(exc, path) from None
        raise
    _fsync_dir(path.parent)


def _publish_exclusive(tmp: str, path: Path) -> None:
    """``tmp`` becomes ``path`` only if no ``path`` exists: a hard link fails on an existing name
    where a rename would replace it. Where hard links are not allowed, the name is claimed with an
    exclusive create first, then replaced by the finished file."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable where the OS allows it."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _write_error(exc: OSError, path: Path) -> OSError:
    if isinstance(exc, WriteError) or exc.errno is None:
        return exc
    return WriteError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


PART_SUFFIX = ".part"


def part_path(path: str | os.PathLike) -> Path:
    """Where :class:`PartFile` keeps an unfinished ``path``: ``labels.csv`` -> ``labels.csv.part``."""
    path = Path(path)
    return path.with_name(path.name + PART_SUFFIX)


class PartFile:
    """``path`` written by appending to ``path.part``, renamed to ``path`` once complete.

    The streamed sibling of :func:`atomic_write`, for outputs that take hours: ``path`` still only
    ever holds a complete file, while ``path.part`` keeps what was written before a crash, kill -9
    or Ctrl-C, so that a rerun can check it, cut a torn last record (:meth:`start` ``keep``) and
    append the rest. Appended bytes reach the file at least every ``flush_seconds`` (so a kill -9
    loses at most that much work) and are fsynced at least every ``sync_seconds`` (so a crash of
    the machine loses at most that much). Each :meth:`write` is one unit (a record) and reaches
    the file whole or not at all, whatever exception (Ctrl-C, a full disk) interrupts the writing:
    only a kill -9 or a crash of the machine can leave a torn last unit.

    One writer at a time: an exclusive ``flock`` on ``path.part``, which the OS releases when the
    process dies, so a stale lock cannot exist. Leaving the ``with`` block without :meth:`publish`
    keeps ``path.part`` when it holds anything, and removes it when empty.
    """

    BUFFER = 1 << 16  # bytes collected before they are written out

    def __init__(self, path: str | os.PathLike, sync_seconds: float = 2.0, flush_seconds: float = 0.25) -> None:
        self.path = output_target(path)  # refused before any work, checked again at publish
        self.part = part_path(self.path)
        self.sync_seconds, self.flush_seconds = sync_seconds, flush_seconds
        self._fd: int | None = None
        self._buffer = bytearray()
        self._whole = 0  # bytes in the file, all of them whole units
        self._synced = self._flushed = 0.0
        self.published = False

    def __enter__(self) -> PartFile:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = self._open_locked()
        except OSError as exc:
            raise _write_error(exc, self.part) from None
        return self

    def _open_locked(self) -> int:
        while True:
            fd = os.open(self.part, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
            try:
                _lock(fd, self.part)
                # another writer may have renamed the file between our open and our lock
                if os.path.samestat(os.fstat(fd), os.stat(self.part)):
                    return fd
            except FileNotFoundError:
                pass
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    @property
    def _open_fd(self) -> int:
        if self._fd is None:  # a programming error, not a user's: said plainly rather than as a TypeError
            raise RuntimeError(f"{self.part}: PartFile used outside its with block")
        return self._fd

    def size(self) -> int:
        """Bytes in ``path.part`` now (the buffer not included)."""
        return os.fstat(self._open_fd).st_size

    def start(self, keep: int = 0) -> None:
        """Cut ``path.part`` to its first ``keep`` bytes (the records known to be whole) and append."""
        try:
            os.ftruncate(self._open_fd, keep)
        except OSError as exc:
            raise _write_error(exc, self.part) from None
        self._whole = keep
        self._synced = self._flushed = time.monotonic()

    def write(self, data: bytes) -> None:
        self._buffer += data
        now = time.monotonic()
        if now - self._synced >= self.sync_seconds:
            self.sync()
        elif now - self._flushed >= self.flush_seconds or len(self._buffer) >= self.BUFFER:
            self._flush()

    def _flush(self) -> None:
        """Write the buffer out, all of it or (cutting what got through) none of it."""
        written = 0
        try:
            while written < len(self._buffer):
                written += os.write(self._open_fd, self._buffer[written:])
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._open_fd, self._whole)
            if isinstance(exc, OSError):
                raise _write_error(exc, self.part) from None
            raise
        self._whole += len(self._buffer)
        self._buffer.clear()
        self._flushed = time.monotonic()

    def sync(self) -> None:
        """Write out and fsync what was written: it survives a crash of the process or the machine."""
        self._flush()
        try:
            os.fsync(self._open_fd)
        except OSError as exc:
            raise _write_error(exc, self.part) from None
        self._synced = time.monotonic()

    def publish(self) -> None:
        """The file is complete: sync it and rename ``path.part`` over ``path``."""
        self.sync()
        try:
            output_target(self.path)  # may have become something else during a long run
            os.replace(self.part, self.path)
        except OSError as exc:
            raise _write_error(exc, self.path) from None
        _fsync_dir(self.path.parent)
        self.published = True

    def __exit__(self, *exc_info) -> None:
        if self._fd is None:
            return
        try:
            if not self.published:
                with contextlib.suppress(OSError):  # keep the whole units; a full disk keeps fewer
                    self._flush()
                if os.fstat(self._fd).st_size == 0:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.part)
        finally:
            os.close(self._fd)
            self._fd = None


def _lock(fd: int, path: Path) -> None:
    """An exclusive lock on ``fd``, or a user error naming the file when another process holds it.
    Where the OS or file system has no locks (Windows, some network mounts), nothing."""
    try:
        import fcntl
    except ImportError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UserError(f"{path} is being written by another running process") from None
    except OSError:
        return

"""One live run per run folder: ``RUN/.lock``, held with an operating-system lock for the run's life.

Two ``mnv3 train`` runs writing into one folder would interleave their files (one's config.json,
the other's checkpoints). The first run takes a POSIX record lock (``fcntl.lockf``) on
``RUN/.lock`` and writes its pid and host into it; a second is refused naming them. The kernel
drops the lock when its process ends, however it ends (``kill -9`` included), so a folder left by a
dead run is free again at once: there is no stale lock to detect or clean up, the file merely
still names the dead holder until the next run overwrites it. POSIX locks belong to a process, not
to an open file, so data-loading workers forked from the run do not keep the lock after it dies
(``flock`` locks would). They do not exclude their own process either, hence the set of folders this
process holds. Under torchrun only rank 0 takes the lock; every process learns the outcome.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

from .. import distributed
from ..errors import UserError

try:
    import fcntl as _fcntl

    fcntl: ModuleType | None = _fcntl
except ImportError:  # Windows: no POSIX locks; runs are not protected from each other there
    fcntl = None

LOCK_NAME = ".lock"
_HELD: set[tuple[int, int]] = set()  # (device, inode) of the lock files this process holds
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}  # filesystems without locks


@contextlib.contextmanager
def hold_run_folder(folder: Path) -> Iterator[None]:
    """Hold ``folder`` for the duration (creating it), or raise :class:`UserError` naming the
    process that holds it. Collective under torchrun: rank 0 locks, every process raises alike."""
    fd, error = None, None
    if distributed.is_main():
        try:
            fd = _acquire(Path(folder))
        except UserError as exc:
            error = str(exc)
    error = distributed.broadcast_object(error)
    if error is not None:
        if fd is not None:
            _release(fd)
        raise UserError(error)
    try:
        yield
    finally:
        if fd is not None:
            _release(fd)


def _acquire(folder: Path) -> int | None:
    """The open, locked lock file of ``folder`` (None where locks are unsupported)."""
    if fcntl is None:
        return None
    path = folder / LOCK_NAME
    in_use = f"{folder}: in use by another training run ({{}}); wait for it to end or choose another --output"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            stat = os.stat(path)
            if (stat.st_dev, stat.st_ino) in _HELD:  # ours: not even opened, as closing any
                # descriptor of the file would drop this process's lock on it (POSIX)
                raise UserError(in_use.format(f"pid {os.getpid()} on host {socket.gethostname()}"))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise UserError(f"{folder}: cannot write the run folder ({exc.strerror or exc})") from None
    stat = os.fstat(fd)
    key = (stat.st_dev, stat.st_ino)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd)
        os.close(fd)  # another process holds the lock: this process has none on the file to drop
        if exc.errno in _UNSUPPORTED:
            return None
        raise UserError(in_use.format(holder)) from None
    _HELD.add(key)
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    return fd


def _holder(fd: int) -> str:
    """ "pid 123 on host h" from the lock file, or what little is known."""
    try:
        record = json.loads(os.pread(fd, 4096, 0))
        return f"pid {int(record['pid'])} on host {record['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its pid and host not written yet"


def _release(fd: int) -> None:
    stat = os.fstat(fd)
    _HELD.discard((stat.st_dev, stat.st_ino))
    os.close(fd)  # releases the lock; the file stays (deleting it would race with the next run)

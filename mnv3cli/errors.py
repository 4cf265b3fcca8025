"""Exceptions shared by every layer; the CLI turns them into exit codes (see ``cli.app``).

Lower layers raise these instead of printing or exiting, so the same failure reads the same way in
a script that imports ``mnv3cli`` and on the command line.
"""


class UserError(Exception):
    """A problem with what the user gave us (a path, a file, an option): exit 2, one line, no traceback."""

    exit_code = 2


class PartialFailure(Exception):
    """Some inputs failed, the rest were processed and reported: exit 1."""

    exit_code = 1


class Interrupted(Exception):
    """The user stopped a long job (Ctrl-C, SIGTERM) after its state was saved: exit 130 (128 + SIGINT).

    The message says how to continue (e.g. the ``--resume`` command line).
    """

    exit_code = 130


class WriteError(UserError, OSError):
    """A file could not be written (disk full, file too large, read-only): exit 2, one line.

    Also an :class:`OSError` (with ``errno``, ``strerror`` and ``filename``), so code that already
    handles write failures keeps doing so; anything that does not is reported as a user error
    rather than an internal one.
    """

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"

"""The one table of renamed options, and the one place that maps an old name to its new one.

Once a version is released, renaming an option breaks scripts, config files and saved runs. The
rename then goes into :data:`RENAMED` (old name -> new name), and nothing else changes: the command
line (``--old-name``, every command) and option files (``old_name`` or ``old-name`` in a config
file or a run's ``config.json``) are mapped here, each with a warning that names the new spelling.
Ultralytics' ``_handle_deprecation`` keeps its renames in one place the same way. No hidden Click
options: a renamed option would otherwise need a second definition in its command.

The table is empty: 0.1.0 was never released, so no user has an old name to keep working.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import UserError

# old option name -> new option name, both snake_case (``--img-size`` is ``img_size``)
RENAMED: dict[str, str] = {}

Warn = Callable[[str], None]


def _python_warning(message: str) -> None:
    """The default for library callers: a :class:`FutureWarning` (the CLI passes its own ``warn``)."""
    warnings.warn(message, FutureWarning, stacklevel=3)


def renamed_keys(values: Mapping[str, Any], source: str, warn: Warn | None = None) -> dict[str, Any]:
    """``values`` (snake_case option names) with every old name replaced by its new one.

    ``warn(message)`` is called once per old name found; giving an option under both names is a
    :class:`UserError` (which one was meant is unknowable).
    """
    out = dict(values)
    for old, new in RENAMED.items():
        if old not in out:
            continue
        if new in out:
            raise UserError(f"{source}: {old} is the old name of {new}: give one of them")
        (warn or _python_warning)(f"{source}: {old} is deprecated; use {new}")
        out[new] = out.pop(old)
    return out


def renamed_args(args: Sequence[str], warn: Warn | None = None) -> list[str]:
    """A command's arguments with ``--old-name`` (and ``--old-name=VALUE``) spelled ``--new-name``.

    Arguments after ``--`` are file names, never options, and are left alone. Giving both
    spellings is a :class:`UserError`, as for option files.
    """
    flags = {_flag(old): _flag(new) for old, new in RENAMED.items()}
    end = list(args).index("--") if "--" in args else len(args)
    given = {arg.partition("=")[0] for arg in args[:end]}
    out = []
    for arg in args[:end]:
        flag, eq, value = arg.partition("=")
        if flag in flags:
            if flags[flag] in given:
                raise UserError(f"{flag} is the old name of {flags[flag]}: give one of them")
            (warn or _python_warning)(f"{flag} is deprecated; use {flags[flag]}")
            arg = flags[flag] + eq + value
        out.append(arg)
    return out + list(args[end:])


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")

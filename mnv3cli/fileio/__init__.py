"""Atomic file writes: a crash mid-write never replaces the last good file with a half one.

:func:`atomic_write` for outputs written in one go; :class:`PartFile` for long streamed ones that a
rerun can continue (both in :mod:`.atomic`, with the rule of what an output may replace,
:func:`output_target`); :func:`atomic_directory` for a folder of files (a report) published as a
unit (:mod:`.folders`).
"""

from .atomic import PART_SUFFIX, PartFile, atomic_write, output_target, part_path
from .folders import STALE_SECONDS, atomic_directory

__all__ = ["PART_SUFFIX", "STALE_SECONDS", "PartFile", "atomic_directory", "atomic_write", "output_target", "part_path"]

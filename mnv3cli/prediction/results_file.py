"""``predict --output FILE``: results streamed to ``FILE.part`` in input order, published as ``FILE``.

One design for every job size: records are appended to ``FILE.part`` as they arrive (written out
at least every 0.25 s, fsynced at least every 2 s: see :class:`~mnv3cli.fileio.PartFile`), and
only the finished file is renamed to ``FILE``. So ``FILE`` only ever holds a complete result (a
short job behaves exactly as an atomic write), and a file named ``.part`` is by its name a cut-off
one. After a crash, kill -9 or Ctrl-C, ``FILE.part`` keeps every whole record, and
:meth:`ResultsFile.resume` checks it against the inputs (record *i* must be input *i*: same
inputs, same order, same columns), cuts a torn last record and lets the run append the rest, so
the end result is byte for byte an uninterrupted run's. Why not a final summary record or a
``.done`` sidecar: a CSV reader would take the summary for a row, and a sidecar can disagree with
its file; a rename is atomic.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..fileio import PartFile
from ..printable import display_path
from .records import record_format


@dataclass(frozen=True)
class Resumed:
    """What an earlier run left: ``done`` whole records (``failed`` of them errors); ``complete``
    when that run had finished (``FILE`` holds every input), so there is nothing to write."""

    done: int = 0
    failed: int = 0
    complete: bool = False
    keep: int = 0  # bytes of FILE.part holding those records (and the header)


class ResultsFile:
    """Write ``predict``'s results to ``path`` (``.csv`` or ``.jsonl``); see the module docstring.

    Use as a context manager: ``with ResultsFile(path, top_k) as out: out.start(out.resume(...))``,
    then :meth:`write` each result in input order and :meth:`finish`. Leaving the block before
    :meth:`finish` keeps ``FILE.part`` for a later ``--resume`` (removed when it holds nothing).
    """

    def __init__(self, path: str | os.PathLike, top_k: int, answers: bool = False, labels: bool = False) -> None:
        self.path = Path(path)
        self.format = record_format(self.path.suffix, top_k, answers, labels)
        self._file = PartFile(self.path)
        self.part = self._file.part
        self.written = 0  # records in the file, kept ones included

    def __enter__(self) -> ResultsFile:
        self._file.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self._file.__exit__(*exc_info)

    def resume(self, sources: Sequence) -> Resumed:
        """Check what an earlier run wrote for these ``sources`` (``FILE.part``, else a finished
        ``FILE``). Raises :class:`~mnv3cli.errors.UserError` when it was written for other inputs,
        another order or other options."""
        expected = [display_path(str(source))[0] for source in sources]
        if self._file.size() == 0 and self.path.is_file():
            with open(self.path, "rb") as fh:
                keep, done, failed = self._scan(fh, self.path, expected)
            if done != len(expected) or keep != self.path.stat().st_size:
                raise UserError(
                    f"--resume: {self.path} is a finished file of other inputs; drop --resume to replace it"
                )
            return Resumed(done, failed, complete=True)
        with open(self.part, "rb") as fh:
            keep, done, failed = self._scan(fh, self.part, expected)
        return Resumed(done, failed, keep=keep)

    def unfinished(self) -> int:
        """Bytes in ``FILE.part`` that an earlier, unfinished run left (before :meth:`start`)."""
        return self._file.size()

    def on_disk(self) -> int:
        """Bytes of whole records in ``FILE.part`` now."""
        return self._file.size()

    def start(self, resumed: Resumed | None = None) -> None:
        """Begin writing: after the records ``resumed`` kept (cutting anything after them), or
        from scratch (an unfinished ``FILE.part`` left by a run without ``--resume`` is replaced)."""
        resumed = resumed or Resumed()
        self._file.start(resumed.keep)
        self.written = resumed.done
        if resumed.keep == 0:
            self._file.write(self.format.header())

    def write(self, result) -> None:
        self._file.write(self.format.line(result))
        self.written += 1

    def finish(self) -> None:
        """Every input is written: publish ``FILE``."""
        self._file.publish()

    def _scan(self, fh, name: Path, expected: Sequence[str]) -> tuple[int, int, int]:
        """``(bytes to keep, records, failed records)`` of the whole records at the start of ``fh``
        that match ``expected``; a cut-off last record is left out, any other misfit is an error."""
        fmt = self.format
        keep = done = failed = 0
        items = fmt.parse(fh)
        item = next(items, None)
        header = bool(fmt.header())
        while item is not None:
            following = next(items, None)
            record, raw = item
            if not _rewrites_to(fmt, record, raw):
                if following is None:
                    break  # cut off by the crash: written again
                raise UserError(
                    f"--resume: {name} has a line that mnv3 predict does not write "
                    f"after {done} result(s); delete it or drop --resume"
                )
            if header:
                if not fmt.is_header(record) or not fmt.fits(record):
                    raise UserError(
                        f"--resume: {name} has other columns (another --top-k or "
                        "--min-confidence?); "
                        "use the same options or drop --resume"
                    )
                header = False
            else:
                if done == len(expected):
                    raise UserError(
                        f"--resume: {name} holds more results than there are inputs; "
                        "use the same inputs or drop --resume"
                    )
                if fmt.path(record) != expected[done]:
                    raise UserError(
                        f"--resume: result {done + 1} in {name} is for "
                        f"{fmt.path(record)}, but input {done + 1} is {expected[done]}; "
                        "use the same inputs in the same order or drop --resume"
                    )
                if not fmt.fits(record):
                    raise UserError(
                        f"--resume: {name} was written with another --top-k or "
                        "--min-confidence; use the same options or drop --resume"
                    )
                done += 1
                failed += fmt.failed(record)
            keep += len(raw)
            item = following
        return keep, done, failed


def _rewrites_to(fmt, record, raw: bytes) -> bool:
    if record is None:
        return False
    try:
        return fmt.encode(record) == raw
    except (UnicodeEncodeError, TypeError, ValueError):
        return False

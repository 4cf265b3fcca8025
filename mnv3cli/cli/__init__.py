"""Layer 6: thin Click commands. Parse options, call the layers below, render with rich.

One stream rule, applied by every command (through :class:`~mnv3cli.cli.context.AppContext`):

- stdout carries results: tables, JSON, CSV, and the "wrote FILE" line naming what a command made
  (``app.out``, ``app.emit_json``, ``app.wrote``). With ``--json`` stdout holds only the JSON, so
  a "wrote FILE" line then goes to stderr as a note.
- stderr carries everything else: progress bars, notes, warnings and errors (``app.console``,
  ``app.progress``, ``app.info``, ``app.debug``, and the error lines of :mod:`~mnv3cli.cli.app`).
- ``-q`` silences progress and notes only; it never hides results, warnings or errors.

So ``mnv3 CMD ... > out.txt`` always captures the answer, and a pipe never sees progress.
"""

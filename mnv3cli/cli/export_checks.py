"""``mnv3 export -o``: refused before any work when it would destroy an input or mislabel the file.

Kept apart from the command so that the checks read as one rule: the output is never the weights
(or ``--image``) it is made from (``-o`` equal to ``-w`` used to overwrite a checkpoint with
TorchScript, which ``-w`` then refused), and its suffix says its format (the ONNX format wrote
into a file named ``.pt``, which every loader then read as a checkpoint).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from ..inference.backend_registry import export_formats, get_export_format  # entries only: no engine


def check_export_output(
    output: Path, fmt: str, suffix: str, companions: tuple[str, ...], inputs: dict[str, str | os.PathLike | None]
) -> None:
    """Raise :class:`UserError` when ``output`` does not end in ``suffix`` (``--format fmt``'s) or
    is the same file as one of ``inputs`` (option name -> path; tags such as ``imagenet`` that are
    no file are skipped). ``companions``: suffixes of files written beside it (OpenVINO's ``NAME.bin``),
    which count as part of the output."""
    if output.suffix.lower() != suffix:
        raise UserError(
            f"--output {output}: --format {fmt} writes a {suffix} file; name it so "
            f"(e.g. {output.with_suffix(suffix).name}), or choose the --format that matches"
        )
    written = [output, *(output.with_suffix(extra) for extra in companions)]
    for option, given in inputs.items():
        if given is None or not Path(given).is_file():
            continue
        source = Path(given).resolve()
        if any(target.resolve() == source for target in written):
            raise UserError(f"--output {output}: is the {option} file itself; writing it would destroy the input")


def check_int8(fmt: str, data_dir: Path | None) -> None:
    """--int8's needs, before any work: a format that quantizes, --data, NNCF."""
    from importlib.util import find_spec

    if not get_export_format(fmt)[0].quantizes:
        able = [name for name, (entry, _) in export_formats().items() if entry.quantizes]
        raise UserError(f"--int8: only for --format {' or '.join(able)}")
    if data_dir is None:
        raise UserError(
            "--int8: needs --data DIR, labelled images to calibrate on (and to measure top-1 on, without --val)"
        )
    if find_spec("nncf") is None:
        raise UserError("--int8: NNCF is not installed (pip install 'mnv3cli[int8]')")

"""A command's labelled DATA argument, a folder or a CSV/JSONL manifest, as one :class:`ScannedFolder`.

Every labelled command (evaluate, calibrate, export ``--int8 --data``, profile ``--data``) reads its
data through :func:`scan_labelled`, so a manifest works wherever a folder does, and its classes are
matched to the model's by the same :func:`~mnv3cli.data.folders.match_classes` as folder names.

Which rows of a manifest with a ``split`` column a command reads: ``--split`` when given, else the
command's preference (scoring commands: ``test`` if any, else ``val``; fitting ones such as
calibrate: ``val`` first), else every row.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError
from ..printable import plain
from .folders import ScannedFolder, scan_folder
from .manifest import Manifest, is_manifest, read_manifest

SCORING_SPLITS = ("test", "val")  # evaluate, profile, export's accuracy check
FITTING_SPLITS = ("val", "test")  # calibrate: fit on validation data when there is some


def scan_labelled(
    data: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    *,
    split: str | None = None,
    prefer: Sequence[str] = SCORING_SPLITS,
    classes_file: str | os.PathLike | None = None,
    allow_absolute: bool = False,
) -> ScannedFolder:
    """``data`` scanned (cheap: before any model is loaded). ``split``: ``train``/``val``/``test``/``all``
    (None: the first of ``prefer`` present, else all rows). ``notes`` say which rows were read;
    ``problems`` are the manifest's bad rows (the caller reports them and exits 1)."""
    if not is_manifest(data):
        if classes_file is not None or split is not None:
            flag = "--classes" if classes_file is not None else "--split"
            raise UserError(f"{flag}: only for a CSV/JSONL manifest, and {plain(data)} is not one")
        return scan_folder(data, labels)
    if labels is not None:
        raise UserError(f"--labels {plain(labels)}: {plain(data)} is a manifest, which holds the labels itself")
    manifest = read_manifest(data, classes_file=classes_file, allow_absolute=allow_absolute)
    if not manifest.has_labels:
        raise UserError(f"{plain(data)}: no 'label' column (a labelled command needs path,label rows)")
    if manifest.multi_label:
        raise UserError(f"{plain(data)}: a multi-label manifest ('labels' column); this command needs one label a row")
    chosen, note = choose_split(manifest, split, prefer)
    rows = manifest.split(chosen)
    if not rows:
        raise UserError(f"{plain(data)}: no rows in the {chosen} split (splits present: {_present(manifest)})")
    items = [(str(row.path), row.labels[0]) for row in rows]
    notes = (note,) if note else ()
    return ScannedFolder(Path(data).parent, items, Path(data), notes, problems_of(manifest), "manifest")


def choose_split(manifest: Manifest, split: str | None, prefer: Sequence[str]) -> tuple[str | None, str]:
    """The split to read (None = every row) and a note naming it when the manifest has splits."""
    if split == "all" or (split is None and not manifest.has_split):
        return None, ""
    present = manifest.splits()
    chosen = split or next((name for name in prefer if name in present), None)
    if chosen is None:
        return (
            None,
            f"{plain(manifest.source)}: reading every row (splits present: {_present(manifest)}; --split picks one)",
        )
    if split is None:
        return chosen, f"{plain(manifest.source)}: reading the {chosen} split (--split picks another)"
    return chosen, ""


def problems_of(manifest: Manifest) -> tuple[str, ...]:
    """The bad-row messages, with a last line counting those not kept."""
    more = manifest.bad_rows - len(manifest.problems)
    return (*manifest.problems, *([f"{plain(manifest.source)}: ... and {more} more bad rows"] if more else []))


def _present(manifest: Manifest) -> str:
    return ", ".join(sorted(manifest.splits())) or "none"


def labelled_samples(
    data: str | os.PathLike, class_names: Sequence[str], wordnet_ids: Sequence[str] | None = None, **manifest
) -> tuple[list[tuple[str, int]], tuple[str, ...]]:
    """:func:`scan_labelled` then :func:`~mnv3cli.data.folders.match_classes`: ``(samples, problems)``
    for a model's classes (``manifest``: :func:`scan_labelled`'s keywords)."""
    from .folders import match_classes

    scanned = scan_labelled(data, **manifest)
    return match_classes(scanned, class_names, wordnet_ids).samples, scanned.problems

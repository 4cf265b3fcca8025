"""``mnv3 train MANIFEST``: the training and validation samples of a CSV/JSONL manifest.

The same rules as for folders (:func:`~mnv3cli.training.data.find_splits`), read from the rows:
the ``train`` rows train and the ``val`` rows validate (``test`` rows are never read by train);
a manifest without a ``split`` column is all training data, validated on ``--val`` or a seeded
``--val-split`` share, as a single folder is. Classes are the manifest's (``--classes`` order, else
first appearance); a ``--val`` folder or manifest is matched to them by name. Bad rows travel on as
``problems``: the run reports them and ends with exit status 1.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data.labelled import labelled_samples, problems_of
from ..data.manifest import read_manifest
from ..errors import UserError
from ..printable import plain
from .data import Splits, stratified_split


def manifest_splits(
    data: Path,
    val: str | os.PathLike | None,
    val_split: float | None,
    seed: int,
    *,
    classes_file: str | None = None,
    allow_absolute: bool = False,
) -> Splits:
    """The :class:`Splits` of the manifest ``data`` (see the module doc)."""
    manifest = read_manifest(data, classes_file=classes_file, allow_absolute=allow_absolute)
    if not manifest.has_labels:
        raise UserError(f"{plain(data)}: no 'label' column (train needs path,label rows)")
    if manifest.multi_label:
        raise UserError(f"{plain(data)}: a multi-label manifest ('labels' column); train needs one label a row")
    names = manifest.classes
    index = {name: i for i, name in enumerate(names)}
    rows = manifest.split("train") if manifest.has_split else manifest.rows
    if not rows:
        raise UserError(f"{plain(data)}: no train rows (its split column names {', '.join(sorted(manifest.splits()))})")
    train = [(str(row.path), index[row.labels[0]]) for row in rows]
    problems = problems_of(manifest)
    val_rows = manifest.split("val") if manifest.has_split else []
    if val is not None or val_rows:
        if val_split is not None:
            where = val or f"the val rows of {data}"
            raise UserError(f"--val-split {val_split}: not used when validation data ({where}) exists; drop one")
    if val is not None:
        val_samples, bad = labelled_samples(
            val, names, prefer=("val",), classes_file=classes_file, allow_absolute=allow_absolute
        )
        return Splits(names, train, val_samples, f"{data} / {val}", str(data), str(val), problems + bad)
    if val_rows:
        val_samples = [(str(row.path), index[row.labels[0]]) for row in val_rows]
        return Splits(names, train, val_samples, f"{data} (train / val rows)", str(data), str(data), problems)
    if val_split is None:
        raise UserError(
            f"{plain(data)}: no validation data (no val rows); pass --val DIR or hold out a share with --val-split 0.2"
        )
    train, val_samples = stratified_split(train, val_split, seed)
    if not val_samples:
        raise UserError(f"{plain(data)}: too few images to hold out --val-split {val_split}")
    return Splits(
        names, train, val_samples, f"{data} (val split {val_split:g}, seed {seed})", str(data), str(data), problems
    )

"""``mnv3 train MANIFEST``: the training and validation samples of a CSV/JSONL manifest.

The same rules as for folders (:func:`~mnv3cli.training.data.find_splits`), read from the rows:
the ``train`` rows train and the ``val`` rows validate (``test`` rows are never read by train);
a manifest without a ``split`` column is all training data, validated on ``--val`` or a seeded
``--val-split`` share, as a single folder is. Classes are the manifest's (``--classes`` order, else
first appearance); a ``--val`` folder or manifest is matched to them by name. Bad rows travel on as
``problems``: the run reports them and ends with exit status 1. A ``labels`` manifest is
multi-label: each target is then a multi-hot tuple over the classes, not a class index.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data.labelled import labelled_samples, problems_of
from ..data.manifest import multi_hot, read_manifest
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
    names, multi = manifest.classes, manifest.multi_label
    index = {name: i for i, name in enumerate(names)}

    def target(row):  # a class index, or a multi-label row's multi-hot tuple (what BCE takes)
        return tuple(multi_hot(row, index)) if multi else index[row.labels[0]]

    rows = manifest.split("train") if manifest.has_split else manifest.rows
    if not rows:
        raise UserError(f"{plain(data)}: no train rows (its split column names {', '.join(sorted(manifest.splits()))})")
    if multi and val is not None:
        raise UserError(
            f"--val {plain(str(val))}: a multi-label manifest names its validation rows in its split column"
        )
    train = [(str(row.path), target(row)) for row in rows]
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
        val_samples = [(str(row.path), target(row)) for row in val_rows]
        return Splits(names, train, val_samples, f"{data} (train / val rows)", str(data), str(data), problems, multi)
    if val_split is None:
        raise UserError(
            f"{plain(data)}: no validation data (no val rows); pass --val DIR or hold out a share with --val-split 0.2"
        )
    train, val_samples = stratified_split(train, val_split, seed)
    if not val_samples:
        raise UserError(f"{plain(data)}: too few images to hold out --val-split {val_split}")
    return Splits(
        names,
        train,
        val_samples,
        f"{data} (val split {val_split:g}, seed {seed})",
        str(data),
        str(data),
        problems,
        multi,
    )

"""``mnv3 train MANIFEST``: the training and validation samples of a CSV/JSONL manifest.

A manifest with a ``labels`` column describes a multi-label set: each sample's target is then a
multi-hot tuple over the classes (what ``BCEWithLogitsLoss`` takes), not a class index. The rows'
``split`` column chooses train and val; without one, ``--val-split`` holds out a seeded share.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.manifest import ManifestRow, multi_hot, read_manifest
from ..errors import UserError
from ..printable import plain
from .data import Sample, Splits, stratified_split


def _sample(row: ManifestRow, classes: list[str], multi_label: bool) -> Sample:
    if multi_label:
        return str(row.path), tuple(multi_hot(row, classes))  # type: ignore[return-value]
    return str(row.path), classes.index(row.labels[0])


def manifest_splits(
    data: str | os.PathLike, val: str | os.PathLike | None, val_split: float | None, seed: int
) -> Splits:
    """The :class:`Splits` of manifest ``data`` (rows of split ``train``, or all rows without a
    split column; validation from split ``val`` or ``--val-split``)."""
    manifest = read_manifest(data)
    name = plain(str(data))
    if not manifest.has_labels:
        raise UserError(f"{name}: no `label` or `labels` column; training needs labelled rows")
    if val is not None:
        raise UserError(f"--val {plain(str(val))}: a manifest names its validation rows in its `split` column")
    classes, multi = list(manifest.classes), manifest.multi_label
    train_rows = manifest.split("train") if manifest.has_split else manifest.rows
    train = [_sample(row, classes, multi) for row in train_rows]
    val_rows = manifest.split("val")
    if val_rows and val_split is not None:
        raise UserError(f"--val-split {val_split}: not used when the manifest has `val` rows; drop one of them")
    if val_rows:
        val_samples = [_sample(row, classes, multi) for row in val_rows]
        how = f"{name} (split column)"
    elif val_split is None:
        raise UserError(f"{name}: no `val` rows; add a `split` column or hold out a share with --val-split 0.2")
    elif multi:
        order = np.random.default_rng(seed).permutation(len(train))
        held = max(1, round(val_split * len(train)))
        val_samples = [train[i] for i in sorted(order[:held])]
        train = [train[i] for i in sorted(order[held:])]
        how = f"{name} (val split {val_split:g}, seed {seed})"
    else:
        train, val_samples = stratified_split(train, val_split, seed)
        how = f"{name} (val split {val_split:g}, seed {seed})"
    if not train or not val_samples:
        raise UserError(f"{name}: no {'training' if not train else 'validation'} rows")
    root = str(Path(data).parent)
    return Splits(classes, train, val_samples, how, root, root, multi_label=multi)

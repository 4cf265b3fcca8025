"""The human-readable files of a training run: ``config.json``, ``metrics.csv`` and ``curves.png``.

Each is rewritten whole (atomically) from the run's history after every epoch, so a run killed at
any moment leaves consistent files, and a resumed run continues them from its checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..fileio import atomic_write

METRIC_COLUMNS = ("epoch", "train_loss", "val_loss", "top1", "top5", "lr", "images_per_sec", "seconds")


def write_config(directory: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    path = Path(directory) / "config.json"
    with atomic_write(path, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=2, allow_nan=False)
        fh.write("\n")
    return path


def write_metrics(directory: str | os.PathLike, history: Sequence[Mapping[str, Any]]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METRIC_COLUMNS)
    for row in history:
        writer.writerow([_cell(row[c]) for c in METRIC_COLUMNS])
    path = Path(directory) / "metrics.csv"
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())
    return path


def _cell(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def write_curves(directory: str | os.PathLike, history: Sequence[Mapping[str, Any]]) -> Path:
    """Loss and accuracy per epoch, as ``curves.png`` in ``directory``."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [row["train_loss"] for row in history], "o-", label="train")
    loss_ax.plot(epochs, [row["val_loss"] for row in history], "o-", label="validation")
    loss_ax.set(title="loss", xlabel="epoch", ylabel="cross-entropy")
    loss_ax.legend()
    acc_ax.plot(epochs, [row["top1"] for row in history], "o-", label="top-1")
    acc_ax.plot(epochs, [row["top5"] for row in history], "o-", label="top-5")
    acc_ax.set(title="validation accuracy", xlabel="epoch", ylabel="%")
    acc_ax.legend()
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    path = Path(directory) / "curves.png"
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    return path

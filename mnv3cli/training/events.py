"""What a training run reports while it runs: the plan, each step, each epoch, and the result.

Plain records with no torch (not even indirectly), so that the command line's display can subclass
:class:`TrainListener` without ``mnv3 --help`` paying for a torch import. The loop in
:mod:`mnv3cli.training.loop` sends them on rank 0 only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..evaluation import EvalProgress
from ..rounding import loss, percent, significant


@dataclass(frozen=True)
class TrainPlan:
    """What is about to run (sent once, before the first step)."""

    model_name: str
    start: str  # "fine-tuning from ...", "from scratch", "resuming ... at epoch 3"
    class_names: list[str]
    train_images: int
    val_images: int
    data: str
    epochs: int
    start_epoch: int  # the epoch the run starts (or resumes) in, counted from 1
    steps_per_epoch: int
    batch_size: int  # per process
    world_size: int
    device: str
    amp: str  # the resolved mode: none | bf16 | fp16
    trainable_params: int
    total_params: int
    output: Path
    unreadable_train: int = 0  # files left out of the splits above: not readable images
    unreadable_val: int = 0
    unreadable_example: str = ""  # "path: why" of one of them
    resumed: bool = False  # continuing a saved run (its TensorBoard and MLflow runs continue too)
    config: dict[str, Any] = field(default_factory=dict)  # the resolved options, as config.json has them
    notes: tuple[str, ...] = ()  # warnings for the user (e.g. TensorBoard not installed)


@dataclass(frozen=True)
class StepProgress:
    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based, within the epoch
    steps: int
    loss: float  # this step's loss (this process's batch)
    lr: float
    images_per_sec: float  # all processes, this epoch so far


@dataclass(frozen=True)
class EpochRecord:
    """One row of ``metrics.csv`` plus what the summary line needs."""

    epoch: int  # counted from 1, as everywhere (checkpoints, metrics.csv, messages)
    train_loss: float
    val_loss: float
    top1: float  # percent
    top5: float
    lr: float
    images_per_sec: float  # training images per second (all processes)
    seconds: float  # training + validation wall time
    is_best: bool
    skipped_images: int  # unreadable images met so far (training and validation, unique)

    def row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def history_row(self) -> dict[str, Any]:
        """The part kept in the run's history (``metrics.csv``, the checkpoints), each number
        rounded to what it means (:mod:`mnv3cli.rounding`)."""
        return {
            "epoch": self.epoch,
            "train_loss": loss(self.train_loss),
            "val_loss": loss(self.val_loss),
            "top1": percent(self.top1),
            "top5": percent(self.top5),
            "lr": significant(self.lr),
            "images_per_sec": significant(self.images_per_sec),
            "seconds": significant(self.seconds),
        }


@dataclass(frozen=True)
class ValidationSample:
    """One validation image as the model saw it, with its prediction (for TensorBoard)."""

    image: Any  # height x width x 3 uint8 array, the preprocessed crop with the normalisation undone
    label: str  # the true class
    predicted: str
    confidence: float  # softmax probability of ``predicted``, 0..1


class TrainListener:
    """Receives progress on rank 0. Subclass and override what you need; every hook is optional.

    ``sample_images`` > 0 asks the loop for that many validation images with their predictions
    after each epoch (:meth:`on_samples`); left at 0, the loop spends nothing on them."""

    sample_images = 0

    def on_start(self, plan: TrainPlan) -> None: ...

    def on_step(self, progress: StepProgress) -> None: ...

    def on_validation(self, progress: EvalProgress) -> None: ...

    def on_epoch_end(self, record: EpochRecord) -> None: ...

    def on_samples(self, epoch: int, samples: list[ValidationSample]) -> None: ...

    def on_finish(self, result: TrainResult | None, status: str) -> None:
        """The run ended: ``status`` is ``"FINISHED"`` (with the ``result``), ``"KILLED"`` (stopped
        by a signal, resumable) or ``"FAILED"`` (an error); called once, even when another hook raised."""


class Listeners(TrainListener):
    """Several listeners as one (the caller's display and the run's TensorBoard/MLflow logs)."""

    def __init__(self, *listeners: TrainListener) -> None:
        self.listeners = listeners
        self.sample_images = max((each.sample_images for each in listeners), default=0)

    def on_start(self, plan: TrainPlan) -> None:
        for each in self.listeners:
            each.on_start(plan)

    def on_step(self, progress: StepProgress) -> None:
        for each in self.listeners:
            each.on_step(progress)

    def on_validation(self, progress: EvalProgress) -> None:
        for each in self.listeners:
            each.on_validation(progress)

    def on_epoch_end(self, record: EpochRecord) -> None:
        for each in self.listeners:
            each.on_epoch_end(record)

    def on_samples(self, epoch: int, samples: list[ValidationSample]) -> None:
        for each in self.listeners:
            each.on_samples(epoch, samples[: each.sample_images])

    def on_finish(self, result: TrainResult | None, status: str) -> None:
        errors = []
        for each in self.listeners:  # every one gets to close its files, whatever the others do
            try:
                each.on_finish(result, status)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the others closed
                errors.append(exc)
        if errors:
            raise errors[0]


@dataclass(frozen=True)
class TrainSummary:
    """What a finished run reports: ``mnv3 train --json`` prints :meth:`to_dict` and the closing
    lines show the same fields, so a new figure is one field here (and one line there if people
    should see it). Numbers are rounded as :mod:`mnv3cli.rounding` says; the last epoch's figures
    are None when no epoch ran."""

    best_top1: float  # percent
    best_epoch: int
    epochs: int  # epochs completed
    checkpoint: str  # best.pt
    last_checkpoint: str
    output: str
    top1: float | None  # the last epoch's validation
    top5: float | None
    train_loss: float | None
    val_loss: float | None
    images_per_sec: float | None
    skipped_images: int  # unreadable images met
    seconds: float  # wall time of this invocation
    calibration: dict[str, Any] | None  # the temperature fitted on validation (TemperatureFit.to_dict)
    stopped_early: bool  # --patience epochs passed without a better validation top-1
    patience: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in field order."""
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    output: Path
    best_top1: float
    best_epoch: int
    epochs: int  # epochs completed
    checkpoint: Path  # best.pt
    last_checkpoint: Path
    history: list[dict[str, Any]]
    skipped: list[tuple[str, str]]  # (path, reason) of unreadable images
    seconds: float  # wall time of this invocation
    calibration: dict[str, Any] | None = None  # the temperature fitted on validation (TemperatureFit.to_dict)
    stopped_early: bool = False  # --patience epochs passed without a better validation top-1
    patience: int | None = None
    bad_rows: tuple[str, ...] = ()  # a manifest's bad rows, left out (the command exits 1)

    def summary(self) -> TrainSummary:
        last = self.history[-1] if self.history else {}
        return TrainSummary(
            best_top1=percent(self.best_top1),
            best_epoch=self.best_epoch,
            epochs=self.epochs,
            checkpoint=str(self.checkpoint),
            last_checkpoint=str(self.last_checkpoint),
            output=str(self.output),
            top1=last.get("top1"),
            top5=last.get("top5"),
            train_loss=last.get("train_loss"),
            val_loss=last.get("val_loss"),
            images_per_sec=last.get("images_per_sec"),
            skipped_images=len(self.skipped),
            seconds=significant(self.seconds),
            calibration=self.calibration,
            stopped_early=self.stopped_early,
            patience=self.patience,
        )

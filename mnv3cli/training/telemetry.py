"""Where people look at training runs: TensorBoard event files and MLflow runs, as training listeners.

Both are :class:`~mnv3cli.training.events.TrainListener` subclasses fed by the loop's events on
rank 0 only (so under ``torchrun`` one process writes), next to the run's own ``metrics.csv``.
Every value is logged per epoch with the epoch number (counted from 1) as its step, once the
epoch's ``last.pt`` is saved; a resumed run continues the same TensorBoard run (same folder, with
``purge_step`` dropping anything an earlier process logged past the resumed epoch) and the same
MLflow run (its id is kept in ``RUN/mlflow.json``), so each epoch appears once.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..errors import UserError
from ..fileio import atomic_write
from .events import EpochRecord, Listeners, TrainListener, TrainPlan, TrainResult, ValidationSample

if TYPE_CHECKING:
    from .config import TrainConfig
    from .run import Run

MLFLOW_RECORD = "mlflow.json"  # the run's MLflow tracking URI and run id, for --resume
SAMPLE_IMAGES = 8  # validation images shown in TensorBoard with their predictions
TB_MISSING = (
    "TensorBoard is not installed, so no TensorBoard logs: pip install 'mnv3cli[tensorboard]' (or --no-tensorboard)"
)


def with_telemetry(
    listener: TrainListener, cfg: TrainConfig, output: Path, main: bool
) -> tuple[TrainListener, list[str]]:
    """``listener`` plus the TensorBoard and MLflow logs ``cfg`` asks for (on rank 0), and notes
    for the user. A missing MLflow is an error in every process (it was asked for by name); a
    missing TensorBoard, on by default, is a note."""
    if cfg.mlflow is not None and importlib.util.find_spec("mlflow") is None:
        raise UserError("--mlflow: MLflow is not installed; pip install 'mnv3cli[mlflow]'")
    if not main:
        return TrainListener(), []
    logs, notes = [listener], []
    if cfg.tensorboard:
        if importlib.util.find_spec("tensorboard") is None:
            notes.append(TB_MISSING)
        else:
            logs.append(TensorBoardLog(output))
    if cfg.mlflow is not None:
        logs.append(MLflowLog(tracking_uri(cfg.mlflow, output), output))
    return (Listeners(*logs) if len(logs) > 1 else listener), notes


class TensorBoardLog(TrainListener):
    """Event files in the run folder: scalars per epoch, the config as text, a few validation images
    with their predictions (``tensorboard --logdir runs/`` shows each run folder as a run)."""

    sample_images = SAMPLE_IMAGES

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writer: Any = None

    def on_start(self, plan: TrainPlan) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # resuming at epoch k: TensorBoard drops what an earlier process logged for epochs >= k
        self.writer = SummaryWriter(str(self.folder), purge_step=plan.start_epoch if plan.resumed else None)
        text = json.dumps(plan.config, indent=2, default=str)
        self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), plan.start_epoch - 1)
        self.writer.flush()

    def on_epoch_end(self, record: EpochRecord) -> None:
        scalars = {
            "loss/train": record.train_loss,
            "loss/validation": record.val_loss,
            "accuracy/top1": record.top1,
            "accuracy/top5": record.top5,
            "train/lr": record.lr,
            "train/images_per_sec": record.images_per_sec,
            "train/epoch_seconds": record.seconds,
        }
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, record.epoch)
        self.writer.flush()  # what an interrupted run has logged stays readable

    def on_samples(self, epoch: int, samples: list[ValidationSample]) -> None:
        import numpy as np

        if not samples:
            return
        self.writer.add_images("validation/images", np.stack([s.image for s in samples]), epoch, dataformats="NHWC")
        rows = [f"| {i + 1} | {s.label} | {s.predicted} | {s.confidence:.1%} |" for i, s in enumerate(samples)]
        table = "| image | class | predicted | confidence |\n| --- | --- | --- | --- |\n" + "\n".join(rows)
        self.writer.add_text("validation/predictions", table, epoch)
        self.writer.flush()

    def on_finish(self, result: TrainResult | None, status: str) -> None:
        if self.writer is not None:
            self.writer.close()


def tracking_uri(uri: str, output: Path) -> str:
    """The MLflow tracking URI ``--mlflow`` names: ``""`` is an ``mlruns/`` file store beside the
    run folder; a plain path becomes an absolute ``file:`` URI (so ``--resume`` works from anywhere)."""
    if not uri:
        return (output.resolve().parent / "mlruns").as_uri()
    if len(urlparse(uri).scheme) > 1:  # http(s)://, file:, sqlite:, databricks (not a drive letter)
        return uri
    return Path(uri).expanduser().resolve().as_uri()


class MLflowLog(TrainListener):
    """One MLflow run per training run: the options as params, per-epoch metrics, and at the end
    ``best.pt``, ``config.json`` and ``metrics.csv`` as artifacts. Experiment: ``$MLFLOW_EXPERIMENT_NAME``
    or ``mnv3``; run name: the run folder's name."""

    def __init__(self, uri: str, output: Path) -> None:
        if uri.startswith("file:"):
            # MLflow 3 refuses file stores unless told otherwise; a local mlruns/ is the point here
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        self.uri, self.output = uri, output
        self.client = MlflowClient(tracking_uri=uri)
        self.run_id = ""

    def on_start(self, plan: TrainPlan) -> None:
        saved = _read_record(self.output / MLFLOW_RECORD)
        if plan.resumed and saved.get("tracking_uri") == self.uri and saved.get("run_id"):
            self.run_id = saved["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        from mlflow.entities import Param

        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "mnv3"
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        run = self.client.create_run(experiment_id, run_name=self.output.name, tags={"mnv3.output": str(self.output)})
        self.run_id = run.info.run_id
        params = [Param(key, _param(value)) for key, value in sorted(plan.config.items())]
        self.client.log_batch(self.run_id, params=params)
        with atomic_write(self.output / MLFLOW_RECORD, "w", encoding="utf-8") as fh:
            json.dump({"tracking_uri": self.uri, "run_id": self.run_id, "experiment_id": experiment_id}, fh)
            fh.write("\n")

    def on_epoch_end(self, record: EpochRecord) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = {
            "train_loss": record.train_loss,
            "val_loss": record.val_loss,
            "top1": record.top1,
            "top5": record.top5,
            "lr": record.lr,
            "images_per_sec": record.images_per_sec,
            "epoch_seconds": record.seconds,
        }
        metrics = [Metric(key, float(value), now, record.epoch) for key, value in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def on_finish(self, result: TrainResult | None, status: str) -> None:
        if not self.run_id:
            return
        if result is not None:
            for name in ("best.pt", "config.json", "metrics.csv"):
                if (self.output / name).exists():
                    self.client.log_artifact(self.run_id, str(self.output / name))
            self.client.set_tag(self.run_id, "stopped_early", str(result.stopped_early).lower())
        self.client.set_terminated(self.run_id, status)


def _param(value: Any) -> str:
    """A param value as MLflow stores it (text of at most 500 characters, MLflow's oldest limit)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:500]


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def validation_samples(run: Run, count: int) -> list[ValidationSample]:
    """``count`` validation images spread over the set (so several classes show), as the model saw
    them, with the predictions of the weights just validated. Eval mode and no randomness: the
    training that follows is unchanged (an exact resume does not depend on it)."""
    import numpy as np
    import torch

    from ..data import iter_batches
    from .setup import set_train_mode

    val, names = run.splits.val, run.splits.class_names
    picks = sorted({round(i) for i in np.linspace(0, len(val) - 1, min(count, len(val)))})
    batch = next(iter(iter_batches([val[i][0] for i in picks], run.preprocess, len(picks), workers=1)))
    if not batch.indices:
        return []
    model = run.recipe.weights(run.model)
    model.eval()
    try:
        with torch.no_grad(), run.recipe.autocast(run.device):
            probs = torch.softmax(model(torch.from_numpy(batch.images).to(run.device)).float(), dim=1).cpu()
    finally:
        set_train_mode(run.model, run.frozen, run.cfg.freeze_bn)
    mean, std = np.array(run.preprocess.mean), np.array(run.preprocess.std)
    pixels = (batch.images.transpose(0, 2, 3, 1) * std + mean).clip(0, 1) * 255
    confidence, predicted = probs.max(dim=1)
    return [
        ValidationSample(
            image=pixels[k].round().astype(np.uint8),
            label=names[val[picks[index]][1]],
            predicted=names[int(predicted[k])],
            confidence=float(confidence[k]),
        )
        for k, index in enumerate(batch.indices)
    ]

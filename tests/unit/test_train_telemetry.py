"""``mnv3 train``'s early stopping (``--patience``) and the logs people look at: TensorBoard event
files in the run folder and MLflow runs, read back with the libraries' own readers.

Tiny runs on generated shapes, as in test_train.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from mnv3cli.errors import Interrupted
from mnv3cli.training.config import TrainConfig
from mnv3cli.training.loop import TrainListener, train
from mnv3cli.weights.checkpoint import read_checkpoint

TINY = {
    "model": "mobilenetv3_small_075",
    "resolution": 32,
    "batch_size": 8,
    "epochs": 2,
    "workers": 1,
    "lr": 5e-3,
    "warmup_epochs": 0,
    "bn_momentum": 0.3,
    "tensorboard": False,
}
# a learning rate too small to change any prediction, BatchNorm statistics fixed: top-1 never improves
STILL = TINY | {"lr": 1e-12, "freeze_bn": True, "epochs": 6}


class _StopAt(TrainListener):
    def __init__(self, stop: threading.Event, step: tuple[int, int]):
        self.stop, self.step = stop, step

    def on_step(self, p):
        if (p.epoch, p.step) == self.step:
            self.stop.set()


def _history_epochs(run: Path) -> list[int]:
    return [row["epoch"] for row in read_checkpoint(run / "last.pt")["extra"]["history"]]


def test_patience_stops_a_run_that_no_longer_improves(shapes, tmp_path, one_thread):
    result = train(TrainConfig(**STILL, patience=2, data=str(shapes), output=str(tmp_path / "run")))
    assert (result.best_epoch, result.epochs, result.stopped_early) == (1, 3, True)
    assert result.summary().stopped_early is True and result.summary().patience == 2
    assert read_checkpoint(result.checkpoint)["extra"]["epoch"] == 1  # best.pt kept: the best epoch's
    assert _history_epochs(result.output) == [1, 2, 3]


def test_patience_longer_than_the_run_does_not_stop_it(shapes, tmp_path, one_thread):
    result = train(TrainConfig(**STILL | {"epochs": 3}, patience=3, data=str(shapes), output=str(tmp_path / "run")))
    assert (result.epochs, result.stopped_early, result.patience) == (3, False, 3)
    plain = train(TrainConfig(**TINY, data=str(shapes), output=str(tmp_path / "plain")))
    assert plain.summary().stopped_early is False and plain.summary().patience is None


def test_a_stopped_run_resumes_stopped_unless_given_more_patience(shapes, tmp_path, one_thread):
    run = tmp_path / "run"
    train(TrainConfig(**STILL, patience=2, data=str(shapes), output=str(run)))
    again = train(TrainConfig(**STILL, patience=2, data=str(shapes), output=str(run)), resume=str(run))
    assert (again.epochs, again.stopped_early) == (3, True)
    assert _history_epochs(run) == [1, 2, 3]  # nothing trained
    longer = train(TrainConfig(**STILL, patience=3, data=str(shapes), output=str(run)), resume=str(run))
    assert (longer.epochs, longer.stopped_early, longer.best_epoch) == (4, True, 1)
    assert _history_epochs(run) == [1, 2, 3, 4]


def test_patience_must_be_positive():
    from mnv3cli.errors import UserError

    with pytest.raises(UserError, match="--patience: must be at least 1"):
        TrainConfig(patience=0).validate()


def _scalars(run: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
    events.Reload()
    return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}, events


def test_tensorboard_logs_scalars_config_and_validation_images(shapes, tmp_path, one_thread):
    run = tmp_path / "run"
    train(TrainConfig(**TINY | {"tensorboard": True}, data=str(shapes), output=str(run)))
    steps, events = _scalars(run)
    for tag in ("loss/train", "loss/validation", "accuracy/top1", "accuracy/top5", "train/lr"):
        assert steps[tag] == [1, 2], tag
    assert steps["train/images_per_sec"] == [1, 2] and steps["train/epoch_seconds"] == [1, 2]
    top1 = [e.value for e in events.Scalars("accuracy/top1")]
    history = read_checkpoint(run / "last.pt")["extra"]["history"]
    assert top1 == pytest.approx([row["top1"] for row in history], abs=0.01)
    images = events.Images("validation/images")
    assert [i.step for i in images] == [1, 2] and (images[0].height, images[0].width) == (32, 8 * 32)  # a row of 8
    texts = events.Tags()["tensors"]
    assert "config/text_summary" in texts and "validation/predictions/text_summary" in texts
    table = events.Tensors("validation/predictions/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert "| predicted |" in table and any(name in table for name in ("circle", "square", "triangle"))


def _mlflow_client(run: Path):
    from mlflow.tracking import MlflowClient

    record = json.loads((run / "mlflow.json").read_text())
    return MlflowClient(tracking_uri=record["tracking_uri"]), record


def test_mlflow_logs_params_metrics_and_the_best_checkpoint(shapes, tmp_path, one_thread, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run = tmp_path / "runs" / "shapes"
    train(TrainConfig(**TINY, mlflow="", data=str(shapes), output=str(run)))
    client, record = _mlflow_client(run)
    assert record["tracking_uri"] == (tmp_path / "runs" / "mlruns").as_uri()  # beside the run folder
    (found,) = client.search_runs([record["experiment_id"]])
    assert found.info.run_name == "shapes" and found.info.status == "FINISHED"
    assert found.data.params["batch_size"] == "8" and found.data.params["model"] == "mobilenetv3_small_075"
    assert [m.step for m in client.get_metric_history(found.info.run_id, "top1")] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"best.pt", "config.json", "metrics.csv"} <= artifacts


def test_interrupted_and_resumed_run_is_one_tensorboard_and_one_mlflow_run(shapes, tmp_path, one_thread, monkeypatch):
    """Stopped in the middle of epoch 2 (after epoch 1 was logged), then resumed to the end: every
    epoch appears once, in one TensorBoard run and one MLflow run."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run = tmp_path / "run"
    cfg = TrainConfig(**TINY | {"tensorboard": True, "epochs": 3}, mlflow="", data=str(shapes), output=str(run))
    stop = threading.Event()
    with pytest.raises(Interrupted):
        train(cfg, _StopAt(stop, (2, 3)), stop=stop)
    client, record = _mlflow_client(run)
    assert client.get_run(record["run_id"]).info.status == "KILLED"
    train(cfg, resume=str(run))
    steps, _ = _scalars(run)
    assert steps["accuracy/top1"] == [1, 2, 3] and steps["loss/train"] == [1, 2, 3]
    (found,) = client.search_runs([record["experiment_id"]])
    assert found.info.run_id == record["run_id"] and found.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(found.info.run_id, "top1")] == [1, 2, 3]


def test_a_missing_tensorboard_is_a_note_and_a_missing_mlflow_an_error(tmp_path, monkeypatch):
    """Without the packages (hidden here as Python hides an uninstalled one): TensorBoard, on by
    default, leaves a note and the run goes on; --mlflow, asked for by name, stops the run."""
    import sys

    from mnv3cli.errors import UserError
    from mnv3cli.training.telemetry import with_telemetry

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    listener = TrainListener()
    kept, notes = with_telemetry(listener, TrainConfig(), tmp_path, main=True)
    assert kept is listener and len(notes) == 1
    assert "TensorBoard is not installed" in notes[0] and "mnv3cli[tensorboard]" in notes[0]
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(UserError, match=r"--mlflow: MLflow is not installed; pip install 'mnv3cli\[mlflow\]'"):
        with_telemetry(listener, TrainConfig(mlflow=""), tmp_path, main=False)  # every process refuses

"""Command-line tests: ``mnv3 train`` interrupted with Ctrl-C and resumed leaves one continuous
TensorBoard run and one MLflow run, every epoch logged once (read back with their own readers)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import cli_env

ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _epochs_logged(run: Path) -> int:
    with contextlib.suppress(FileNotFoundError), open(run / "metrics.csv", newline="") as fh:
        return len(list(csv.DictReader(fh)))
    return 0


def _default_sigint() -> None:  # in the child: Ctrl-C behaves as in a terminal, whatever the suite ignores
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_then_resume_is_one_tensorboard_run_and_one_mlflow_run(shapes, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's own MLflow client
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    args = ["train", shapes, "-o", run, "-m", "mobilenetv3_small_075", "-r", "32", "-b", "8", "-e", "40", "-j", "1"]
    command = [sys.executable, "-m", "mnv3cli", *map(str, args), "--mlflow"]
    with open(tmp_path / "stderr.txt", "w") as log:
        proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=cli_env(ONE_THREAD),
            cwd=tmp_path,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )
    try:
        deadline = time.monotonic() + 120
        while _epochs_logged(run) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # like Ctrl-C
        assert proc.wait(timeout=120) == 130, (tmp_path / "stderr.txt").read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    record = json.loads((run / "mlflow.json").read_text())
    client = MlflowClient(tracking_uri=record["tracking_uri"])
    assert client.get_run(record["run_id"]).info.status == "KILLED"
    done = _epochs_logged(run)

    target = done + 2
    resumed = subprocess.run(
        [sys.executable, "-m", "mnv3cli", "train", "--resume", "-o", str(run), "--epochs", str(target), "--json"],
        capture_output=True,
        text=True,
        env=cli_env(ONE_THREAD),
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    expected = list(range(1, target + 1))
    for tag in ("accuracy/top1", "loss/train", "train/lr"):
        assert [e.step for e in events.Scalars(tag)] == expected, tag
    assert record["tracking_uri"] == (tmp_path / "mlruns").as_uri()  # --mlflow alone: beside the run folder
    (found,) = client.search_runs([record["experiment_id"]])
    assert found.info.run_id == record["run_id"] and found.info.status == "FINISHED"
    for key in ("top1", "val_loss", "images_per_sec"):
        assert [m.step for m in client.get_metric_history(found.info.run_id, key)] == expected, key
    assert "best.pt" in {a.path for a in client.list_artifacts(found.info.run_id)}

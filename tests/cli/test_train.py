"""Command-line tests: each runs ``mnv3`` (or Python) in a subprocess.

``mnv3 train``: learning, outputs, exact resume, signals, bad images, freezing, DDP, evaluate parity.

Everything runs on generated images of coloured shapes (3 classes, 32-48 px) with the smallest
registered model, on one thread (torch's thread pool only slows tiny models on a shared 2-core box).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import SHAPES, assert_one_user_error, cli_env, default_signals, make_shapes
from mnv3cli.weights.checkpoint import read_checkpoint


def test_train_output_in_unwritable_place_is_a_user_error(run_cli, tmp_path, blocked_dir):
    from PIL import Image

    for split in ("train", "val"):
        for i, name in enumerate(("red", "green")):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            Image.new("RGB", (24, 24), (255 * (i == 0), 255 * (i == 1), 0)).save(
                tmp_path / "data" / split / name / "a.png"
            )
    result = run_cli(
        "train",
        tmp_path / "data",
        "--model",
        "small",
        "--epochs",
        "1",
        "--resolution",
        "32",
        "--workers",
        "1",
        "--output",
        blocked_dir / "run",
    )
    assert_one_user_error(result, "run", "cannot write")


ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _run_cli(args, cwd, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "mnv3cli", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        env=cli_env(ONE_THREAD | (env or {})),
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def scratch_run(shapes, tmp_path_factory):
    """5 epochs from scratch; the recipe partly from a YAML file that the command line overrides."""
    work = tmp_path_factory.mktemp("scratch")
    (work / "recipe.yaml").write_text(
        "model: mobilenetv3_small_075\nresolution: 48\nepochs: 5\n"
        "batch_size: 4\nlr: 1e-2\nwarmup_epochs: 0\nbn_momentum: 0.3\n"
    )
    proc = _run_cli(
        ["train", shapes, "--config", "recipe.yaml", "-b", "8", "--lr", "5e-3", "-j", "1", "-o", "run", "--json"],
        cwd=work,
    )
    assert proc.returncode == 0, proc.stderr
    return proc, work / "run"


def test_from_scratch_learns_well_above_chance(scratch_run):
    proc, _ = scratch_run
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\nfrom scratch, 3 classes: best top-1 {summary['best_top1']:.1f} % (chance 33.3 %)")
    assert summary["best_top1"] >= 66.6  # twice chance, on 24 validation images
    assert summary["epochs"] == 5 and summary["checkpoint"] == str(Path("run") / "best.pt")
    assert summary["skipped_images"] == 0
    rows = [line for line in proc.stderr.splitlines() if re.match(r" +[1-5]/5  ", line)]
    assert len(rows) == 5  # one per epoch
    assert "best top-1" in proc.stderr


def test_train_output_reads_well(scratch_run, shapes):
    """Labelled header lines within 80 columns (a path too long for them stands alone on its line),
    an epoch table without top-5 for 3 classes, durations never "0.0 s", JSON rounded."""
    proc, _ = scratch_run
    lines = proc.stderr.splitlines()
    assert [line[:9] for line in lines[:2]] == ["model:   ", "data:    "]
    assert "plan:    5 epochs of 9 steps, batch 8 on cpu" in lines
    assert all(len(line) <= 80 or len(line[9:].split()) == 1 for line in lines), lines
    table = lines.index("epoch  train loss  val loss    top-1        lr   img/s     time")
    for row in lines[table + 1 : table + 6]:
        assert re.fullmatch(
            r" +\d/5 +\d\.\d{4} +\d\.\d{4} +\d+\.\d\d% +\d\.\d\de-\d\d +[\d.,]+ +"
            r"[\d.,]+ (ms|s)( \*best)?",
            row,
        ), row
    assert " 0.0 s" not in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("best_top1", "top1", "top5"):
        assert summary[key] == round(summary[key], 2)
    for key in ("seconds", "images_per_sec", "train_loss", "val_loss"):
        assert len(str(summary[key]).replace(".", "").lstrip("0")) <= 4, (key, summary[key])


def test_run_folder_holds_every_output(scratch_run, shapes):
    proc, run = scratch_run
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["epoch", "train_loss", "val_loss", "top1", "top5", "lr", "images_per_sec", "seconds"]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert all(float(r["images_per_sec"]) > 0 and float(r["seconds"]) > 0 for r in rows)
    assert float(rows[-1]["lr"]) < float(rows[0]["lr"])  # cosine decay
    config = json.loads((run / "config.json").read_text())
    resolved = config["config"]
    # command line (batch 8, lr 5e-3) beats the file (4, 1e-2), which beats the defaults (epochs 10)
    assert (resolved["batch_size"], resolved["lr"], resolved["epochs"], resolved["resolution"]) == (8, 5e-3, 5, 48)
    assert config["classes"] == sorted(SHAPES) and config["train_images"] == 72
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    best, last = read_checkpoint(run / "best.pt"), read_checkpoint(run / "last.pt")
    for ckpt in (best, last):
        assert ckpt["class_names"] == sorted(SHAPES) and ckpt["model_name"] == "mobilenetv3_small_075"
        assert ckpt["preprocess"]["input_size"] == 48
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert best["extra"]["epoch"] == summary["best_epoch"]
    assert float(rows[summary["best_epoch"] - 1]["top1"]) == pytest.approx(summary["best_top1"], abs=1e-3)
    assert last["extra"]["epoch"] == 5 and "optimizer" in last["extra"]


def test_evaluate_reproduces_the_reported_top1(scratch_run, shapes):
    """`mnv3 evaluate VAL --weights RUN/best.pt` gives exactly the top-1 training reported for best.pt."""
    proc, run = scratch_run
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    ev = _run_cli(["evaluate", shapes / "val", "-w", run / "best.pt", "--backend", "torch", "--json"], cwd=run.parent)
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert round(result["top1"], 2) == summary["best_top1"]
    assert result["images"] == 24


def _wait_for(predicate, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def _epochs_logged(run: Path) -> int:
    with contextlib.suppress(FileNotFoundError), open(run / "metrics.csv", newline="") as fh:
        return len(list(csv.DictReader(fh)))
    return 0


def test_sigkill_then_sigint_then_resume_to_the_end(shapes, tmp_path, spawn):
    """A second run into a live run's folder is refused; SIGKILL loses at most the epoch in progress
    and frees the folder; SIGINT finishes the step, saves and exits 130."""
    run = tmp_path / "run"
    args = [
        "train",
        shapes,
        "-o",
        run,
        "-m",
        "mobilenetv3_small_075",
        "--resolution",
        "32",
        "-b",
        "8",
        "-e",
        "40",
        "-j",
        "1",
    ]
    env = cli_env(ONE_THREAD)

    def start(*extra):  # in a session of its own, so that a signal can go to the whole group
        with open(tmp_path / "stderr.txt", "w") as log:  # the child keeps its own copy of the handle
            return spawn(
                [sys.executable, "-m", "mnv3cli", *map(str, extra)],
                stderr=log,
                stdout=subprocess.DEVNULL,
                env=env,
                cwd=tmp_path,
                start_new_session=True,
            )

    proc = start(*args)
    _wait_for(lambda: (run / "metrics.csv").exists() or proc.poll() is not None)
    # the folder belongs to the live run: a second one is refused, naming the holder
    for second in (args, ["train", "--resume", "-o", run]):
        refused = _run_cli(second, cwd=tmp_path)
        assert_one_user_error(
            refused, f"{run}: in use by another training run (pid {proc.pid} on host {socket.gethostname()})"
        )
    assert proc.poll() is None
    proc.kill()
    proc.wait(timeout=30)
    done = read_checkpoint(run / "last.pt")["extra"]["epoch"]
    assert done >= 1
    assert read_checkpoint(run / "last.pt")["preprocess"]["input_size"] == 32

    proc = start("train", "--resume", "-o", run)
    # an event, not a clock: the resumed run has finished an epoch of its own, so it is training
    _wait_for(lambda: _epochs_logged(run) > done or proc.poll() is not None)
    os.killpg(proc.pid, signal.SIGINT)  # like Ctrl-C: the data-loading worker gets it too
    assert proc.wait(timeout=120) == 130
    stderr = (tmp_path / "stderr.txt").read_text()
    assert f"mnv3 train --resume -o {run}" in stderr and "Traceback" not in stderr
    extra = read_checkpoint(run / "last.pt")["extra"]
    assert extra["epoch"] >= done  # nothing lost: the killed run's epochs are all still there

    target = extra["epoch"] + 1
    proc = _run_cli(["train", "--resume", "-o", run, "--epochs", target, "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["epochs"] == target
    with open(run / "metrics.csv", newline="") as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == list(range(1, target + 1))


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc: this is only used on Linux CI)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _torchrun(args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node 2 -m mnv3cli ARGS`` on CPU; a hang fails the test after ``timeout``
    seconds and takes the worker processes down with it (they live in a session of their own)."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "mnv3cli",
        *map(str, args),
    ]
    proc = subprocess.Popen(
        cmd,
        preexec_fn=default_signals,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(ONE_THREAD),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in (*_children(proc.pid), proc.pid):  # torchrun starts each worker in its own session
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(f"torchrun hung for {timeout:.0f} s:\n{stderr[-3000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def test_torchrun_two_cpu_processes(shapes, tmp_path, one_thread, monkeypatch):
    proc = _torchrun(
        [
            "train",
            shapes,
            "-o",
            "run",
            "-m",
            "mobilenetv3_small_075",
            "--resolution",
            "32",
            "-b",
            "8",
            "-e",
            "1",
            "-j",
            "1",
            "--json",
            "--mlflow",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1  # only rank 0 prints
    summary = json.loads(lines[0])
    assert len(re.findall(r"^  1/1  ", proc.stderr, re.MULTILINE)) == 1
    assert "plan:    1 epoch of 5 steps, batch 8 x 2 processes on cpu" in proc.stderr
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["extra"]["epoch"] == 1 and ckpt["extra"]["num_updates"] == 5  # 72 images / 2 / 8
    assert len(ckpt["extra"]["rng"]) == 2  # both processes' random states
    names = sorted(p.name for p in run.iterdir())
    assert [n for n in names if not n.startswith("events.out.tfevents.")] == [
        ".lock",
        "best.pt",
        "config.json",
        "curves.png",
        "last.pt",
        "metrics.csv",
        "mlflow.json",
    ]
    assert len(names) == 8  # one TensorBoard event file: rank 0 writes the logs
    from mlflow.tracking import MlflowClient

    record = json.loads((run / "mlflow.json").read_text())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's own MLflow client
    client = MlflowClient(tracking_uri=record["tracking_uri"])
    (found,) = client.search_runs([record["experiment_id"]])  # one MLflow run, not one per process
    assert [m.step for m in client.get_metric_history(found.info.run_id, "top1")] == [1]

    from mnv3cli.evaluation.evaluate import evaluate
    from mnv3cli.inference.backends import TorchBackend
    from mnv3cli.training.data import find_splits
    from mnv3cli.weights.loader import load_model

    loaded = load_model(run / "best.pt")
    splits = find_splits(shapes)
    result = evaluate(TorchBackend(loaded.model), splits.val, 3, loaded.card.preprocess)
    assert round(result.top1, 2) == summary["best_top1"]


def test_torchrun_survives_a_batch_with_no_readable_image(tmp_path):
    """Every process takes part in every collective even when its whole batch is unreadable.

    Training: process 1's first batch holds only broken files, so it has nothing to learn from while
    process 0 does (before the fix process 0 waited forever in DDP's gradient all-reduce).
    Validation (sharded by batches): process 1's only batch is broken too, and process 0 has two
    batches to its one. The run must finish, count the 4 bad files once and train on the rest.
    """
    from mnv3cli.training.data import EpochSampler, find_splits

    data = make_shapes(tmp_path / "data", per_class=(4, 2))
    splits = find_splits(data)
    assert (len(splits.train), len(splits.val)) == (12, 6)
    seed, batch = 0, 2
    first_batch_of_rank_1 = EpochSampler(len(splits.train), seed=seed, epoch=0, rank=1, world=2).indices[:batch]
    broken = [splits.train[i][0] for i in first_batch_of_rank_1]
    broken += [splits.val[i][0] for i in (2, 3)]  # validation batch 1 of 0-2 goes to process 1
    for path in broken:  # valid headers, truncated data: only decoding finds them (mid-epoch)
        Path(path).write_bytes(Path(path).read_bytes()[:60])
    proc = _torchrun(
        [
            "train",
            data,
            "-o",
            "run",
            "-m",
            "mobilenetv3_small_075",
            "--resolution",
            "32",
            "-b",
            batch,
            "-e",
            "1",
            "-j",
            "1",
            "--seed",
            seed,
            "--warmup-epochs",
            "0",
            "--json",
        ],
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["skipped_images"] == 4 and summary["epochs"] == 1
    assert np.isfinite(summary["train_loss"]) and np.isfinite(summary["val_loss"])
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["extra"]["num_updates"] == 3  # 12 images / 2 processes / batch 2: every step taken
    assert sorted(ckpt["extra"]["skipped"]) == sorted(broken)

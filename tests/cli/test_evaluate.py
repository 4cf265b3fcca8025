"""Command-line tests: ``mnv3`` runs in-process (the ``mnv3`` fixture) where a test is about the
numbers and messages, in a subprocess where it is about processes (torchrun).

``mnv3 evaluate`` end to end with Google's int8 TFLite model on the ImageNet sample in ../shared.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT

TIMING = ("seconds", "images_per_sec")


@pytest.mark.slow
def test_dev_accuracy_and_full_report(mnv3, int8_tflite, imagenet_dev, tmp_path):
    """The accuracy bar, on all 500 images, through the CLI, with every report file."""
    report = tmp_path / "report"
    proc = mnv3("evaluate", imagenet_dev, "-w", int8_tflite, "--report", report, "--json")
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    print(
        f"\nint8 TFLite on dev: top-1 {obj['top1']:.1f} %, top-5 {obj['top5']:.1f} %, "
        f"{obj['images_per_sec']:.1f} images/s ({obj['backend']})"
    )
    assert obj["images"] == 500 and obj["errors"] == 0 and obj["classes"] == 500
    assert obj["top1"] >= 78.5 and obj["top5"] >= 93.5
    assert 0 < obj["loss"] < 1.5 and obj["images_per_sec"] > 0
    assert obj["layout"] == "wordnet-id folders" and len(obj["per_class"]) == 500
    assert json.loads((report / "summary.json").read_text()) == obj
    with open(report / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 500 and sum(r["correct"] == "1" for r in rows) == round(5 * obj["top1"])
    with open(report / "confusion.csv", newline="") as fh:
        assert len(list(csv.reader(fh))) == 501
    assert (report / "confusion.png").read_bytes()[:4] == b"\x89PNG"  # most-confused chart (> 50 classes)


@pytest.mark.slow
def test_torchrun_shards_give_the_numbers_of_one_process(run_cli, bundled_weights, imagenet_examples, tmp_path):
    args = [
        "evaluate",
        str(imagenet_examples),
        "-w",
        str(bundled_weights),
        "--limit",
        "40",
        "-b",
        "8",
        "--backend",
        "torch",
        "--json",
    ]
    # torchrun gives each rank one thread, and torch's CPU kernels round differently with another
    # thread count (the loss moves in the 7th digit): compare against one process on one thread.
    proc = run_cli(*args, env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    single = json.loads(proc.stdout)
    env = os.environ | {"PYTHONPATH": str(ROOT), "MNV3_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "mnv3cli",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    sharded = json.loads(proc.stdout)  # only rank 0 prints
    assert single["images"] == 24 and single["classes"] == 24
    assert {k: v for k, v in sharded.items() if k not in TIMING} == {k: v for k, v in single.items() if k not in TIMING}


def test_bad_images_are_listed_with_labels_csv_and_exit_1(mnv3, bundled_weights, imagenet_examples, tmp_path):
    data = tmp_path / "flat"
    data.mkdir()
    classes = sorted(p for p in imagenet_examples.iterdir() if p.is_dir())[:4]
    rows = []
    for i, folder in enumerate(classes):
        image = next(folder.iterdir())
        shutil.copy(image, data / f"img{i}.jpg")
        rows.append(f"img{i}.jpg,{[folder.name, image.stem.split('_', 1)[1].replace('_', ' ')][i % 2]}")
    jpeg = (data / "img0.jpg").read_bytes()
    (data / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (data / "empty.jpg").write_bytes(b"")
    (data / "text.png").write_text("not a picture")
    rows += ["truncated.jpg,0", "empty.jpg,tench", "text.png,1"]
    (tmp_path / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    report = tmp_path / "report"
    proc = mnv3(
        "evaluate",
        data,
        "-w",
        bundled_weights,
        "--labels",
        tmp_path / "labels.csv",
        "--json",
        "--report",
        report,
        "-b",
        "2",
    )
    assert proc.returncode == 1, proc.stderr
    assert "mnv3: warning: 3 of 7 images could not be read" in proc.stderr
    assert "Traceback" not in proc.stderr
    obj = json.loads(proc.stdout)
    assert obj["layout"] == "labels file" and obj["images"] == 4 and obj["errors"] == 3
    assert sorted(os.path.basename(f["path"]) for f in obj["failed"]) == ["empty.jpg", "text.png", "truncated.jpg"]
    assert json.loads((report / "summary.json").read_text())["errors"] == 3
    with open(report / "predictions.csv", newline="") as fh:
        assert sum(bool(r["error"]) for r in csv.DictReader(fh)) == 3


def test_class_name_folders_human_summary(mnv3, bundled_weights, imagenet_examples, tmp_path):
    for wnid, name in (("n01440764", "tench"), ("n01484850", "great_white_shark")):
        (tmp_path / "data" / name).mkdir(parents=True)
        for image in (imagenet_examples / wnid).iterdir():
            shutil.copy(image, tmp_path / "data" / name / image.name)
    proc = mnv3("evaluate", tmp_path / "data", "-w", bundled_weights)
    assert proc.returncode == 0, proc.stderr
    assert "class-name folders" in proc.stderr
    for text in ("top-1", "images/s", "macro average", "weighted average", "tench", "great white shark"):
        assert text in proc.stdout


def test_unmatched_class_folders_exit_2(mnv3, bundled_weights, imagenet_examples, tmp_path):
    for name in ("cats", "tench"):
        (tmp_path / "data" / name).mkdir(parents=True)
        shutil.copy(next((imagenet_examples / "n01440764").iterdir()), tmp_path / "data" / name / "a.jpg")
    proc = mnv3("evaluate", tmp_path / "data", "-w", bundled_weights)
    assert proc.returncode == 2
    assert "1 class(es) match nothing in the model" in proc.stderr and "'cats'" in proc.stderr


@pytest.mark.parametrize("make", ["missing", "empty", "no images"])
def test_missing_or_empty_folder_exit_2_before_loading_a_model(mnv3, tmp_path, make):
    data = tmp_path / "data"
    if make != "missing":
        data.mkdir()
    if make == "no images":
        (data / "ants").mkdir()
        (data / "ants" / "readme.txt").write_text("x")
    proc = mnv3("evaluate", data, "-w", tmp_path / "never-read.pt")  # the folder fails first
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("mnv3: error: ") and len(proc.stderr.splitlines()) == 1
    assert ("no such folder" if make == "missing" else "no images found") in proc.stderr

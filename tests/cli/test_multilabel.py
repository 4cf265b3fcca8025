"""A multi-label model end to end, on mosaics of real photos (tests/mosaics.py): train -> evaluate ->
calibrate -> export (ONNX, OpenVINO) -> predict with the exported files -> serve; every step must
answer the same LABELS, those the card's thresholds give (calibration changes scores, not labels)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mosaics import imagenet_mosaics

from helpers import cli_env, require_shared
from server_process import ServerProcess


def mnv3(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnv3cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(manifest, best.pt) of a one-epoch multi-label run on 40 + 16 mosaics at 64 pixels."""
    dev = require_shared("data", "imagenet-sample", "dev")
    weights = require_shared("weights", "mobilenet_v3_small_1.0_224_int8.tflite")
    root = tmp_path_factory.mktemp("multilabel")
    manifest = imagenet_mosaics(dev, root / "mosaics", train=40, val=16, size=64)
    done = mnv3(
        "train", manifest, "--weights", weights, "-e", "1", "-r", "64", "-b", "8", "-j", "1", "--lr", "1e-3",
        "--no-tensorboard", "-o", root / "run", "--json", cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "mAP" in done.stderr + done.stdout
    return manifest, root / "run" / "best.pt"


def labels_from_card(best: Path, record: dict) -> list[str]:
    """What the card's thresholds say of a prediction record's top-k scores (all classes: -k 8)."""
    from mnv3cli.weights.loader import load_model

    card = load_model(best).card
    scores = {p["label"]: p["probability"] for p in record["predictions"]}
    limits = dict(zip(card.class_names, card.decision_thresholds(), strict=True))
    return sorted((c for c in scores if scores[c] >= limits[c]), key=lambda c: -scores[c])


def predicted(best_or_export: Path, images: list[Path], cwd: Path) -> tuple[list[list[str]], list[dict]]:
    done = mnv3("predict", *images, "-w", best_or_export, "-k", "8", "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    return [[p["label"] for p in r["labels"]] for r in records], records


def test_multilabel_end_to_end(trained, tmp_path):
    manifest, best = trained
    from mnv3cli.weights.loader import load_model

    card = load_model(best).card
    assert card.head == "sigmoid" and card.thresholds is not None and len(card.thresholds) == len(card.class_names)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    val = [manifest.parent / r["path"] for r in rows if r["split"] == "val"][:6]

    done = mnv3("evaluate", manifest, "-w", best, "--json", "--report", tmp_path / "report", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[0])
    assert summary["images"] == 16 and 0 < summary["map"] <= 1
    assert {c["label"] for c in summary["per_class"]} == set(card.class_names)
    assert (tmp_path / "report" / "report.html").is_file()

    expected, records = predicted(best, val, tmp_path)
    assert expected == [labels_from_card(best, r) for r in records]  # labels = scores at/above thresholds
    assert any(expected)  # some image has a label (the thresholds are F1-optimal on val)
    done = mnv3("calibrate", manifest, "-w", best, "-o", tmp_path / "cal.pt", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    fit = json.loads(done.stdout.splitlines()[0])
    assert fit["bce_after"] <= fit["bce_before"] and set(fit["class_temperatures"]) == set(card.class_names)
    calibrated = load_model(tmp_path / "cal.pt").card
    assert calibrated.class_temperatures is not None and calibrated.class_temperatures != (1.0,) * 8
    after, records_after = predicted(tmp_path / "cal.pt", val, tmp_path)
    assert [sorted(x) for x in after] == [sorted(x) for x in expected]  # thresholds moved with the temperatures
    assert after == [labels_from_card(tmp_path / "cal.pt", r) for r in records_after]
    assert [r["predictions"] for r in records_after] != [r["predictions"] for r in records]  # the scores did not
    for fmt, name in (("onnx", "m.onnx"), ("openvino", "m.xml")):
        done = mnv3("export", "-f", fmt, "-w", tmp_path / "cal.pt", "-o", tmp_path / name, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert predicted(tmp_path / name, val, tmp_path)[0] == after, fmt  # the calibrated model's, in its order

    done = mnv3("export", "-f", "torchscript", "-w", tmp_path / "cal.pt", "-o", tmp_path / "ts.pt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    import warnings

    import torch

    extra = {"mnv3_card.json": ""}
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(tmp_path / "ts.pt", _extra_files=extra)
    ts_card = json.loads(extra["mnv3_card.json"])
    assert ts_card["head"] == "sigmoid" and tuple(ts_card["thresholds"]) == calibrated.thresholds

    with ServerProcess("--weights", tmp_path / "m.onnx", cwd=tmp_path) as server:
        for image, labels in zip(val, after, strict=True):
            status, answer = server.predict(image.read_bytes())
            assert status == 200, answer
            assert [p["label"] for p in answer["labels"]] == labels


def test_softmax_model_on_a_labels_manifest_is_a_user_error(trained, tmp_path):
    manifest, _ = trained
    done = mnv3("evaluate", manifest, cwd=tmp_path)  # the bundled single-label model
    assert done.returncode == 2
    assert "softmax" in done.stderr and "Traceback" not in done.stderr


def test_ants_and_bees_mosaics(tmp_path):
    from mosaics import hymenoptera_mosaics

    from mnv3cli.data.manifest import read_manifest

    root = require_shared("data", "hymenoptera")
    manifest = read_manifest(hymenoptera_mosaics(root, tmp_path, train=6, val=3, size=32))
    assert manifest.multi_label and set(manifest.classes) == {"ants", "bees"} and not manifest.problems
    assert [len(manifest.split(s)) for s in ("train", "val")] == [6, 3]
    assert all(set(row.labels) <= {"ants", "bees"} and row.labels for row in manifest.rows)

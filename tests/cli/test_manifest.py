"""Manifests on the command line: each labelled command reads one like the folder it stands for.

The commands run in-process (``mnv3``, :func:`helpers.invoke`): they are about what is read; only
training, which starts a data-loading worker, runs in a subprocess (``run_cli``)."""

from __future__ import annotations

import json
import os

import pytest

CLASSES = 12  # ImageNet dev classes in the small set: one image each


@pytest.fixture(scope="module")
def dev_set(tmp_path_factory, imagenet_examples):
    """A class-folder copy (symlinks) of 12 ImageNet dev images, and a manifest of the same images
    (test split) plus one row naming a missing file (line 14)."""
    root = tmp_path_factory.mktemp("dev")
    rows = ["path,label,split"]
    for wnid in sorted(os.listdir(imagenet_examples))[:CLASSES]:
        (root / "dev" / wnid).mkdir(parents=True)
        for name in sorted(os.listdir(imagenet_examples / wnid)):
            os.symlink(imagenet_examples / wnid / name, root / "dev" / wnid / name)
            rows.append(f"dev/{wnid}/{name},{wnid},test")
    good = root / "good.csv"
    good.write_text("\n".join(rows) + "\n")
    bad = root / "bad.csv"
    bad.write_text("\n".join([*rows, f"dev/missing.jpg,{wnid},test"]) + "\n")
    return root


def test_evaluate_manifest_equals_folder(mnv3, dev_set, bundled_weights):
    folder = mnv3("evaluate", dev_set / "dev", "-w", bundled_weights, "--json")
    manifest = mnv3("evaluate", dev_set / "good.csv", "-w", bundled_weights, "--json")
    assert folder.returncode == 0 and manifest.returncode == 0, manifest.stderr
    a, b = json.loads(folder.stdout), json.loads(manifest.stdout)
    assert b["images"] == a["images"] == CLASSES and b["top1"] == a["top1"]
    assert "reading the test split" in manifest.stderr
    assert a["layout"] == "wordnet-id folders" and b["layout"] == "manifest"


def test_evaluate_bad_row_is_a_partial_failure(mnv3, dev_set, bundled_weights):
    proc = mnv3("evaluate", dev_set / "bad.csv", "-w", bundled_weights, "--json")
    assert proc.returncode == 1, proc.stderr
    assert f"{dev_set / 'bad.csv'}:{CLASSES + 2}: no such image 'dev/missing.jpg'" in proc.stderr
    assert json.loads(proc.stdout)["images"] == CLASSES  # the good rows were all evaluated


def test_evaluate_refuses_an_escaping_path(mnv3, dev_set, bundled_weights, tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    first = next((dev_set / "dev").iterdir())
    image = next(first.iterdir())
    (inner / "m.csv").write_text(f"path,label\n{image},{first.name}\n")
    proc = mnv3("evaluate", inner / "m.csv", "-w", bundled_weights)
    assert proc.returncode == 2 and "is outside the manifest's folder" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    allowed = mnv3("evaluate", inner / "m.csv", "-w", bundled_weights, "--allow-absolute-paths", "--json")
    assert allowed.returncode == 0 and json.loads(allowed.stdout)["images"] == 1


def test_split_without_a_manifest_is_refused(mnv3, dev_set, bundled_weights):
    proc = mnv3("evaluate", dev_set / "dev", "-w", bundled_weights, "--split", "val")
    assert proc.returncode == 2 and "--split: only for a CSV/JSONL manifest" in proc.stderr


def test_profile_top1_on_a_manifest(mnv3, dev_set, tmp_path):
    onnx = tmp_path / "small.onnx"
    assert mnv3("export", "-o", onnx).returncode == 0  # the bundled model: real weights
    timing = ("--backend", "onnxruntime", "--runs", "1", "--warmup", "0", "--json")
    folder = mnv3("profile", "-w", onnx, "--data", dev_set / "dev", *timing)
    proc = mnv3("profile", "-w", onnx, "--data", dev_set / "bad.csv", *timing)
    assert proc.returncode == 1 and "bad.csv:14: no such image" in proc.stderr
    top1 = json.loads(proc.stdout)["latency_ms"]["top1"]
    assert top1 is not None and top1 == json.loads(folder.stdout)["latency_ms"]["top1"]


def test_calibrate_on_a_manifest(mnv3, imagenet_dev, int8_tflite, tmp_path):
    """Fits on the val rows (60; calibrate needs 50), not the test ones, unless --split says so."""
    rows = ["path,label,split"]
    for i, wnid in enumerate(sorted(os.listdir(imagenet_dev))[:120]):
        for name in os.listdir(imagenet_dev / wnid):
            rows.append(f"{imagenet_dev / wnid / name},{wnid},{'val' if i % 2 else 'test'}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "cal.pt"
    proc = mnv3("calibrate", tmp_path / "m.csv", "-w", int8_tflite, "-o", out, "--allow-absolute-paths", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["images"] == 60 and out.is_file()
    assert "reading the val split" in proc.stderr


def test_train_on_a_manifest_with_the_imbalance_options(run_cli, mnv3, shapes):
    """train/val rows become the splits (test rows are left alone), classes keep --classes order,
    the options reach the recorded config, and a bad row ends the run with exit status 1."""
    rows = ["path,label,split"]
    for split in ("train", "val"):
        for folder in sorted((shapes / split).iterdir()):
            rows += [f"{split}/{folder.name}/{f.name},{folder.name},{split}" for f in sorted(folder.iterdir())]
    rows.append(f"val/missing.png,{folder.name},train")
    manifest = shapes / "shapes.csv"
    manifest.write_text("\n".join(rows) + "\n")
    order = sorted((shapes / "train").iterdir(), reverse=True)
    (shapes / "classes.txt").write_text("".join(f"{f.name}\n" for f in order))
    run = shapes.parent / "manifest-run"
    proc = run_cli(
        *("train", manifest, "--classes", shapes / "classes.txt", "-m", "mobilenetv3_small_075", "-r", "32"),
        *("-e", "1", "-b", "8", "-j", "1", "-o", run, "--class-weights", "balanced", "--sampler", "balanced"),
        *("--no-tensorboard", "--json"),
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 1, proc.stderr
    assert f"shapes.csv:{len(rows)}: no such image 'val/missing.png'" in proc.stderr
    assert "3 classes, 72 training / 24 validation images" in proc.stderr
    config = json.loads((run / "config.json").read_text())
    recorded = config.get("config", config)
    assert recorded["class_weights"] == "balanced" and recorded["sampler"] == "balanced"
    assert json.loads(proc.stdout)["epochs"] == 1
    scored = mnv3("evaluate", manifest, "--split", "val", "-w", run / "best.pt", "--json")
    per_class = json.loads(scored.stdout)["per_class"]
    assert [c["index"] for c in per_class if c["label"] == order[0].name] == [0]  # --classes order


def test_predict_reads_a_manifest_as_its_input_list(mnv3, dev_set, int8_tflite):
    proc = mnv3("predict", dev_set / "bad.csv", "-w", int8_tflite, "-k", "1", "--json")
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    listed = [row.split(",")[0] for row in (dev_set / "good.csv").read_text().splitlines()[1:]]
    assert [line["path"] for line in lines[:-1]] == [str(dev_set / path) for path in listed]
    assert all(line["predictions"] for line in lines[:-1])
    assert lines[-1] == {
        "path": f"{dev_set / 'bad.csv'}:{CLASSES + 2}",
        "error": f"{dev_set / 'bad.csv'}:{CLASSES + 2}: no such image 'dev/missing.jpg'",
    }


def test_export_int8_reads_train_rows_to_calibrate_and_test_rows_to_certify(mnv3, imagenet_dev, int8_tflite, tmp_path):
    """Refused before any quantization (2 held-out images cannot certify 50 points): the counts
    show which rows each option read; the bad row is listed first."""
    wnids = sorted(os.listdir(imagenet_dev))[:6]
    rows = ["path,label,split"]
    rows += [f"{imagenet_dev / w / os.listdir(imagenet_dev / w)[0]},{w},train" for w in wnids[:4]]
    rows += [f"{imagenet_dev / w / os.listdir(imagenet_dev / w)[0]},{wnids[0]},test" for w in wnids[4:]]
    rows.append(f"nowhere.jpg,{wnids[0]},train")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    args = ["export", "--int8", "-w", int8_tflite, "--data", tmp_path / "m.csv", "--val", tmp_path / "m.csv"]
    proc = mnv3(*args, "--allow-absolute-paths", "--max-drop", "50", "-o", tmp_path / "s8.onnx")
    assert proc.returncode == 2, proc.stderr
    assert "m.csv:8: no such image 'nowhere.jpg'" in proc.stderr
    assert "2 held-out images cannot certify it (at least 7" in proc.stderr and not (tmp_path / "s8.onnx").exists()

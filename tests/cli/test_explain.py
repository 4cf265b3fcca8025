"""``mnv3 explain`` through the command line: top-5, one PNG per image, --class, errors.

In-process (the ``mnv3`` fixture, :func:`helpers.invoke`): about outputs, not the process."""

from __future__ import annotations

import json

import pytest

from helpers import assert_one_user_error

pytest.importorskip("pytorch_grad_cam", reason="mnv3 explain needs the grad-cam extra")


def test_heatmaps_and_top5_for_each_image(mnv3, bundled_weights, cat_photo, coffee_photo, tmp_path):
    proc = mnv3(
        "explain",
        cat_photo,
        coffee_photo,
        cat_photo,
        "missing.jpg",
        "-w",
        bundled_weights,
        "--class",
        "tabby",
        "-o",
        "cams",
        "--json",
    )
    assert proc.returncode == 1, proc.stderr  # missing.jpg; the others are done
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["class"] for line in lines] == ["tabby"] * 3 and lines[0]["index"] == 281
    assert [p["label"] for p in lines[0]["predictions"][:2]] == ["Egyptian cat", "tiger cat"]
    assert len(lines[0]["predictions"]) == 5
    assert [line["heatmap"] for line in lines] == [
        "cams/chelsea.gradcam.png",
        "cams/coffee.gradcam.png",
        "cams/chelsea-2.gradcam.png",
    ]
    assert (tmp_path / "cams" / "coffee.gradcam.png").read_bytes()[:4] == b"\x89PNG"
    assert "mnv3: error: missing.jpg: no such file" in proc.stderr


def test_top1_by_default_with_a_table(mnv3, bundled_weights, coffee_photo):
    proc = mnv3("explain", coffee_photo, "-w", bundled_weights, "-o", "cams")
    assert proc.returncode == 0, proc.stderr
    assert "espresso" in proc.stdout and "wrote cams/coffee.gradcam.png: Grad-CAM of 'espresso'" in proc.stdout


def test_an_unknown_class_is_refused_before_any_image(mnv3, bundled_weights, cat_photo):
    assert_one_user_error(
        mnv3("explain", cat_photo, "-w", bundled_weights, "--class", "unicorn", "-o", "cams"),
        "--class unicorn",
        "not a class",
    )

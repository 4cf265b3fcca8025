"""Untrusted exported files through the CLI (issue 24, item 4): a bad card or graph is one error line
and exit 2; an image whose scores are not finite is an error of that image (exit 1), the others are
still answered, and no NaN ever reaches a result."""

from __future__ import annotations

import csv
import json

import pytest

from helpers import assert_one_user_error
from hostile_graphs import card, graph


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A black image (its log-mean feature is -inf) and a white one (finite), in class folders."""
    from PIL import Image

    root = tmp_path_factory.mktemp("bw")
    for name, colour in (("class 0", 0), ("class 1", 255)):
        (root / name).mkdir()
        Image.new("RGB", (40, 40), (colour,) * 3).save(root / name / f"{colour}.png")
    return root


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"card_dict": card(4, resize=60000)}, "resize 60000"), ({"outputs": 10}, "[batch, 10]")],
)
def test_a_hostile_exported_file_is_one_error_line(run_cli, images, tmp_path, kwargs, needle):
    path = graph(tmp_path / "bad.onnx", **{"card_dict": card(4), **kwargs})
    result = run_cli("predict", "-w", path, images / "class 1" / "255.png")
    assert_one_user_error(result, "bad.onnx", needle)


def test_non_finite_scores_are_an_error_of_that_image_only(run_cli, images, tmp_path):
    path = graph(tmp_path / "log.onnx", card(4), log=True)
    black, white = images / "class 0" / "0.png", images / "class 1" / "255.png"
    result = run_cli("predict", "-w", path, black, white, "--json")
    assert result.returncode == 1, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert "not finite" in records[0]["error"] and "predictions" not in records[0]
    assert records[1]["predictions"][0]["probability"] > 0
    assert "internal error" not in result.stderr
    out = tmp_path / "r.csv"
    result = run_cli("predict", "-w", path, black, white, "-o", out)
    assert result.returncode == 1, result.stderr
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert "not finite" in rows[1][-1] and rows[2][-1] == ""
    assert not any(cell.lower() in ("nan", "inf", "-inf") for row in rows for cell in row)


def test_evaluate_counts_non_finite_scores_as_unreadable(run_cli, images, tmp_path):
    path = graph(tmp_path / "log.onnx", card(4), log=True)
    result = run_cli("evaluate", "-w", path, images, "--json")
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["images"] == 1 and summary["errors"] == 1
    assert "not finite" in summary["failed"][0]["error"]

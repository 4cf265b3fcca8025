"""Labels and file names are untrusted text: people's output shows them as plain text (no rich
markup, control characters escaped), JSON keeps them exact, CSV cells are guarded against
spreadsheet formulas (issue 24, item 3).

The commands run in-process (:func:`helpers.invoke`): the bytes they write are the subject, not the
process; only training, which starts a data-loading worker, runs in a subprocess."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from helpers import invoke

ESC = "\x1b"
# One label of each kind: rich markup, a terminal escape (red text), a spreadsheet formula, emoji code,
# matplotlib mathtext (which the report's confusion plot would parse, and fail on).
LABELS = ("[/]", f"{ESC}[31mred", "=1+2", ":cat: [v2] ants", "$\\frac$ x")
FOLDERS = LABELS[1:]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """A tiny checkpoint whose classes are :data:`LABELS`, and images named like them."""
    import torch
    from PIL import Image

    from mnv3cli.model import MobileNetV3
    from mnv3cli.registry import ModelCard, Preprocess
    from mnv3cli.weights.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("hostile")
    torch.manual_seed(0)
    model = MobileNetV3("small", classes=len(LABELS), width=0.5).eval()
    card = ModelCard("custom", LABELS, Preprocess(input_size=32, resize=32))
    save_checkpoint(root / "evil.pt", model, card=card, arch={"size": "small", "width": 0.5})
    (root / "x[").mkdir()
    for i, name in enumerate(("x[/]y.jpg", f"e{ESC}[2Jz.jpg", "=cmd.jpg")):
        Image.new("RGB", (40, 40), (60 * i, 200 - 60 * i, 90)).save(root / name)
    for i, label in enumerate(FOLDERS):  # "[/]" cannot be a folder's name
        folder = root / "data" / label
        folder.mkdir(parents=True)
        for j in range(13):  # 52 images: calibrate's minimum for a temperature is 50
            Image.new("RGB", (40, 40), (50 * i, 10 * j, 120)).save(folder / f"{j}.png")
    return root


def _no_raw_controls(*texts: str) -> None:
    for text in texts:
        assert ESC not in text, text


def test_predict_prints_labels_and_paths_as_plain_text(hostile):
    result = invoke("predict", "-w", "evil.pt", "x[/]y.jpg", f"e{ESC}[2Jz.jpg", "--top-k", "5", cwd=hostile)
    assert result.returncode == 0, result.stderr
    _no_raw_controls(result.stdout, result.stderr)
    assert "internal error" not in result.stderr
    for shown in ("x[/]y.jpg", "e\\x1b[2Jz.jpg", "[/]", "\\x1b[31mred", "=1+2", ":cat: [v2] ants"):
        assert shown in result.stdout, shown


def test_predict_json_keeps_labels_and_paths_exact(hostile):
    result = invoke("predict", "-w", "evil.pt", f"e{ESC}[2Jz.jpg", "--top-k", "5", "--json", cwd=hostile)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["path"] == f"e{ESC}[2Jz.jpg"
    assert sorted(p["label"] for p in record["predictions"]) == sorted(LABELS)


def test_predict_csv_guards_formulas_and_resumes_its_own_file(hostile, tmp_path):
    out = tmp_path / "r.csv"
    args = ("predict", "-w", "evil.pt", "=cmd.jpg", "x[/]y.jpg", "--top-k", "5", "-o", out)
    result = invoke(*args, cwd=hostile)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[1][0] == "'=cmd.jpg"
    labels = {cell for row in rows[1:] for cell in row[1::3][:5]}
    assert labels == {"[/]", f"{ESC}[31mred", "'=1+2", ":cat: [v2] ants", "$\\frac$ x"}
    again = invoke(*args, "--resume", cwd=hostile)  # the guarded cells read back as the inputs
    assert again.returncode == 0, again.stderr


def test_explain_on_a_markup_name_and_label(hostile, tmp_path):
    result = invoke("explain", "-w", "evil.pt", "x[/]y.jpg", "-o", tmp_path / "cams", cwd=hostile)
    assert result.returncode == 0, result.stderr
    _no_raw_controls(result.stdout, result.stderr)
    assert "x[/]y.jpg" in result.stdout and "[/]" in result.stdout


def test_evaluate_tables_report_and_csv_show_plain_guarded_labels(hostile, tmp_path):
    report = tmp_path / "report"
    result = invoke("evaluate", "-w", "evil.pt", "data", "--report", report, cwd=hostile)
    assert result.returncode == 0, result.stderr
    _no_raw_controls(result.stdout, result.stderr)
    for shown in ("\\x1b[31mred", "=1+2", ":cat: [v2] ants", "$\\frac$ x"):
        assert shown in result.stdout, shown
    assert (report / "confusion.png").stat().st_size > 0
    html = (report / "report.html").read_text(encoding="utf-8")
    _no_raw_controls(html)
    assert "\\x1b[31mred" in html and "[v2] ants" in html
    for name in ("per_class.csv", "predictions.csv"):
        cells = {cell for row in csv.reader((report / name).open(encoding="utf-8")) for cell in row}
        assert "'=1+2" in cells and "=1+2" not in cells, name
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert {r["label"] for r in summary["per_class"]} >= set(FOLDERS)


def test_evaluate_json_keeps_labels_exact(hostile):
    result = invoke("evaluate", "-w", "evil.pt", "data", "--json", cwd=hostile)
    assert result.returncode == 0, result.stderr
    assert {r["label"] for r in json.loads(result.stdout)["per_class"]} >= set(FOLDERS)


def test_calibrate_and_train_name_hostile_folders_plainly(run_cli, hostile, tmp_path):
    cal = invoke("calibrate", "-w", "evil.pt", "data", "-o", tmp_path / f"c{ESC}[2J.pt", cwd=hostile)
    assert cal.returncode == 0, cal.stderr
    _no_raw_controls(cal.stdout, cal.stderr)
    assert "c\\x1b[2J.pt" in cal.stdout
    run = tmp_path / f"run{ESC}]0;title{chr(7)}"
    train = run_cli(
        "train",
        "data",
        "--val",
        "data",
        "--epochs",
        "1",
        "--resolution",
        "32",
        "-j",
        "1",
        "-b",
        "3",
        "-o",
        run,
        cwd=hostile,
    )
    assert train.returncode == 0, train.stderr
    _no_raw_controls(train.stdout, train.stderr)
    assert "run\\x1b]0;title\\x07" in train.stderr

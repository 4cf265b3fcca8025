"""The evaluate engine and its report files, driven by a backend whose answers are known exactly.

``MeanColour`` is a genuine (if trivial) backend: its logits are the mean of each colour channel,
so a red image is class 0, green 1, blue 2. Every count below therefore follows from the images.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from mnv3cli.distributed import shard_positions
from mnv3cli.errors import UserError
from mnv3cli.evaluation.evaluate import evaluate, spread_subset
from mnv3cli.evaluation.report import write_report
from mnv3cli.evaluation.results import summary
from mnv3cli.registry import Preprocess

CLASSES = ["red", "green", "blue"]


COLOURS = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230)}


PREPROCESS = Preprocess(input_size=16, resize=18, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


class MeanColour:
    name = "mean-colour"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return 4.0 * batch.mean(axis=(2, 3))


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[tuple[str, int]]:
    """4 red, 3 green, 1 blue image labelled red (the one mistake), a corrupt and an empty file."""
    root = tmp_path_factory.mktemp("colours")
    out = []
    for colour, count, label in (("red", 4, 0), ("green", 3, 1), ("blue", 1, 0)):
        for i in range(count):
            path = root / f"{colour}{i}.png"
            Image.new("RGB", (24, 20), COLOURS[colour]).save(path)
            out.append((str(path), label))
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "empty.png").write_bytes(b"")
    out.insert(2, (str(root / "corrupt.jpg"), 1))
    out.append((str(root / "empty.png"), 2))
    return out


@pytest.fixture(scope="module")
def result(samples):
    return evaluate(MeanColour(), samples, 3, PREPROCESS, batch_size=3, workers=2)


def test_counts_losses_and_errors(result, samples):
    assert result.images == 8 and result.meter.count == 8
    assert result.top1 == pytest.approx(100 * 7 / 8)
    assert result.top5 == 100.0  # three classes: the truth is always in the top 5
    assert result.meter.confusion.tolist() == [[4, 0, 1], [0, 3, 0], [0, 0, 0]]
    assert [p for p, _ in result.errors] == [samples[2][0], samples[-1][0]]
    assert "corrupt" in result.errors[0][1] and "empty file" in result.errors[1][1]
    assert [p.index for p in result.predictions] == [i for i in range(10) if i not in (2, 9)]
    red = np.array([4.0 * (230 / 127.5 - 1), 4.0 * (20 / 127.5 - 1), 4.0 * (20 / 127.5 - 1)])
    expected_loss = -(red[0] - math.log(np.exp(red).sum()))
    assert result.predictions[0].loss == pytest.approx(expected_loss, abs=1e-6)
    assert result.loss == pytest.approx(sum(p.loss for p in result.predictions) / 8)
    assert result.images_per_sec > 0 and result.classes == [0, 1, 2]


def test_summary_per_class_and_mistakes(result):
    s = summary(result, CLASSES).to_dict()
    rows = {r["label"]: r for r in s["per_class"]}
    assert rows["red"] == {
        "index": 0,
        "label": "red",
        "precision": 100.0,
        "recall": 80.0,
        "f1": 88.89,
        "support": 5,
    }  # percentages to 2 decimals
    assert rows["blue"]["precision"] == 0.0 and rows["blue"]["support"] == 0
    assert s["most_confused"] == [
        {"true": 0, "true_label": "red", "predicted": 2, "predicted_label": "blue", "count": 1}
    ]
    assert [m["path"].rsplit("/", 1)[1] for m in s["confident_mistakes"]] == ["blue0.png"]
    assert s["errors"] == 2 and len(s["failed"]) == 2
    assert s["averages"]["weighted"]["recall"] == pytest.approx(100 * 7 / 8)
    json.dumps(s, allow_nan=False)


def test_summary_numbers_are_rounded_and_top5_only_beyond_5_classes(result):
    s = summary(result, CLASSES).to_dict()
    assert s["top1"] == 87.5 and s["top5"] is None  # 3 classes: top-5 would always read 100 %
    assert s["loss"] == float(f"{result.loss:.4g}") and s["loss"] != result.loss
    assert s["averages"]["macro"]["f1"] == round(s["averages"]["macro"]["f1"], 2)
    assert s["seconds"] == float(f"{result.seconds:.3g}") or s["seconds"] == round(result.seconds)
    probability = s["confident_mistakes"][0]["probability"]
    assert probability == float(f"{probability:.6g}")
    assert summary(result, CLASSES + ["cyan", "magenta", "yellow"]).top5 == 100.0


def test_table_hides_top5_for_few_classes_and_never_reads_zero_seconds(result, capsys):
    from mnv3cli.cli.context import AppContext
    from mnv3cli.cli.evaluate import _print_summary

    obj = summary(result, CLASSES, model="m", weights="w", data="d", layout="l")
    _print_summary(AppContext(), replace(obj, seconds=0.004))
    out = capsys.readouterr().out
    assert re.search(r"│ top-1 +│ 87.50 % │", out) and "top-5" not in out
    assert re.search(r"│ wall time +│ 4.00 ms │", out)
    _print_summary(AppContext(), replace(obj, top5=99.5, seconds=12.34))
    out = capsys.readouterr().out
    assert re.search(r"│ top-5 +│ 99.50 % │", out) and re.search(r"│ wall time +│  12.3 s │", out)


def test_summary_keeps_every_path_whole_at_80_columns(result, capsys, monkeypatch):
    from mnv3cli.cli.context import AppContext
    from mnv3cli.cli.evaluate import _print_summary

    monkeypatch.setenv("COLUMNS", "80")
    weights = "/models/a folder with spaces/" + "w" * 60 + ".tflite"
    obj = summary(result, CLASSES, model="m", weights=weights, data="d", layout="l")
    _print_summary(AppContext(), obj)
    lines = capsys.readouterr().out.splitlines()
    wholes = [weights] + [m["path"] for m in obj.confident_mistakes] + [f["error"] for f in obj.failed]
    assert len(wholes) == 4 and max(map(len, wholes)) > 80
    for text in wholes:
        assert any(text in line for line in lines), text
    assert all(len(line) <= 80 for line in lines if line[:1] in "┏┃┡│├└┌")  # the tables fit


def test_report_files_parse(result, tmp_path):
    written, notes = write_report(tmp_path / "report", result, CLASSES, summary(result, CLASSES))
    assert (
        sorted(p.name for p in written)
        == [
            "confusion.csv",
            "confusion.png",
            "coverage.png",
            "per_class.csv",
            "predictions.csv",
            "reliability.png",
            "report.html",
            "summary.json",
        ]
        and not notes
    )
    assert json.loads((tmp_path / "report" / "summary.json").read_text())["top1"] == result.top1
    with open(tmp_path / "report" / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10 and sum(r["correct"] == "1" for r in rows) == 7
    assert [r["error"] != "" for r in rows].count(True) == 2
    with open(tmp_path / "report" / "confusion.csv", newline="") as fh:
        matrix = list(csv.reader(fh))
    assert matrix[0][1:] == CLASSES and matrix[1] == ["red", "4", "0", "1"]
    with open(tmp_path / "report" / "per_class.csv", newline="") as fh:
        assert [r["label"] for r in csv.DictReader(fh)] == CLASSES
    assert (tmp_path / "report" / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "report" / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # published whole: no private folder left


def test_limit_spreads_over_the_list_and_progress_reports_each_batch(samples):
    assert spread_subset(list(range(10)), 4) == [0, 2, 5, 7]
    seen = []
    r = evaluate(MeanColour(), samples, 3, PREPROCESS, batch_size=2, limit=5, on_batch=seen.append)
    assert r.images + len(r.errors) == 5 and r.classes == [0, 1]
    assert [p.done for p in seen] == [2, 4, 5] and seen[-1].total == 5


@pytest.mark.parametrize("count, batch, world", [(10, 3, 1), (10, 3, 2), (41, 8, 3), (2, 4, 3)])
def test_shards_cover_every_batch_once(count, batch, world):
    shards = [shard_positions(count, batch, rank, world) for rank in range(world)]
    assert sorted(i for s in shards for i in s) == list(range(count))
    batches = [list(range(start, min(start + batch, count))) for start in range(0, count, batch)]
    for rank, s in enumerate(shards):  # whole batches of the one-process run, dealt round-robin
        assert s == [i for b in batches[rank::world] for i in b]


def test_backend_with_other_classes_is_a_user_error(samples):
    with pytest.raises(UserError, match="4 outputs but the images are labelled with 3 classes"):
        evaluate(lambda b: np.zeros((len(b), 4), np.float32), samples, 3, PREPROCESS)


def test_json_keys_keep_their_order_and_unknown_context_is_left_out(result):
    """--json and summary.json print ``to_dict()``: context first, then the numbers, as scripts read them."""
    full = summary(result, CLASSES, model="m", weights="w", backend="b", data="d", layout="l", tta="flip")
    assert list(full.to_dict()) == [
        *("model", "weights", "backend", "data", "layout", "tta"),
        *("top1", "top5", "balanced_accuracy", "macro_f1", "loss", "images", "errors", "classes", "seconds"),
        *("images_per_sec", "calibration"),
        *("averages", "per_class", "most_confused", "confident_mistakes", "least_confident_correct", "failed"),
    ]
    assert list(summary(result, CLASSES, model="m").to_dict())[:2] == ["model", "top1"]


def test_a_new_headline_row_shows_in_the_terminal_and_the_report_page(result, tmp_path, capsys, monkeypatch):
    """One row definition reaches both surfaces (evaluate's table and report.html's summary)."""
    from mnv3cli.cli.context import AppContext
    from mnv3cli.cli.evaluate import _print_summary
    from mnv3cli.evaluation import results

    row = results.Row("images twice", lambda s: str(2 * s.images))
    monkeypatch.setattr(results, "HEADLINE", (*results.HEADLINE, row))
    obj = summary(result, CLASSES, model="m", weights="w", data="d", layout="l")
    _print_summary(AppContext(), obj)
    assert re.search(r"│ images twice +│ +16 │", capsys.readouterr().out)
    write_report(tmp_path / "r", result, CLASSES, obj)
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "<tr><th>images twice</th><td class='n'>16</td></tr>" in page


def test_terminal_and_page_show_the_same_numbers(result, tmp_path, capsys):
    """The page adds the context (the terminal's title line) and leaves out the timings; every
    other row is on both, with the same text."""
    from mnv3cli.cli.context import AppContext
    from mnv3cli.cli.evaluate import _print_summary
    from mnv3cli.evaluation.results import headline

    obj = summary(result, CLASSES, model="m", weights="w", data="d", layout="l", temperature=1.5, tta="flip")
    _print_summary(AppContext(), obj)
    out = capsys.readouterr().out
    write_report(tmp_path / "r", result, CLASSES, obj)
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    terminal = dict(headline(obj, "terminal"))
    on_page = dict(headline(obj, "page"))
    assert set(terminal) - set(on_page) == {"wall time", "images/s"}
    assert set(on_page) - set(terminal) == {"model", "weights", "data", "layout"}  # backend unknown here
    for label in set(terminal) & set(on_page):
        text = terminal[label]
        assert re.search(rf"│ {re.escape(label)} +│ +{re.escape(text)} │", out), label
        assert f"<tr><th>{label}</th><td class='n'>{text}</td></tr>" in page, label
    assert terminal["temperature"] == "1.5" and terminal["test-time aug."] == "flip"


def test_balanced_accuracy_and_macro_f1_agree_with_scikit_learn(result):
    """Red 4 of 5 right (one taken for blue), green 3 of 3; blue's only image is unreadable, so
    blue has no recall and is left out, as scikit-learn leaves out a class absent from y_true."""
    s = summary(result, CLASSES)
    assert s.balanced_accuracy == 90.0  # (80 + 100) / 2, where top-1 is 87.5
    assert s.macro_f1 == pytest.approx((88.89 + 100) / 2, abs=0.01)
    metrics = pytest.importorskip("sklearn.metrics")
    truth = [p.target for p in result.predictions]
    predicted = [p.predicted for p in result.predictions]
    assert s.balanced_accuracy == pytest.approx(100 * metrics.balanced_accuracy_score(truth, predicted), abs=0.005)
    f1 = metrics.f1_score(truth, predicted, labels=sorted(set(truth)), average="macro")
    assert s.macro_f1 == pytest.approx(100 * f1, abs=0.005)
    assert {"balanced_accuracy", "macro_f1"} <= s.to_dict().keys()

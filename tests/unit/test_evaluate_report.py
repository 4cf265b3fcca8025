"""The ``--report`` folder: calibration in the summary, report.html's sections, publishing as a unit
(an older report is replaced whole or not at all), and file names that are not UTF-8.

Driven by the ``MeanColour`` backend of test_evaluate (logits = 4 x mean of each colour channel), so
every count follows from the images.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from mnv3cli.errors import UserError
from mnv3cli.evaluation import evaluate, summary, write_report
from mnv3cli.evaluation.html_report import GRID_MAX_CLASSES

from .test_evaluate import CLASSES, COLOURS, PREPROCESS, MeanColour

NON_UTF8 = b"caf\xe9-red.png"  # Latin-1 'café': not valid UTF-8


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    samples = []
    for colour, count, label in (("red", 3, 0), ("green", 2, 1), ("blue", 1, 0)):
        for i in range(count):
            path = root / f"{colour}{i}.png"
            Image.new("RGB", (24, 20), COLOURS[colour]).save(path)
            samples.append((str(path), label))
    odd = os.path.join(os.fsencode(root), NON_UTF8)
    Image.new("RGB", (24, 20), COLOURS["red"]).save(odd, format="PNG")
    samples.append((os.fsdecode(odd), 0))
    return root, samples


@pytest.fixture(scope="module")
def result(folder):
    return evaluate(MeanColour(), folder[1], 3, PREPROCESS, batch_size=4, workers=1)


def test_summary_holds_calibration_and_least_confident_correct(result):
    s = summary(result, CLASSES).to_dict()
    cal = s["calibration"]
    conf = np.array([p.probabilities[0] for p in result.predictions])
    correct = np.array([p.correct for p in result.predictions])
    assert cal["nll"] == pytest.approx(result.loss, rel=1e-3)  # a loss: 4 significant digits
    assert len(cal["bins"]) == 15 and sum(b["images"] for b in cal["bins"]) == 7
    assert cal["ece"] == pytest.approx(
        100
        * sum(
            abs(correct[m].mean() - conf[m].mean()) * m.sum()
            for m in [(np.minimum((conf * 15).astype(int), 14) == b) for b in range(15)]
            if m.any()
        )
        / 7,
        abs=0.005,
    )
    assert cal["coverage"][-1] == {
        "coverage": 100,
        "images": 7,
        "top1": pytest.approx(100 * 6 / 7, abs=0.005),
        "min_confidence": pytest.approx(conf.min(), abs=1e-6),
    }
    unsure = s["least_confident_correct"]
    assert [u["probability"] for u in unsure] == sorted(u["probability"] for u in unsure)
    assert len(unsure) == 6 and all(u["true"] == u["predicted"] for u in unsure)


def test_report_html_is_self_contained_with_every_section(result, tmp_path):
    write_report(tmp_path / "r", result, CLASSES, summary(result, CLASSES, model="m", data="d"))
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    for section in ("summary", "calibration", "per-class", "confusion", "mistakes", "unsure"):
        assert f"<section id='{section}'>" in page
    sources = re.findall(r"(?:src|href)=['\"]([^'\"]+)", page)
    assert sources and all(s.startswith("data:image/") for s in sources)  # nothing fetched from anywhere
    assert page.count("data:image/jpeg") == 7  # a thumbnail per gallery entry: 1 mistake + 6 right
    assert page.count("data:image/png") == 3  # reliability, coverage, confusion
    assert "<table class='grid'>" in page and "confused-pairs" not in page  # 3 classes: a grid
    assert re.search(r"<th>red</th><td[^>]*>4</td><td[^>]*>0</td><td[^>]*>1</td>", page)


def test_many_classes_show_the_most_confused_pairs_instead_of_a_grid(tmp_path):
    k = GRID_MAX_CLASSES + 5
    samples = []
    for c in range(k):  # image c is the colour class c % 3; labelled c: mostly wrong, in known pairs
        path = tmp_path / f"{c}.png"
        Image.new("RGB", (8, 8), list(COLOURS.values())[c % 3]).save(path)
        samples.append((str(path), c))

    def backend(batch):
        return np.pad(MeanColour()(batch), ((0, 0), (0, k - 3)), constant_values=-9.0)

    result = evaluate(backend, samples, k, PREPROCESS, batch_size=8, workers=1)
    names = [f"class {c}" for c in range(k)]
    write_report(tmp_path / "r", result, names, summary(result, names))
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "<table class='grid'>" not in page and "<table id='confused-pairs'>" in page
    assert "<td>class 3</td><td>class 0</td>" in page  # truth 3 (red) predicted red = class 0


def test_non_utf8_file_names_keep_every_record_and_write_valid_utf8(result, tmp_path):
    written, _ = write_report(tmp_path / "r", result, CLASSES, summary(result, CLASSES))
    for path in written:
        if path.suffix != ".png":
            path.read_bytes().decode("utf-8")  # strict: raises on any invalid byte
    predictions = (tmp_path / "r" / "predictions.csv").read_text(encoding="utf-8")
    assert len(predictions.splitlines()) == 1 + 7
    assert "caf\\xe9-red.png" in predictions  # the undecodable byte escaped as \xNN


def test_a_newer_report_replaces_an_older_one_whole(result, tmp_path):
    target = tmp_path / "r"
    write_report(target, result, CLASSES, summary(result, CLASSES))
    (target / "notes-from-the-old-run.txt").write_text("old")
    write_report(target, result, CLASSES, summary(result, CLASSES, model="second"))
    assert not (target / "notes-from-the-old-run.txt").exists()
    assert json.loads((target / "summary.json").read_text())["model"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no private or set-aside folder left


def test_a_folder_that_is_not_a_report_is_refused(result, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="holds other files"):
        write_report(tmp_path / "mine", result, CLASSES, summary(result, CLASSES))
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["thesis.tex"]


def test_a_report_failing_part_way_leaves_the_older_one_untouched(folder, tmp_path):
    """A real failure: a file-size limit (RLIMIT_FSIZE) below the size of the plots, in a subprocess,
    so write() fails with EFBIG while the new report is being written."""
    target = tmp_path / "r"
    target.mkdir()
    (target / "summary.json").write_text('{"old": true}')
    (target / "old.csv").write_text("old")
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_evaluate import CLASSES, PREPROCESS, MeanColour
        from mnv3cli.evaluation import evaluate, summary, write_report
        from mnv3cli.errors import WriteError
        samples = [(p, t) for p, t in {folder[1][:6]!r}]
        result = evaluate(MeanColour(), samples, 3, PREPROCESS, batch_size=4, workers=1)
        s = summary(result, CLASSES)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
        try:
            write_report({str(target)!r}, result, CLASSES, s)
        except WriteError as exc:
            print(exc)
            sys.exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.startswith(f"cannot write {target}: File too large")
    assert sorted(p.name for p in target.iterdir()) == ["old.csv", "summary.json"]
    assert (target / "summary.json").read_text() == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # the private folder was removed

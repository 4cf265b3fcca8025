"""``predict --min-confidence`` and ``--sort-into``: answers below a threshold are 'unknown', and
every input lands under DIR/<answer>/ without ever overwriting a file.

The backend is ``MeanColour`` of test_evaluate (logits = 4 x the mean of each colour channel), so
which image is confident follows from its colour: a pure red is sure, a grey one is a coin toss.
"""

from __future__ import annotations

import csv
import os

import pytest
from PIL import Image

from mnv3cli.data.images import EncodedImage
from mnv3cli.data.inputs import InputError
from mnv3cli.prediction import predict
from mnv3cli.prediction.predict import UNKNOWN
from mnv3cli.prediction.sorting import SortInto, folder_name

from .test_evaluate import CLASSES, COLOURS, PREPROCESS, MeanColour


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    paths = []
    for name, colour in (
        ("red.png", COLOURS["red"]),
        ("grey.png", (128, 128, 120)),
        ("sub/red.png", COLOURS["red"]),
        ("blue.png", COLOURS["blue"]),
    ):
        Image.new("RGB", (20, 20), colour).save(folder / name)
        paths.append(str(folder / name))
    return paths


def _results(sources, min_confidence=None):
    return list(predict(sources, MeanColour(), PREPROCESS, CLASSES, top_k=3, workers=1, min_confidence=min_confidence))


def test_below_the_threshold_the_answer_is_unknown_and_the_top_k_stay(inputs):
    results = _results(inputs, min_confidence=0.5)
    assert [r.answer for r in results] == ["red", UNKNOWN, "red", "blue"]
    grey = results[1].to_dict()
    assert grey["answer"] == UNKNOWN and len(grey["predictions"]) == 3 and grey["predictions"][0]["probability"] < 0.5
    assert "answer" not in _results(inputs[:1])[0].to_dict()  # without the option: output as before


@pytest.mark.parametrize("mode", ["copy", "hardlink", "symlink"])
def test_sort_into_keeps_names_never_overwrites_and_lists_everything(inputs, tmp_path, mode):
    out = tmp_path / "sorted"
    (out / "red").mkdir(parents=True)
    (out / "red" / "red.png").write_text("an earlier file")  # must survive
    sources = [*inputs, InputError("gone.png", "gone.png: no such file")]
    sorter = SortInto(out, mode)
    for source, result in zip(sources, _results(sources, min_confidence=0.5), strict=False):
        sorter.place(result, source)
    listing = sorter.write_csv()
    assert (out / "red" / "red.png").read_text() == "an earlier file"
    assert sorted(os.listdir(out / "red")) == ["red-2.png", "red-3.png", "red.png"]
    assert os.listdir(out / UNKNOWN) == ["grey.png"] and os.listdir(out / "blue") == ["blue.png"]
    placed = out / "red" / "red-2.png"
    assert placed.read_bytes() == open(inputs[0], "rb").read()
    assert placed.is_symlink() == (mode == "symlink")
    assert (os.stat(placed).st_ino == os.stat(inputs[0]).st_ino) == (mode in ("hardlink", "symlink"))
    with open(listing, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["answer"] for r in rows] == ["red", UNKNOWN, "red", "blue", ""]
    assert rows[1]["destination"] == str(out / UNKNOWN / "grey.png") and rows[4]["error"].endswith("no such file")
    assert sorter.placed == 4 and sorter.failed == 1
    assert SortInto(out, mode).write_csv().name == "sorted-2.csv"  # the first listing is kept too


def test_downloads_are_written_and_labels_become_safe_folder_names(tmp_path, inputs):
    data = open(inputs[0], "rb").read()
    source = EncodedImage("https://example.org/photos/a%20cat.png?x=1", data)
    result = _results([source])[0]
    sorter = SortInto(tmp_path / "s", "hardlink")  # nothing to link to: the bytes are written
    placement = sorter.place(result, source)
    assert placement.destination == str(tmp_path / "s" / "red" / "a cat.png")
    assert (tmp_path / "s" / "red" / "a cat.png").read_bytes() == data
    assert [folder_name(x) for x in ("AC/DC", "..", "", "ok name")] == ["AC_DC", "_", "_", "ok name"]

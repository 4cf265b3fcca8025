"""``mnv3 predict --min-confidence P --sort-into DIR`` end to end with Google's int8 model: the cat
(42 % Egyptian cat) is below 0.5 and goes to unknown/, the espresso (94 %) to espresso/.
In-process (the ``mnv3`` fixture): about answers and files, not the process."""

from __future__ import annotations

import csv
import json

from helpers import assert_one_user_error


def test_unknown_below_the_threshold_and_sorted_into_folders(mnv3, bundled_weights, cat_photo, coffee_photo, tmp_path):
    proc = mnv3(
        "predict",
        cat_photo,
        coffee_photo,
        "missing.jpg",
        "-w",
        bundled_weights,
        "-k",
        "2",
        "--min-confidence",
        "0.5",
        "--sort-into",
        "out",
        "--mode",
        "hardlink",
        "--json",
    )
    assert proc.returncode == 1, proc.stderr  # missing.jpg
    cat, coffee, missing = (json.loads(line) for line in proc.stdout.splitlines())
    assert cat["answer"] == "unknown" and [p["label"] for p in cat["predictions"]] == ["Egyptian cat", "tiger cat"]
    assert coffee["answer"] == "espresso" and "error" in missing
    assert (tmp_path / "out" / "unknown" / "chelsea.jpg").read_bytes() == cat_photo.read_bytes()
    assert (tmp_path / "out" / "espresso" / "coffee.jpg").stat().st_ino == coffee_photo.stat().st_ino
    with open(tmp_path / "out" / "sorted.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["answer"], bool(r["error"])) for r in rows] == [("unknown", False), ("espresso", False), ("", True)]
    assert "linked (hard) 2 file(s) into out; list in out/sorted.csv" in proc.stderr  # --json: notes on stderr


def test_tables_say_unknown_and_mode_needs_sort_into(mnv3, bundled_weights, cat_photo):
    proc = mnv3("predict", cat_photo, "-w", bundled_weights, "-k", "1", "--min-confidence", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "answer: unknown (top probability below 50 %)"
    assert_one_user_error(mnv3("predict", cat_photo, "--mode", "copy"), "--mode copy", "--sort-into")

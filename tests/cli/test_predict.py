"""Command-line tests: each runs ``mnv3`` (or Python) in a subprocess.

``mnv3 predict``: input expansion, the predict engine on real photos, bad inputs, output formats.

The int8 TFLite model is loaded once for the engine tests; only a few tests run the CLI itself.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from helpers import assert_one_user_error, cli_env, started

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def five_hundred_images(tmp_path_factory, imagenet_examples):
    """500 images (links to the examples/ folder's 24, in turn): a run long enough to interrupt."""
    import os

    sources = sorted(imagenet_examples.rglob("*.JPEG"))
    folder = tmp_path_factory.mktemp("five-hundred")
    for i in range(500):
        os.link(sources[i % len(sources)], folder / f"{i:04d}.jpg")
    return folder


def top(result, k=5):
    assert result.error is None, result.error
    return [p.index for p in result.predictions[:k]]


def test_cli_json_and_csv_output(run_cli, bundled_weights, cat_photo, coffee_photo, tmp_path):
    out = tmp_path / "labels.csv"
    proc = run_cli(
        "predict", cat_photo, coffee_photo, "--weights", bundled_weights, "--json", "--output", out, "--top-k", "3"
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(cat_photo), str(coffee_photo)]
    assert set(records[0]["predictions"][0]) == {"index", "label", "probability"}
    assert CAT_CLASSES & {p["index"] for p in records[0]["predictions"]}
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == [str(cat_photo), str(coffee_photo)]
    assert list(rows[0])[-1] == "error" and "probability_3" in rows[0] and rows[0]["error"] == ""
    assert rows[0]["label_1"] == records[0]["predictions"][0]["label"]


def test_cli_bad_corpus_json_records_and_exit_1(run_cli, bundled_weights, bad_corpus):
    root, expected = bad_corpus
    proc = run_cli(
        "predict",
        "corpus",
        "empty-dir",
        "missing.jpg",
        "--weights",
        bundled_weights,
        "--json",
        "--batch-size",
        "2",
        cwd=root,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["path"].rsplit("/", 1)[-1] for r in records] == list(expected)
    for record, reason in zip(records, expected.values(), strict=False):
        assert (reason is None and "predictions" in record) or reason in record["error"]
    assert "mnv3: warning: 7 of 9 input(s) failed" in proc.stderr


def test_cli_tables_stderr_errors_and_jsonl_from_stdin(run_cli, bundled_weights, cat_photo, tmp_path):
    proc = run_cli("predict", cat_photo, "missing.jpg", "--weights", bundled_weights, "--top-k", "2")
    assert proc.returncode == 1
    assert cat_photo.name in proc.stdout and "probability" in proc.stdout and "cat" in proc.stdout
    assert "mnv3: error: missing.jpg: no such file" in proc.stderr and "Traceback" not in proc.stderr
    out = tmp_path / "out.jsonl"
    proc = run_cli("predict", "-", "--weights", bundled_weights, "--output", out, input=f"{cat_photo}\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote 1 result(s) to {out}\n"  # what it made is its result: stdout
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["path"] == str(cat_photo) and len(record["predictions"]) == 5


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope*.jpg"], "nothing to classify: nope*.jpg: no image files match"),
        (["x.jpg", "--output", "labels.txt"], "use a .csv or .jsonl file name"),
    ],
)
def test_cli_user_errors_exit_2_before_loading(run_cli, args, message):
    proc = run_cli("predict", *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_predict_output_in_unwritable_place_is_a_user_error(run_cli, bundled_weights, cat_photo, blocked_dir):
    result = run_cli("predict", cat_photo, "-w", bundled_weights, "-o", blocked_dir / "labels.csv")
    assert_one_user_error(result, "--output", "labels.csv", "cannot write")


def test_predict_json_into_a_closed_pipe_stops_quietly(bundled_weights, cat_photo, coffee_photo, tmp_path):
    """``mnv3 predict ... --json | head -1``: the reader leaving is not an internal error."""
    # -k 1000 makes each JSON line ~60 KB, so the second line cannot fit in the pipe's buffer.
    args = [
        sys.executable,
        "-m",
        "mnv3cli",
        "predict",
        str(cat_photo),
        str(coffee_photo),
        str(cat_photo),
        "-w",
        str(bundled_weights),
        "--json",
        "-k",
        "1000",
    ]
    with started(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(), cwd=tmp_path) as proc:
        first = proc.stdout.read(100)
        proc.stdout.close()  # like `head -c 100`
        stderr = proc.stderr.read().decode()
        proc.wait(timeout=600)
    assert first.startswith(b'{"path": ')
    assert "internal error" not in stderr and "BrokenPipe" not in stderr and "Exception" not in stderr
    assert proc.returncode == 1


def test_predict_csv_has_columns_only_for_labels_the_model_has(run_cli, bundled_weights, cat_photo, tmp_path):
    out = tmp_path / "labels.csv"
    result = run_cli("predict", cat_photo, "-w", bundled_weights, "-k", "5000", "-o", out)
    assert result.returncode == 0, result.stderr
    header, row = list(csv.reader(out.open(encoding="utf-8")))
    assert len(header) == len(row) == 1 + 3 * 1000 + 1
    assert header[-2] == "probability_1000" and row[-1] == ""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_predict_output_like_ctrl_c(tmp_path, five_hundred_images, bundled_weights, signame):
    """Before: exit by signal with no message, a hidden ``.labels.jsonl.*.tmp`` left behind. Now:
    exit 130 saying how to resume, and only ``labels.jsonl.part``, holding whole records."""
    import signal
    import time

    out = tmp_path / "labels.jsonl"
    part = tmp_path / "labels.jsonl.part"
    with started(
        [
            sys.executable,
            "-m",
            "mnv3cli",
            "predict",
            str(five_hundred_images),
            "-w",
            str(bundled_weights),
            "--backend",
            "torch",
            "-b",
            "4",
            "-o",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=tmp_path,
    ) as proc:
        deadline = time.monotonic() + 120
        while not (part.exists() and part.stat().st_size) and proc.poll() is None:
            assert time.monotonic() < deadline, "no result was ever written"
            time.sleep(0.05)
        proc.send_signal(getattr(signal, signame))
        stdout, stderr = proc.communicate(timeout=60)
        # 130, or death by the SIGINT that CPython re-raises for a KeyboardInterrupt reaching its exit
        # (a shell reports both as 130); never death by the SIGTERM/SIGHUP itself, never silence
        assert proc.returncode in (130, -signal.SIGINT), stderr
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("mnv3: warning: interrupted after ") and "of 500 result(s)" in last, last
        assert last.endswith(f"kept them in {part}. Resume with: the same command and --resume")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.jsonl.part"]
        kept = part.read_text(encoding="utf-8")
        assert kept.endswith("\n") and all(json.loads(line)["predictions"] for line in kept.splitlines())
        assert f"after {len(kept.splitlines())} of 500" in last

"""``mnv3 predict``: input expansion, the predict engine on real photos, bad inputs, output formats.

The int8 TFLite model is loaded once for the engine tests; only a few tests run the CLI itself.
"""

from __future__ import annotations

import csv
import functools
import http.server
import io
import json
import threading

import pytest
from PIL import Image

from mnv3cli.data.images import EncodedImage
from mnv3cli.data.inputs import InputError, expand_inputs
from mnv3cli.errors import UserError

CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


# --- input expansion ---------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path):
    """photos/{b.png, a.jpg, notes.txt, sub/c.webp, sub/deeper/d.JPEG}, an empty folder, a literal [1].jpg."""
    photos = tmp_path / "photos"
    (photos / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    for rel in ("b.png", "a.jpg", "sub/c.webp", "sub/deeper/d.JPEG", "odd[1].jpg"):
        (photos / rel).write_bytes(b"x")
    (photos / "notes.txt").write_text("not an image")
    return tmp_path


def test_directories_recurse_over_image_files_only_sorted(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert expand_inputs(["photos"]) == ["photos/a.jpg", "photos/b.png", "photos/odd[1].jpg",
                                         "photos/sub/c.webp", "photos/sub/deeper/d.JPEG"]


def test_globs_are_expanded_by_the_tool_including_recursive(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert expand_inputs(["photos/*.jpg"]) == ["photos/a.jpg", "photos/odd[1].jpg"]
    # ** matches folders and files alike; each image appears once
    assert expand_inputs(["photos/**"]) == expand_inputs(["photos"])
    assert expand_inputs(["photos/**/*.webp", "photos/*.txt"]) == [
        "photos/sub/c.webp", InputError("photos/*.txt", "photos/*.txt: no image files match this pattern")]
    # an existing file whose name looks like a pattern is taken literally
    assert expand_inputs(["photos/odd[1].jpg"]) == ["photos/odd[1].jpg"]


def test_explicit_paths_are_kept_for_decoding_to_report(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert expand_inputs(["photos/notes.txt", "missing.jpg", "empty"]) == [
        "photos/notes.txt", "missing.jpg", InputError("empty", "empty: no image files in this directory")]


def test_stdin_lists_paths_one_per_line(tree, monkeypatch):
    monkeypatch.chdir(tree)
    stdin = io.StringIO("photos/b.png\n\nphotos/sub\r\n")
    assert expand_inputs(["photos/a.jpg", "-"], stdin=stdin) == [
        "photos/a.jpg", "photos/b.png", "photos/sub/c.webp", "photos/sub/deeper/d.JPEG"]


def test_nothing_left_to_classify_is_a_user_error(tree, monkeypatch):
    monkeypatch.chdir(tree)
    with pytest.raises(UserError, match=r"nothing to classify: nope\*\.jpg: no image files match.*"
                                        r"empty: no image files in this directory"):
        expand_inputs(["nope*.jpg", "empty"])
    with pytest.raises(UserError, match="no inputs given on stdin"):
        expand_inputs(["-"], stdin=io.StringIO("\n"))


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server (loopback only) serving ``tmp_path/www``; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_urls_are_downloaded_and_failures_become_records(http_root, cat_photo):
    www, base = http_root
    (www / "cat.jpg").write_bytes(cat_photo.read_bytes())
    got = expand_inputs([f"{base}/cat.jpg", f"{base}/missing.jpg"])
    assert got[0] == EncodedImage(f"{base}/cat.jpg", cat_photo.read_bytes())
    assert isinstance(got[1], InputError) and "HTTP 404" in got[1].message


# --- the engine on real photos with the int8 TFLite weights --------------------------------------

@pytest.fixture(scope="module")
def int8(int8_tflite):
    """(backend, class names, preprocessing) of the int8 model, loaded once for this module."""
    from mnv3cli.inference.backends import TorchBackend
    from mnv3cli.weights.loader import load_model

    loaded = load_model(str(int8_tflite))
    return TorchBackend(loaded.model), loaded.class_names, loaded.preprocess


def run_predict(int8, sources, **kwargs):
    from mnv3cli.evaluation.predict import predict

    backend, class_names, preprocess = int8
    return list(predict(sources, backend, preprocess, class_names, **kwargs))


def top(result, k=5):
    assert result.error is None, result.error
    return [p.index for p in result.predictions[:k]]


def test_real_photos_get_their_classes(int8, cat_photo, coffee_photo):
    cat, coffee = run_predict(int8, [str(cat_photo), str(coffee_photo)])
    assert CAT_CLASSES & set(top(cat)), cat
    assert COFFEE_CLASSES & set(top(coffee)), coffee
    assert "cat" in cat.predictions[0].label
    probs = [p.probability for p in cat.predictions]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_exif_rotated_copy_gets_the_same_top1(int8, cat_photo, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    rotated = tmp_path / "chelsea-rotated.jpg"
    Image.open(cat_photo).transpose(Image.Transpose.ROTATE_90).save(rotated, exif=exif, quality=95)
    upright, turned = run_predict(int8, [str(cat_photo), str(rotated)])
    assert top(turned, 1) == top(upright, 1)


def test_downloaded_image_is_classified(int8, http_root, cat_photo):
    www, base = http_root
    (www / "cat.jpg").write_bytes(cat_photo.read_bytes())
    (result,) = run_predict(int8, expand_inputs([f"{base}/cat.jpg"]))
    assert result.path == f"{base}/cat.jpg" and CAT_CLASSES & set(top(result))


@pytest.fixture
def bad_corpus(tmp_path, cat_photo, coffee_photo):
    """good/bad files interleaved in one folder (sorted names), plus an empty folder and a missing path."""
    from test_data_images import png_bomb_bytes

    root = tmp_path / "corpus"
    root.mkdir()
    data = cat_photo.read_bytes()
    (root / "1-cat.jpg").write_bytes(data)
    (root / "2-empty.jpg").write_bytes(b"")
    (root / "3-truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "4-noise.jpg").write_bytes(bytes(range(256)) * 16)
    (root / "5-text.png").write_text("just text")
    (root / "6-bomb.png").write_bytes(png_bomb_bytes())
    (root / "7-coffee.jpg").write_bytes(coffee_photo.read_bytes())
    (root / "readme.txt").write_text("skipped: not an image file name")
    (tmp_path / "empty-dir").mkdir()
    expected = {"1-cat.jpg": None, "2-empty.jpg": "empty file", "3-truncated.jpg": "truncated",
                "4-noise.jpg": "not an image", "5-text.png": "not an image",
                "6-bomb.png": "decompression bomb", "7-coffee.jpg": None,
                "empty-dir": "no image files", "missing.jpg": "no such file"}
    return tmp_path, expected


def test_bad_inputs_become_records_in_order_and_the_rest_is_classified(int8, bad_corpus, monkeypatch):
    root, expected = bad_corpus
    monkeypatch.chdir(root)
    seen = []
    results = run_predict(int8, expand_inputs(["corpus", "empty-dir", "missing.jpg"]), batch_size=2,
                          workers=2, progress=seen.append)
    assert [r.path.rsplit("/", 1)[-1] for r in results] == list(expected)
    assert sum(seen) == len(expected)
    for result, reason in zip(results, expected.values()):
        if reason is None:
            assert result.error is None and len(result.predictions) == 5
        else:
            assert result.error.startswith(result.path + ": ") and reason in result.error
    assert CAT_CLASSES & set(top(results[0])) and COFFEE_CLASSES & set(top(results[6]))


def test_top_k_and_fast_decode_off(int8, cat_photo):
    fast, = run_predict(int8, [str(cat_photo)], top_k=1)
    exact, = run_predict(int8, [str(cat_photo)], top_k=1000, fast_decode=False)
    assert len(fast.predictions) == 1 and len(exact.predictions) == 1000
    assert top(fast, 1) == top(exact, 1)


# --- the command ------------------------------------------------------------------------------

def test_cli_json_and_csv_output(run_cli, int8_tflite, cat_photo, coffee_photo, tmp_path):
    out = tmp_path / "labels.csv"
    proc = run_cli("predict", cat_photo, coffee_photo, "--weights", int8_tflite, "--json",
                   "--output", out, "--top-k", "3")
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


def test_cli_bad_corpus_json_records_and_exit_1(run_cli, int8_tflite, bad_corpus):
    root, expected = bad_corpus
    proc = run_cli("predict", "corpus", "empty-dir", "missing.jpg", "--weights", int8_tflite, "--json",
                   "--batch-size", "2", cwd=root)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["path"].rsplit("/", 1)[-1] for r in records] == list(expected)
    for record, reason in zip(records, expected.values()):
        assert (reason is None and "predictions" in record) or reason in record["error"]
    assert "mnv3: warning: 7 of 9 input(s) failed" in proc.stderr


def test_cli_tables_stderr_errors_and_jsonl_from_stdin(run_cli, int8_tflite, cat_photo, tmp_path):
    proc = run_cli("predict", cat_photo, "missing.jpg", "--weights", int8_tflite, "--top-k", "2")
    assert proc.returncode == 1
    assert cat_photo.name in proc.stdout and "probability" in proc.stdout and "cat" in proc.stdout
    assert "mnv3: error: missing.jpg: no such file" in proc.stderr and "Traceback" not in proc.stderr
    out = tmp_path / "out.jsonl"
    proc = run_cli("predict", "-", "--weights", int8_tflite, "--output", out, input=f"{cat_photo}\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote 1 result(s) to {out}\n"  # what it made is its result: stdout
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["path"] == str(cat_photo) and len(record["predictions"]) == 5


@pytest.mark.parametrize("args, message", [
    (["nope*.jpg"], "nothing to classify: nope*.jpg: no image files match"),
    (["x.jpg", "--output", "labels.txt"], "use a .csv or .jsonl file name"),
])
def test_cli_user_errors_exit_2_before_loading(run_cli, args, message):
    proc = run_cli("predict", *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
